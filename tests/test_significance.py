"""Paired significance tests: counts that reproduce seqeval, and tests whose answers are known."""

import numpy as np
import pytest

from bert_pos.scoring.metrics import score_sequences
from bert_pos.scoring.significance import (
    Counts,
    approximate_randomization,
    bootstrap_interval,
    paired_bootstrap,
    precision_recall_f1,
    sentence_counts,
)
from bert_pos.scoring.spans import spans_of

GOLD = [
    ["B-PER", "I-PER", "O", "B-LOC"],
    ["O", "B-ORG", "I-ORG", "I-ORG", "O"],
    ["B-MISC", "O", "B-PER"],
    ["O", "O"],
]
PREDICTED = [
    ["B-PER", "I-PER", "O", "B-ORG"],  # PER right; LOC predicted as ORG
    ["O", "I-ORG", "I-ORG", "O", "O"],  # I-ORG after O opens a span (conlleval); wrong end
    ["B-MISC", "O", "B-PER"],  # both right
    ["B-LOC", "<none>"],  # spurious LOC, and an unaligned word seqeval counts as a span
]


def one_span_sentences(correct: list[bool]) -> Counts:
    """Sentences with one gold span each, predicted (right or wrong) exactly once."""
    table = np.array([[[int(c), 1, 1], [int(c), 1, 1]] for c in correct], dtype=np.int64)
    return Counts(table, ("overall", "PER"), "f1")


def test_spans_follow_conlleval():
    assert spans_of(["O", "I-ORG", "I-ORG", "B-LOC"]) == {("ORG", 1, 2), ("LOC", 3, 3)}
    assert spans_of(["B-PER", "I-LOC"]) == {("PER", 0, 0), ("LOC", 1, 1)}


def test_totals_reproduce_seqeval():
    counts = sentence_counts(GOLD, PREDICTED)
    expected = score_sequences(GOLD, PREDICTED, span_task=True)
    overall = precision_recall_f1(counts.table.sum(0)[0])
    for key in ("precision", "recall", "f1"):
        assert overall[key] == pytest.approx(expected[key], abs=1e-12)
    for entity_type, values in expected["per_type"].items():
        ours = precision_recall_f1(counts.table.sum(0)[counts.names.index(entity_type)])
        for key in ("precision", "recall", "f1"):
            assert ours[key] == pytest.approx(values[key], abs=1e-12), (entity_type, key)


def test_counts_of_tags_without_spans_are_token_accuracy():
    gold, predicted = [["NN", "VB", "DT"], ["NN"]], [["NN", "NN", "DT"], ["VB"]]
    counts = sentence_counts(gold, predicted)
    assert counts.metric == "accuracy" and counts.names == ("overall",)
    assert counts.table[:, 0].tolist() == [[2, 3, 3], [0, 1, 1]]
    assert precision_recall_f1(counts.table.sum(0)[0])["f1"] == pytest.approx(0.5)


def test_identical_systems_differ_by_nothing():
    counts = sentence_counts(GOLD * 10, PREDICTED * 10)
    bootstrap = paired_bootstrap(counts, counts, samples=200)
    for values in bootstrap.values():
        assert values["difference"] == 0 and values["interval"] == [0.0, 0.0]
    assert set(approximate_randomization(counts, counts, samples=200).values()) == {1.0}


def test_a_clear_difference_is_significant():
    a = one_span_sentences([i < 100 for i in range(200)])  # 100 of 200 right
    b = one_span_sentences([i < 180 for i in range(200)])  # 180 of 200 right
    bootstrap = paired_bootstrap(a, b, samples=1000, seed=0)["overall"]
    assert bootstrap["difference"] == pytest.approx(0.4)
    assert bootstrap["interval"][0] > 0
    assert approximate_randomization(a, b, samples=2000, seed=0)["overall"] < 0.01


def test_a_difference_of_one_sentence_is_not():
    # A alone is right on sentences 0-9, B alone on 10-20: B leads by one sentence of 200
    a = one_span_sentences([i < 10 or i >= 21 and i % 2 == 0 for i in range(200)])
    b = one_span_sentences([10 <= i < 21 or i >= 21 and i % 2 == 0 for i in range(200)])
    bootstrap = paired_bootstrap(a, b, samples=1000, seed=0)["overall"]
    assert bootstrap["difference"] == pytest.approx(1 / 200)
    low, high = bootstrap["interval"]
    assert low < 0 < high
    assert approximate_randomization(a, b, samples=2000, seed=0)["overall"] > 0.3


def test_bootstrap_interval_covers_the_true_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    true_a, true_b, sentences, repetitions = 0.7, 0.75, 300, 300
    covered = 0
    for repetition in range(repetitions):
        shared = rng.random(sentences)  # the systems' errors are correlated, as real ones are
        a = one_span_sentences(list(shared < true_a))
        b = one_span_sentences(
            list(np.where(rng.random(sentences) < 0.5, shared, rng.random(sentences)) < true_b)
        )
        low, high = paired_bootstrap(a, b, samples=500, seed=repetition)["overall"]["interval"]
        covered += low <= true_b - true_a <= high
    assert 0.88 <= covered / repetitions <= 0.99


def test_documents_resample_as_units():
    a = one_span_sentences([i % 2 == 0 for i in range(40)])
    b = one_span_sentences([True] * 40)
    documents = [i // 4 for i in range(40)]
    by_document = paired_bootstrap(a, b, samples=300, unit_ids=documents)["overall"]
    assert by_document["difference"] == pytest.approx(0.5)
    # every document holds two of A's errors, so each resample has the same difference
    assert by_document["interval"] == pytest.approx([0.5, 0.5])
    assert approximate_randomization(a, b, samples=500, unit_ids=documents)["overall"] < 0.01


def test_single_system_interval_brackets_its_score():
    counts = sentence_counts(GOLD * 20, PREDICTED * 20)
    result = bootstrap_interval(counts, samples=300)
    low, high = result["overall"]["interval"]
    assert low <= result["overall"]["score"] <= high
    assert result["overall"]["score"] == pytest.approx(score_sequences(GOLD, PREDICTED, True)["f1"])


def test_different_gold_is_refused():
    a = sentence_counts(GOLD, PREDICTED)
    b = sentence_counts([["O"] * len(tags) for tags in GOLD], PREDICTED)
    with pytest.raises(ValueError, match="gold"):
        paired_bootstrap(a, b)
