"""Is one tagger really better than another on the same test set? Paired significance tests.

    python -m bert_pos.scoring.significance --bench     # how long 1,000 resamples of 3,453 sentences take

Every test here works on per-sentence counts (`sentence_counts`): for span tag sets, the
correct, predicted and gold entity spans of each sentence, overall and per entity type, found
exactly as seqeval's default (conlleval) mode finds them, so the totals give seqeval's micro
precision, recall and F1; for tag sets without spans (POS), correct and scored tokens, so the
same formula gives token accuracy. A corpus-level score is not a mean of sentence scores, so
each resample or permutation sums the counts of its sentences first and scores the sums.

`paired_bootstrap` resamples sentences (or documents) with replacement, the same resample for
both systems, and gives a 95% percentile interval of the difference B - A;
`approximate_randomization` gives a p-value by swapping the two systems' outputs on each
sentence (or document) with probability 1/2; `bootstrap_interval` is one system's interval.
"""

import sys
import time
from typing import NamedTuple

import numpy as np

from bert_pos.data.labels import is_span_label_set
from bert_pos.scoring.spans import spans_of

OVERALL = "overall"
CORRECT, PREDICTED, GOLD = 0, 1, 2  # the last axis of a counts table
PERMUTATION_CHUNK = 500  # permutations scored at once: bounds memory to chunk x units floats


class Counts(NamedTuple):
    """Per-sentence counts of one system's output.

    `table[s, k]` holds (correct, predicted, gold) of sentence s for `names[k]`: `overall`
    first, then each entity type in sorted order (only `overall` without spans). `metric`:
    `f1` (entity spans) or `accuracy` (tokens, where predicted = gold = tokens scored)."""

    table: np.ndarray  # (sentences, names, 3) integers
    names: tuple[str, ...]
    metric: str


def sentence_counts(
    gold: list[list[str]], predicted: list[list[str]], span_task: bool | None = None
) -> Counts:
    """The counts of every sentence; `span_task=None` decides from the gold tags (IOB or not)."""
    if span_task is None:
        span_task = is_span_label_set(sorted({tag for tags in gold for tag in tags}))
    for index, (gold_tags, predicted_tags) in enumerate(zip(gold, predicted, strict=True)):
        if len(gold_tags) != len(predicted_tags):
            raise ValueError(
                f"sentence {index}: {len(gold_tags)} gold tags but {len(predicted_tags)} predicted"
            )
    if not span_task:
        correct = [sum(g == p for g, p in zip(gs, ps)) for gs, ps in zip(gold, predicted)]
        tokens = [len(gs) for gs in gold]
        table = np.array([correct, tokens, tokens], dtype=np.int64).T  # (sentences, 3)
        return Counts(table.reshape(len(gold), 1, 3), (OVERALL,), "accuracy")
    gold_spans = [spans_of(tags) for tags in gold]
    predicted_spans = [spans_of(tags) for tags in predicted]
    return span_counts(gold_spans, predicted_spans)


def mention_counts(gold: list[list], predicted: list[list]) -> Counts:
    """The counts of every sentence of span data: its gold and predicted mentions, (start, end,
    type), nested ones included, matched exactly."""
    as_sets = [
        [{(m[2], m[0], m[1]) for m in sentence} for sentence in side] for side in (gold, predicted)
    ]
    return span_counts(*as_sets)


def span_counts(gold_spans: list[set], predicted_spans: list[set]) -> Counts:
    """Per sentence and type, correct, predicted and gold spans ((type, ...) tuples)."""
    types = sorted({span[0] for spans in gold_spans + predicted_spans for span in spans})
    column = {entity_type: k + 1 for k, entity_type in enumerate(types)}
    table = np.zeros((len(gold_spans), len(types) + 1, 3), dtype=np.int64)
    for s, (gold_set, predicted_set) in enumerate(zip(gold_spans, predicted_spans)):
        for kind, spans in (
            (CORRECT, gold_set & predicted_set),
            (PREDICTED, predicted_set),
            (GOLD, gold_set),
        ):
            for span in spans:
                table[s, column[span[0]], kind] += 1
    table[:, 0, :] = table[:, 1:, :].sum(axis=1)
    return Counts(table, (OVERALL, *types), "f1")


