from bert_pos.labels import (
    CHUNK_LABELS,
    NER_LABELS,
    POS_LABELS,
    begin_to_inside_map,
    task_labels,
)


def test_conll2003_label_lists_match_the_hub_class_labels():
    assert len(NER_LABELS) == 9 and NER_LABELS[:3] == ["O", "B-PER", "I-PER"]
    assert len(POS_LABELS) == 47 and POS_LABELS[:4] == ['"', "''", "#", "$"]
    assert POS_LABELS.index("NNP") == 22 and POS_LABELS[-1] == "WRB"
    assert len(CHUNK_LABELS) == 23 and CHUNK_LABELS.index("B-NP") == 11
    for labels in (NER_LABELS, POS_LABELS, CHUNK_LABELS):
        assert len(set(labels)) == len(labels)


def test_begin_maps_to_inside_and_others_to_themselves():
    mapping = begin_to_inside_map(NER_LABELS)
    assert NER_LABELS[mapping[NER_LABELS.index("B-PER")]] == "I-PER"
    assert NER_LABELS[mapping[NER_LABELS.index("I-PER")]] == "I-PER"
    assert NER_LABELS[mapping[NER_LABELS.index("O")]] == "O"
    # POS tags have no B-/I- structure: every label maps to itself.
    assert begin_to_inside_map(POS_LABELS) == list(range(len(POS_LABELS)))


def test_unknown_task_names_the_config_key():
    try:
        task_labels("srl")
    except ValueError as err:
        assert "data.task='srl'" in str(err)
    else:
        raise AssertionError("expected ValueError")


def test_iob1_to_iob2_on_hand_made_cases():
    from bert_pos.labels import iob1_to_iob2

    # I- opens an entity after O or after another type; B- only between two same-type entities
    assert iob1_to_iob2(["I-PER", "I-PER", "O", "I-LOC"]) == ["B-PER", "I-PER", "O", "B-LOC"]
    assert iob1_to_iob2(["I-ORG", "I-LOC", "I-LOC"]) == ["B-ORG", "B-LOC", "I-LOC"]
    assert iob1_to_iob2(["I-PER", "B-PER", "I-PER"]) == ["B-PER", "B-PER", "I-PER"]
    assert iob1_to_iob2(["O", "O"]) == ["O", "O"]
    # the original eng.train opening: "EU rejects German call"
    assert iob1_to_iob2(["I-ORG", "O", "I-MISC", "O"]) == ["B-ORG", "O", "B-MISC", "O"]


def test_span_label_sets():
    from bert_pos.labels import is_span_label_set

    assert is_span_label_set(NER_LABELS) and is_span_label_set(CHUNK_LABELS)
    assert not is_span_label_set(POS_LABELS)


def test_invalid_iob2_position():
    from bert_pos.labels import invalid_iob2_position

    assert invalid_iob2_position(["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"]) is None
    assert invalid_iob2_position(["I-PER"]) == 0  # an entity cannot open with I-
    assert invalid_iob2_position(["B-PER", "O", "I-PER"]) == 2  # nor continue after O
    assert invalid_iob2_position(["B-PER", "I-PER", "I-LOC"]) == 2  # nor change type
    assert invalid_iob2_position([]) is None
