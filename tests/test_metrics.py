import pytest

from bert_pos.metrics import score_sequences, token_accuracy


def test_entity_scores_on_a_hand_checked_case():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-MISC", "I-MISC"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "B-MISC", "O"]]
    # gold spans: PER(0-1) LOC(3) | ORG(0) MISC(2-3)  -> 4
    # predicted:  PER(0-1) ORG(3) | ORG(0) MISC(2)    -> 4; correct: PER, ORG(0) -> 2
    scores = score_sequences(gold, pred, span_task=True)
    assert scores["precision"] == pytest.approx(2 / 4)
    assert scores["recall"] == pytest.approx(2 / 4)
    assert scores["f1"] == pytest.approx(0.5)
    assert scores["accuracy"] == pytest.approx(6 / 8)
    assert scores["support"] == 4
    assert scores["per_type"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert scores["per_type"]["LOC"]["recall"] == 0.0
    assert scores["per_type"]["ORG"]["precision"] == pytest.approx(0.5)


def test_conlleval_style_span_starting_with_inside():
    # conlleval (and seqeval's default mode) treat an I- after O as the start of a span.
    gold = [["O", "B-PER", "I-PER"]]
    pred = [["O", "I-PER", "I-PER"]]
    assert score_sequences(gold, pred, span_task=True)["f1"] == pytest.approx(1.0)


def test_pos_scores_accuracy_only():
    scores = score_sequences([["NN", "VB", "DT"]], [["NN", "NN", "DT"]], span_task=False)
    assert scores == {"accuracy": pytest.approx(2 / 3)}


def test_token_accuracy_rejects_length_mismatch():
    with pytest.raises(ValueError):
        token_accuracy([["O", "O"]], [["O"]])