def scores_of(totals: np.ndarray) -> np.ndarray:
    """F1 = 2 correct / (predicted + gold) of summed counts (..., 3) -> (...); 0 where nothing
    was predicted or gold. Equal to seqeval's 2PR / (P + R), and to accuracy where predicted =
    gold = tokens."""
    totals = np.asarray(totals, dtype=np.float64)
    denominator = totals[..., PREDICTED] + totals[..., GOLD]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * totals[..., CORRECT] / denominator, 0.0)


def precision_recall_f1(totals: np.ndarray) -> dict:
    """Precision, recall and F1 of one row of summed counts (correct, predicted, gold)."""
    correct, predicted, gold = (int(value) for value in totals)
    return {
        "precision": correct / predicted if predicted else 0.0,
        "recall": correct / gold if gold else 0.0,
        "f1": float(scores_of(totals)),
    }


def unit_table(counts: Counts, unit_ids: list | None) -> np.ndarray:
    """Counts summed per resampling unit (units, names, 3): the sentences themselves, or the
    groups that `unit_ids` (one id per sentence, e.g. its document) makes."""
    if unit_ids is None:
        return counts.table
    if len(unit_ids) != len(counts.table):
        raise ValueError(f"{len(unit_ids)} unit ids for {len(counts.table)} sentences")
    _, unit_index = np.unique(np.asarray(unit_ids), return_inverse=True)
    table = np.zeros((unit_index.max() + 1, *counts.table.shape[1:]), dtype=np.int64)
    np.add.at(table, unit_index, counts.table)
    return table


def aligned_tables(counts_a: Counts, counts_b: Counts, unit_ids) -> tuple:
    """Both systems' unit tables over the same names (a type one system never predicts has
    zero counts there); the gold counts must agree: both must have scored the same data."""
    names = (OVERALL, *sorted(set(counts_a.names[1:]) | set(counts_b.names[1:])))
    if counts_a.metric != counts_b.metric or len(counts_a.table) != len(counts_b.table):
        raise ValueError("the two systems' counts are not of the same sentences and metric")
    tables = []
    for counts in (counts_a, counts_b):
        table = np.zeros((len(counts.table), len(names), 3), dtype=np.int64)
        for k, name in enumerate(counts.names):
            table[:, names.index(name)] = counts.table[:, k]
        tables.append(unit_table(Counts(table, names, counts.metric), unit_ids))
    if not np.array_equal(tables[0][..., GOLD], tables[1][..., GOLD]):
        raise ValueError("the two systems' gold counts differ: they did not score the same data")
    return names, tables[0], tables[1]


def resample_weights(units: int, samples: int, seed: int) -> np.ndarray:
    """How many times each unit is drawn in each bootstrap resample (samples, units): drawing
    `units` units with replacement, as a count matrix, so a resample's totals are one matrix
    product instead of gathering (samples x units x names x 3) counts."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, units, size=(samples, units))
    draws += np.arange(samples)[:, None] * units  # each resample counts into its own row
    return np.bincount(draws.ravel(), minlength=samples * units).reshape(samples, units)


def resampled_scores(weights: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Scores of each resample (samples, names) from unit weights and a unit table."""
    flat = table.reshape(len(table), -1).astype(np.float64)  # (units, names * 3)
    totals = (weights.astype(np.float64) @ flat).reshape(len(weights), *table.shape[1:])
    return scores_of(totals)


def percentile_interval(values: np.ndarray) -> list[list[float]]:
    """The 2.5th and 97.5th percentiles of each column of (samples, names)."""
    low, high = np.percentile(values, [2.5, 97.5], axis=0)
    return [[float(lo), float(hi)] for lo, hi in zip(low, high)]


def paired_bootstrap(
    counts_a: Counts, counts_b: Counts, samples: int = 1000, seed: int = 0, unit_ids=None
) -> dict:
    """The paired bootstrap of B - A: {name: {a, b, difference, interval}} for `overall` and
    each entity type, `interval` the 95% percentile interval [low, high] of the difference.

    Each resample draws units (sentences, or the groups of `unit_ids`: documents, whose
    sentences are not independent) with replacement, and scores both systems on the same
    draw, so what both get right or wrong together cancels from the difference."""
    names, table_a, table_b = aligned_tables(counts_a, counts_b, unit_ids)
    weights = resample_weights(len(table_a), samples, seed)
    scores_a, scores_b = resampled_scores(weights, table_a), resampled_scores(weights, table_b)
    observed_a, observed_b = scores_of(table_a.sum(0)), scores_of(table_b.sum(0))
    intervals = percentile_interval(scores_b - scores_a)
    return {
        name: {
            "a": float(observed_a[k]),
            "b": float(observed_b[k]),
            "difference": float(observed_b[k] - observed_a[k]),
            "interval": intervals[k],
        }
        for k, name in enumerate(names)
    }


