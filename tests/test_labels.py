"""Label sets and tag schemes (bert_pos/data/labels.py): CoNLL-2003's lists, B- to I- for
continuation subwords, IOB1 and BIOES to IOB2, and the errors that name the tag.
"""

from bert_pos.data.labels import (
    CHUNK_LABELS,
    NER_LABELS,
    POS_LABELS,
    begin_to_inside_map,
    task_labels,
    training_label_names,
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
    from bert_pos.data.labels import iob1_to_iob2

    # I- opens an entity after O or after another type; B- only between two same-type entities
    assert iob1_to_iob2(["I-PER", "I-PER", "O", "I-LOC"]) == ["B-PER", "I-PER", "O", "B-LOC"]
    assert iob1_to_iob2(["I-ORG", "I-LOC", "I-LOC"]) == ["B-ORG", "B-LOC", "I-LOC"]
    assert iob1_to_iob2(["I-PER", "B-PER", "I-PER"]) == ["B-PER", "B-PER", "I-PER"]
    assert iob1_to_iob2(["O", "O"]) == ["O", "O"]
    # the original eng.train opening: "EU rejects German call"
    assert iob1_to_iob2(["I-ORG", "O", "I-MISC", "O"]) == ["B-ORG", "O", "B-MISC", "O"]


def test_span_label_sets():
    from bert_pos.data.labels import is_span_label_set

    assert is_span_label_set(NER_LABELS) and is_span_label_set(CHUNK_LABELS)
    assert not is_span_label_set(POS_LABELS)


def test_invalid_iob2_position():
    from bert_pos.data.labels import invalid_iob2_position

    assert invalid_iob2_position(["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"]) is None
    assert invalid_iob2_position(["I-PER"]) == 0  # an entity cannot open with I-
    assert invalid_iob2_position(["B-PER", "O", "I-PER"]) == 2  # nor continue after O
    assert invalid_iob2_position(["B-PER", "I-PER", "I-LOC"]) == 2  # nor change type
    assert invalid_iob2_position([]) is None


def test_bioes_to_iob2_on_hand_made_cases():
    from bert_pos.data.labels import bioes_to_iob2

    # S- is a one-word entity, B- ... E- a longer one: IOB2 opens both with B-
    assert bioes_to_iob2(["S-PER", "O", "B-LOC", "I-LOC", "E-LOC"]) == [
        "B-PER",
        "O",
        "B-LOC",
        "I-LOC",
        "I-LOC",
    ]
    assert bioes_to_iob2(["S-PER", "S-PER", "B-ORG", "E-ORG"]) == [
        "B-PER",
        "B-PER",
        "B-ORG",
        "I-ORG",
    ]
    # BILOU: U- is S-, L- is E-
    assert bioes_to_iob2(["U-PER", "B-LOC", "L-LOC"]) == ["B-PER", "B-LOC", "I-LOC"]
    assert bioes_to_iob2(["O", "O"]) == ["O", "O"] and bioes_to_iob2([]) == []


def test_bioes_problem_names_the_tag_and_what_was_expected():
    from bert_pos.data.labels import BioesProblem, bioes_problem

    for valid in (["S-PER", "B-LOC", "I-LOC", "E-LOC", "O"], ["U-PER", "B-X", "L-X"], [], ["O"]):
        assert bioes_problem(valid) is None
    assert bioes_problem(["O", "E-PER"]) == BioesProblem(
        1, "after 'O'", "expected B-PER to open an entity (S-PER for a one-word entity)"
    )
    assert bioes_problem(["I-PER"]).context == "at the start of a sentence"
    assert bioes_problem(["B-PER", "O"]) == BioesProblem(
        1, "after 'B-PER'", "expected I-PER or E-PER to continue the PER entity"
    )
    assert bioes_problem(["B-PER", "E-LOC"]).position == 1  # the type changes inside an entity
    assert bioes_problem(["B-PER", "S-PER"]).position == 1  # a new entity before E-PER
    assert bioes_problem(["O", "B-PER", "I-PER"]) == BioesProblem(
        2,
        "at the end of a sentence",
        "expected E-PER to close the PER entity (S-PER for a one-word entity)",
    )
    assert bioes_problem(["NN"]).expected.startswith("expected O or a B-, I-, E-, S- tag")
    assert bioes_problem(["S-"]).position == 0  # a prefix without a type


def test_to_iob2_dispatches_on_the_scheme():
    from bert_pos.data.labels import to_iob2

    assert to_iob2(["I-PER", "I-PER"], "iob1") == ["B-PER", "I-PER"]
    assert to_iob2(["B-PER", "E-PER"], "bioes") == ["B-PER", "I-PER"]
    assert to_iob2(["B-PER", "I-PER"], "iob2") == ["B-PER", "I-PER"]


def test_iob2_label_names_of_other_schemes_keep_the_order_of_first_appearance():
    from bert_pos.data.labels import iob2_label_names

    bioes = ["O", "S-PER", "B-PER", "I-PER", "E-PER", "U-LOC", "L-LOC"]
    assert iob2_label_names(bioes, "bioes") == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert iob2_label_names(["O", "I-PER", "I-LOC", "B-LOC"], "iob1") == [
        "O",
        "B-PER",
        "I-PER",
        "B-LOC",
        "I-LOC",
    ]
    # the CoNLL-2003 lists already hold B- and I- of each type: unchanged, ids too
    for labels in (NER_LABELS, CHUNK_LABELS):
        assert iob2_label_names(labels, "iob1") == labels == iob2_label_names(labels, "bioes")
    assert iob2_label_names(["NN", "VB"], "iob2") == ["NN", "VB"]


def test_a_span_label_set_from_training_tags_has_both_forms_of_each_type():
    tags = ["O", "B-ORG", "B-PER", "I-PER", "I-MISC", "O"]
    assert training_label_names(tags) == [
        "B-MISC",
        "B-ORG",
        "B-PER",
        "I-MISC",
        "I-ORG",
        "I-PER",
        "O",
    ]
    # other label sets are their tags' sorted set
    assert training_label_names(["NN", "DT", "NN", "VB"]) == ["DT", "NN", "VB"]
