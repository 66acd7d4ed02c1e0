"""Scores of tag sequences: token accuracy for every task, entity scores for span tasks.

Entity precision, recall and F1 come from seqeval in its default mode, which counts spans the
way the CoNLL shared task's `conlleval` script does.
"""

from seqeval.metrics import classification_report
from seqeval.scheme import IOB2


def token_accuracy(gold: list[list[str]], predicted: list[list[str]]) -> float:
    pairs = [
        (g, p) for gs, ps in zip(gold, predicted, strict=True) for g, p in zip(gs, ps, strict=True)
    ]
    return sum(g == p for g, p in pairs) / len(pairs) if pairs else 0.0


def score_sequences(
    gold: list[list[str]], predicted: list[list[str]], span_task: bool, mode: str = "conlleval"
) -> dict:
    """`accuracy`; for span tasks also micro `precision`/`recall`/`f1` and `per_type` scores.

    `per_type` maps each entity type to precision, recall, f1 and support (gold spans).
    `mode="conlleval"` counts spans as the CoNLL scorer does (an I-X after O opens a span);
    `mode="strict"` counts only well-formed IOB2 spans.
    """
    scores = {"accuracy": token_accuracy(gold, predicted)}
    if span_task:
        strict = {"mode": "strict", "scheme": IOB2} if mode == "strict" else {}
        report = classification_report(gold, predicted, output_dict=True, zero_division=0, **strict)
        overall = report.pop("micro avg")
        scores.update(
            precision=float(overall["precision"]),
            recall=float(overall["recall"]),
            f1=float(overall["f1-score"]),
        )
        scores["support"] = int(overall["support"])
        scores["per_type"] = {
            entity_type: {
                "precision": float(values["precision"]),
                "recall": float(values["recall"]),
                "f1": float(values["f1-score"]),
                "support": int(values["support"]),
            }
            for entity_type, values in sorted(report.items())
            if not entity_type.endswith(" avg")
        }
    return scores


def format_per_type_table(scores: dict) -> str:
    """Precision, recall, F1 and support per entity type, then overall (a Markdown table)."""
    lines = ["| type | precision | recall | f1 | support |", "|---|---|---|---|---|"]
    rows = list(scores.get("per_type", {}).items())
    if "f1" in scores:
        rows.append(("overall", scores))
    for name, values in rows:
        lines.append(
            f"| {name} | {values['precision']:.4f} | {values['recall']:.4f} | "
            f"{values['f1']:.4f} | {values['support']} |"
        )
    lines.append(f"\ntoken accuracy {scores['accuracy']:.4f}")
    return "\n".join(lines)


def format_results_table(rows: list[dict]) -> str:
    """Per-evaluation results in the reference model card's layout (a Markdown table); a run
    with several tasks has a column per task's metric (`<task>/f1`, `<task>/accuracy`)."""
    if rows and "val/accuracy" not in rows[0]:
        return format_tasks_results_table(rows)
    header = (
        "| Training Loss | Epoch | Step | Validation Loss | Precision | Recall | F1 | Accuracy |"
    )
    lines = [header, "|" + "---|" * 8]
    for row in rows:
        cells = progress_cells(row)
        cells += [
            f"{row[key]:.4f}" if key in row else "-"
            for key in ("val/precision", "val/recall", "val/f1")
        ]
        cells.append(f"{row['val/accuracy']:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def progress_cells(row: dict) -> list[str]:
    """A results row's first cells: training loss, epoch, step, validation loss."""
    return [
        f"{row['train/loss']:.4f}",
        f"{row['epoch']:g}",
        str(row["step"]),
        f"{row['val/loss']:.4f}",
    ]


def format_tasks_results_table(rows: list[dict]) -> str:
    scores = [
        key
        for key in rows[0]
        if key.count("/") == 2 and key.endswith(("/f1", "/accuracy")) and key.startswith("val/")
    ]
    header = ["Training Loss", "Epoch", "Step", "Validation Loss"] + [k[4:] for k in scores]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = progress_cells(row) + [f"{row[key]:.4f}" for key in scores]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