def approximate_randomization(
    counts_a: Counts, counts_b: Counts, samples: int = 10000, seed: int = 0, unit_ids=None
) -> dict:
    """Two-sided p-value of B - A per name ({name: p}), by a paired permutation test.

    Each permutation swaps the two systems' outputs on each unit (sentence, or group of
    `unit_ids`) with probability 1/2 and scores the difference of the swapped totals.
    Convention: p = (number of permutations with |diff_perm| >= |diff_obs| + 1) / (samples + 1),
    which counts the observed assignment as one permutation, so p is never 0; differences
    within 1e-12 of |diff_obs| count as ties (>=), so identical systems give p = 1."""
    names, table_a, table_b = aligned_tables(counts_a, counts_b, unit_ids)
    total_a, total_b = table_a.sum(0).astype(np.float64), table_b.sum(0).astype(np.float64)
    observed = np.abs(scores_of(total_b) - scores_of(total_a))
    # swapping unit u moves its (B - A) counts from B's totals into A's
    gains = (table_b - table_a).reshape(len(table_a), -1).astype(np.float64)
    rng = np.random.default_rng(seed)
    as_extreme = np.zeros(len(names), dtype=np.int64)
    for start in range(0, samples, PERMUTATION_CHUNK):
        size = min(PERMUTATION_CHUNK, samples - start)
        swaps = rng.random((size, len(table_a))) < 0.5  # (size, units)
        moved = (swaps @ gains).reshape(size, *table_a.shape[1:])
        differences = scores_of(total_b - moved) - scores_of(total_a + moved)
        as_extreme += (np.abs(differences) >= observed - 1e-12).sum(0)
    return {name: float((as_extreme[k] + 1) / (samples + 1)) for k, name in enumerate(names)}


def bootstrap_interval(counts: Counts, samples: int = 1000, seed: int = 0, unit_ids=None) -> dict:
    """One system's score and its 95% bootstrap percentile interval: {name: {score, interval}}
    (F1, or accuracy without spans), for metrics.json."""
    table = unit_table(counts, unit_ids)
    weights = resample_weights(len(table), samples, seed)
    intervals = percentile_interval(resampled_scores(weights, table))
    observed = scores_of(table.sum(0))
    return {
        name: {"score": float(observed[k]), "interval": intervals[k]}
        for k, name in enumerate(counts.names)
    }


def benchmark(sentences: int = 3453, samples: int = 1000, types: int = 4) -> dict:
    """Seconds for a paired bootstrap and an approximate randomization of `samples` each over
    synthetic counts of `sentences` sentences (3,453: the CoNLL-2003 test set)."""
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 4, size=(sentences, types))
    tables = []
    for _ in range(2):
        correct = rng.binomial(gold, 0.9)
        predicted = correct + rng.integers(0, 2, size=(sentences, types))
        per_type = np.stack([correct, predicted, gold], axis=-1)
        tables.append(np.concatenate([per_type.sum(1, keepdims=True), per_type], axis=1))
    names = (OVERALL, *(f"T{k}" for k in range(types)))
    counts_a, counts_b = Counts(tables[0], names, "f1"), Counts(tables[1], names, "f1")
    began = time.perf_counter()
    paired_bootstrap(counts_a, counts_b, samples=samples)
    bootstrap_seconds = time.perf_counter() - began
    began = time.perf_counter()
    approximate_randomization(counts_a, counts_b, samples=samples)
    randomization_seconds = time.perf_counter() - began
    return {
        "sentences": sentences,
        "samples": samples,
        "bootstrap_s": bootstrap_seconds,
        "randomization_s": randomization_seconds,
    }


if __name__ == "__main__":
    if sys.argv[1:] != ["--bench"]:
        sys.exit("usage: python -m bert_pos.scoring.significance --bench")
    result = benchmark()
    print(
        f"{result['samples']} samples x {result['sentences']} sentences: paired bootstrap "
        f"{result['bootstrap_s']:.3f} s, approximate randomization "
        f"{result['randomization_s']:.3f} s"
    )
