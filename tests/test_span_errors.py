"""Span error analysis: every category on hand-made sentences, and counts that reconcile."""

import json

from bert_pos.scoring.error_analysis import (
    analyse_errors,
    classify_sentence,
    training_entities,
    write_error_report,
)
from bert_pos.scoring.significance import sentence_counts

WORDS = [
    ["John", "Smith", "visited", "Paris", "and", "Acme", "Corp", "today"],
    ["The", "New", "York", "Times", "said", "so", "in", "Berlin"],
    ["Nothing", "here", "at", "all"],
]
GOLD = [
    ["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "I-ORG", "O"],
    ["O", "B-ORG", "I-ORG", "I-ORG", "O", "O", "O", "B-LOC"],
    ["O", "O", "O", "O"],
]
PREDICTED = [
    # John Smith right; Paris as ORG (same boundaries); Acme alone as ORG (boundaries)
    ["B-PER", "I-PER", "O", "B-ORG", "O", "B-ORG", "O", "O"],
    # New York as LOC (type and boundaries); Berlin missed
    ["O", "B-LOC", "I-LOC", "O", "O", "O", "O", "O"],
    # a spurious PER
    ["B-PER", "O", "O", "O"],
]


def test_each_category_on_its_sentence():
    gold, predicted = classify_sentence(GOLD[0], PREDICTED[0])
    assert [category for _, category in gold] == ["correct", "wrong_type", "wrong_boundaries"]
    assert [category for _, category in predicted] == ["correct", "wrong_type", "wrong_boundaries"]
    gold, predicted = classify_sentence(GOLD[1], PREDICTED[1])
    assert [category for _, category in gold] == ["wrong_type_and_boundaries", "missed"]
    assert [category for _, category in predicted] == ["wrong_type_and_boundaries"]
    gold, predicted = classify_sentence(GOLD[2], PREDICTED[2])
    assert gold == [] and predicted == [(("PER", 0, 0), "spurious")]


def test_categories_reconcile_with_conlleval_counts():
    report = analyse_errors(WORDS, GOLD, PREDICTED)
    totals = sentence_counts(GOLD, PREDICTED).table.sum(0)[0]  # correct, predicted, gold
    assert sum(report["gold"].values()) == totals[2] == 5
    assert sum(report["predicted"].values()) == totals[1] == 5
    assert report["gold"]["correct"] == report["predicted"]["correct"] == totals[0] == 1
    assert report["gold"]["missed"] == 1 and report["predicted"]["spurious"] == 1
    assert report["per_type"]["gold"]["LOC"] == {"wrong_type": 1, "missed": 1}


def test_confusion_counts_only_boundary_matched_spans():
    confusion = analyse_errors(WORDS, GOLD, PREDICTED)["confusion"]
    assert confusion == {"PER": {"PER": 1}, "LOC": {"ORG": 1}}


def test_seen_and_unseen_entities_score_apart():
    seen = training_entities(
        [["John", "Smith", "met", "Berlin"]], [["B-PER", "I-PER", "O", "B-LOC"]]
    )
    assert seen == {("John Smith", "PER"), ("Berlin", "LOC")}
    split = analyse_errors(WORDS, GOLD, PREDICTED, seen=seen)["seen_unseen"]
    # seen gold: John Smith (right), Berlin (missed); seen predictions: John Smith
    assert split["seen"]["recall"] == 0.5 and split["seen"]["precision"] == 1.0
    assert split["unseen"]["gold"] == 3 and split["unseen"]["predicted"] == 4
    assert split["unseen"]["f1"] == 0.0


def test_report_files(tmp_path):
    report = write_error_report(
        tmp_path / "errors.json", tmp_path / "errors.md", WORDS, GOLD, PREDICTED, examples=1
    )
    assert json.loads((tmp_path / "errors.json").read_text()) == report
    assert set(report["examples"]) == {
        "wrong_type",
        "wrong_boundaries",
        "wrong_type_and_boundaries",
        "missed",
        "spurious",
    }
    markdown = (tmp_path / "errors.md").read_text()
    assert "| missed | 1 | - |" in markdown and "Paris/B-LOC→B-ORG" in markdown


def test_nested_mentions_are_each_counted(tmp_path):
    words = [["University", "of", "Kaburg", "said", "Kaburg", "Airport", "closed"]]
    gold = [[(0, 3, "ORG"), (2, 3, "LOC"), (4, 6, "FAC"), (4, 5, "LOC")]]
    # the outer ORG and the inner LOC of the FAC found; Kaburg-in-ORG typed PER; the FAC cut
    # short to one word; a spurious LOC inside "closed"
    predicted = [[(0, 3, "ORG"), (2, 3, "PER"), (4, 5, "FAC"), (4, 5, "LOC"), (6, 7, "LOC")]]
    report = analyse_errors(words, gold, predicted, mentions=True)
    assert report["gold"] == {
        "correct": 2,
        "wrong_type": 1,
        "wrong_boundaries": 1,
        "wrong_type_and_boundaries": 0,
        "missed": 0,
    }
    assert report["predicted"]["correct"] == 2 and report["predicted"]["spurious"] == 1
    # the one-word FAC has the inner LOC's boundaries: a wrong type comes first
    assert report["predicted"]["wrong_type"] == 2 and report["predicted"]["wrong_boundaries"] == 0
    # boundaries match: ORG/ORG, LOC/PER (words 2-2), LOC/LOC (words 4-4)
    assert report["confusion"] == {"LOC": {"LOC": 1, "PER": 1}, "ORG": {"ORG": 1}}
    seen = {("Kaburg", "LOC")}
    split = analyse_errors(words, gold, predicted, seen=seen, mentions=True)["seen_unseen"]
    assert split["seen"]["gold"] == 2 and split["seen"]["recall"] == 0.5  # the FAC's Kaburg
    write_error_report(
        tmp_path / "errors.json", tmp_path / "errors.md", words, gold, predicted, mentions=True
    )
    assert "gold: [University of Kaburg]/ORG" in (tmp_path / "errors.md").read_text()
