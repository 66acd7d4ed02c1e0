"""Exact span matching, nested mentions included: a predicted mention counts when its start,
end and type equal a gold mention's (the measure nested-NER papers report). On flat data it
equals conlleval's entity scores of the same spans written as IOB2 tags.
"""

import json
from collections import Counter
from pathlib import Path


def span_scores(gold: list[list[tuple]], predicted: list[list[tuple]]) -> dict:
    """Precision, recall, F1 and support (gold mentions), overall and per type, of
    per-sentence mention lists of (start, end, type)."""
    right, guessed, wanted = Counter(), Counter(), Counter()
    for gold_mentions, predicted_mentions in zip(gold, predicted, strict=True):
        gold_set, predicted_set = (
            set(map(tuple, gold_mentions)),
            set(map(tuple, predicted_mentions)),
        )
        for mention in gold_set:
            wanted[mention[2]] += 1
        for mention in predicted_set:
            guessed[mention[2]] += 1
            right[mention[2]] += mention in gold_set
    scores = prf(sum(right.values()), sum(guessed.values()), sum(wanted.values()))
    scores["per_type"] = {
        kind: prf(right[kind], guessed[kind], wanted[kind]) for kind in sorted(wanted | guessed)
    }
    return scores


def prf(right: int, guessed: int, wanted: int) -> dict:
    precision = right / guessed if guessed else 0.0
    recall = right / wanted if wanted else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": wanted}


def write_span_predictions(path: Path, tokens: list[list[str]], gold, predicted) -> None:
    """`predictions.jsonl`: per sentence its `tokens`, and its `gold` and `predicted`
    mentions as [start, end, type] (end exclusive)."""
    lines = [
        json.dumps(
            {"tokens": words, "gold": sorted(map(list, g)), "predicted": sorted(map(list, p))},
            ensure_ascii=False,
        )
        for words, g, p in zip(tokens, gold, predicted, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
