"""Scores of tag sequences: token accuracy for every task, entity scores for span tasks.

Entity precision, recall and F1 come from seqeval in its default mode, which counts spans the
way the CoNLL shared task's `conlleval` script does.
"""

from seqeval.metrics import classification_report


def token_accuracy(gold: list[list[str]], predicted: list[list[str]]) -> float:
    pairs = [
        (g, p) for gs, ps in zip(gold, predicted, strict=True) for g, p in zip(gs, ps, strict=True)
    ]
    return sum(g == p for g, p in pairs) / len(pairs) if pairs else 0.0


def score_sequences(gold: list[list[str]], predicted: list[list[str]], span_task: bool) -> dict:
    """`accuracy`; for span tasks also micro `precision`/`recall`/`f1` and `per_type` scores.

    `per_type` maps each entity type to precision, recall, f1 and support (gold spans).
    """
    scores = {"accuracy": token_accuracy(gold, predicted)}
    if span_task:
        report = classification_report(gold, predicted, output_dict=True, zero_division=0)
        overall = report.pop("micro avg")
        scores.update(
            precision=float(overall["precision"]), recall=float(overall["recall"]),
            f1=float(overall["f1-score"]),
        )  # fmt: skip
        scores["support"] = int(overall["support"])
        scores["per_type"] = {
            entity_type: {
                "precision": float(values["precision"]),
                "recall": float(values["recall"]),
                "f1": float(values["f1-score"]),
                "support": int(values["support"]),
            }  # fmt: skip
            for entity_type, values in sorted(report.items())
            if not entity_type.endswith(" avg")
        }
    return scores
