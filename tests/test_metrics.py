"""Entity and token scores (bert_pos/scoring/metrics.py) on hand-checked cases, as conlleval
and seqeval's strict mode score them, and the per-type table.
"""

import pytest

from bert_pos.scoring.metrics import score_sequences, token_accuracy


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


def test_strict_mode_only_counts_well_formed_iob2_spans():
    gold = [["B-PER", "I-PER", "O"]]
    pred = [["I-PER", "I-PER", "O"]]  # conlleval reads a PER span; strict IOB2 reads none
    assert score_sequences(gold, pred, True)["f1"] == pytest.approx(1.0)
    assert score_sequences(gold, pred, True, mode="strict")["f1"] == pytest.approx(0.0)


def test_scores_of_a_hand_computed_predictions_file(tmp_path):
    from bert_pos.scoring.predictions import read_predictions

    # 3 gold entities (PER "John Smith", LOC "Paris", ORG "Acme Corp"); 3 predicted
    # (PER "John Smith" right, LOC "Paris" right, ORG "Acme" wrong boundary).
    # precision 2/3, recall 2/3, F1 2/3; token accuracy 9/10 ("Corp" gold I-ORG, predicted O).
    (tmp_path / "predictions.txt").write_text(
        "-DOCSTART- O O\n\n"
        "John B-PER B-PER\nSmith I-PER I-PER\nvisited O O\nParis B-LOC B-LOC\n. O O\n\n"
        "-DOCSTART- O O\n\n"
        "Acme B-ORG B-ORG\nCorp I-ORG O\nwon O O\nagain O O\n. O O\n\n"
    )
    read = read_predictions(tmp_path / "predictions.txt")
    gold, predicted = read.gold, read.predicted
    assert len(gold) == 2
    scores = score_sequences(gold, predicted, span_task=True)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    assert scores["accuracy"] == pytest.approx(9 / 10)
    assert scores["per_type"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_per_type_table():
    from bert_pos.scoring.metrics import format_per_type_table

    scores = score_sequences([["B-PER", "O", "B-LOC"]], [["B-PER", "O", "O"]], True)
    table = format_per_type_table(scores)
    assert "| PER | 1.0000 | 1.0000 | 1.0000 | 1 |" in table
    assert "| LOC | 0.0000 | 0.0000 | 0.0000 | 1 |" in table
    assert "| overall | 1.0000 | 0.5000 | 0.6667 | 2 |" in table
