"""What is read of an evaluation beyond its scores: predictions files, metrics.json with a
bootstrap interval, span error tables, the confusion matrix; and `evaluate_split`, which
scores a split (scorer.py) and writes them.
"""

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import torch
from datasets import Dataset
from torch.utils.data import DataLoader

from bert_pos.data.conllu import write_conllu
from bert_pos.data.mentions import gold_mentions
from bert_pos.data.sources import gold_labels
from bert_pos.data.tasks import Task
from bert_pos.modeling.tagger import unwrap
from bert_pos.scoring.error_analysis import write_error_report
from bert_pos.scoring.predictions import PREDICTIONS_FILE, write_predictions
from bert_pos.scoring.scorer import evaluate_tasks, task_scores, viewed
from bert_pos.scoring.significance import bootstrap_interval, mention_counts, sentence_counts
from bert_pos.scoring.span_scores import Mentions, write_span_predictions


def confusion_matrix(gold: list[list[str]], predicted: list[list[str]], label_names: list[str]):
    """Token counts, rows = gold label, columns = predicted label (an unaligned word's
    `<none>` prediction, if any, counts in no column)."""
    index = {label: i for i, label in enumerate(label_names)}
    counts = torch.zeros(len(label_names), len(label_names), dtype=torch.long)
    for gold_tags, predicted_tags in zip(gold, predicted, strict=True):
        for g, p in zip(gold_tags, predicted_tags, strict=True):
            if p in index:
                counts[index[g], index[p]] += 1
    return counts


def plot_confusion_matrix(counts: torch.Tensor, label_names: list[str], title: str):
    """A row-normalised heat map with the raw counts written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = counts.float() / counts.sum(1, keepdim=True).clamp(min=1)
    size = max(4.0, 0.35 * len(label_names) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(label_names)), label_names, rotation=90, fontsize=7)
    axes.set_yticks(range(len(label_names)), label_names, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    axes.set_title(title, fontsize=9)
    if len(label_names) <= 25:
        for g in range(len(label_names)):
            for p in range(len(label_names)):
                if counts[g, p]:
                    color = "white" if rates[g, p] > 0.5 else "black"
                    axes.text(
                        p, g, int(counts[g, p]), ha="center", va="center", fontsize=6, color=color
                    )
    figure.tight_layout()
    return figure


BOOTSTRAP_SAMPLES = 1000  # resamples of the sentences for a score's 95% interval


def word_level_bootstrap(
    gold: list[list[str]], predicted: list[list[str]], span_task: bool
) -> dict:
    """The word-level score (entity F1, or accuracy without spans) and its 95% percentile
    interval over 1,000 resamples of the sentences (seed 0): how much the score would move on
    another sample of sentences like these."""
    counts = sentence_counts(gold, predicted, span_task)
    overall = bootstrap_interval(counts, samples=BOOTSTRAP_SAMPLES, seed=0)
    return {
        "level": "word",
        "unit": "sentence",
        "samples": BOOTSTRAP_SAMPLES,
        "seed": 0,
        "scores": overall,
    }


def evaluate_split(
    model: torch.nn.Module,
    loader: DataLoader,
    sentences: Dataset,
    tasks: list[Task],
    level: str,
    mode: str,
    device: torch.device,
    autocast: AbstractContextManager,
    out_dir: Path,
    title: str,
    write: bool = True,
    settings: dict | None = None,
    seen_entities: list | None = None,
    conllu: tuple[Path, list[int]] | None = None,
    weights: list[float] | None = None,
):
    """Evaluate one split for every task and write what `write_evaluation` writes into
    `out_dir`. Returns (scores, confusion-matrix figures, bootstrap intervals); `write=False`
    (data-parallel ranks but the first) writes nothing and has neither figures nor intervals;
    `settings` (what was evaluated, how) are recorded in metrics.json beside the scores.
    Gold labels the model cannot predict (see data/sources.py) are scored and written as
    gold, and have rows of their own in the confusion matrix, after the model's labels."""
    golds = [gold_labels(sentences, task.label_names, task.key) for task in tasks]
    span_head = tasks[0].spans and hasattr(unwrap(model).heads()[0], "candidates")
    gold = gold_mentions(sentences, golds[0] if span_head else None)
    mentions = None if gold is None else Mentions(gold)
    scores, predicted = evaluate_tasks(
        model, loader, tasks, level, device, autocast, mode, golds, weights, mentions
    )
    if not write:
        return scores, None, None
    figures, bootstrap = write_evaluation(
        out_dir,
        sentences,
        tasks,
        golds,
        predicted,
        scores,
        title,
        settings,
        seen_entities,
        conllu,
        mentions,
    )
    return scores, figures, bootstrap


def write_evaluation(
    out_dir: Path,
    sentences: Dataset,
    tasks: list[Task],
    golds: list,
    predicted: list,
    scores: dict,
    title: str,
    settings: dict | None = None,
    seen_entities: list | None = None,
    conllu: tuple[Path, list[int]] | None = None,
    mentions: Mentions | None = None,
) -> tuple[dict, dict]:
    """What is read of an evaluation beyond its scores (`write_details`), into `out_dir`; with
    several tasks, each task's into `out_dir/<task>/`, and metrics.json with every score and
    predictions.conllu with every task's column at the top. Returns (confusion-matrix figure
    per TensorBoard tag prefix: "" or "<task>/", the bootstrap interval: with several tasks
    one per task). Span data (`mentions`) also writes `predictions.jsonl`, every sentence's gold
    and predicted mentions, and its bootstrap interval is the mentions' (the scores'), not the
    tags'."""
    seen_entities = seen_entities or [None] * len(tasks)
    if len(tasks) == 1:
        one_column = None if conllu is None else (conllu[0], conllu[1][0])
        figure, bootstrap = write_details(
            out_dir,
            sentences,
            golds[0],
            predicted[0],
            scores,
            tasks[0].label_names,
            tasks[0].spans,
            title,
            settings,
            seen_entities[0],
            tasks[0].view,
            one_column,
            mentions,
        )
        return {"": figure}, bootstrap
    return write_task_evaluations(
        out_dir, sentences, tasks, golds, predicted, scores, title, settings, seen_entities, conllu
    )


def write_task_evaluations(
    out_dir, sentences, tasks, golds, predicted, scores, title, settings, seen_entities, conllu
) -> tuple[dict, dict]:
    """`write_evaluation` of several tasks: each task's details in `out_dir/<task>/`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if conllu is not None:
        source, columns = conllu
        by_first_line = dict(zip(sentences["line"], zip(*predicted, strict=True), strict=True))
        write_conllu(source, out_dir / "predictions.conllu", columns, by_first_line)
    figures, bootstraps = {}, {}
    for i, task in enumerate(tasks):
        figure, bootstrap = write_details(
            out_dir / task.name,
            sentences,
            golds[i],
            predicted[i],
            task_scores(scores, tasks, i),
            task.label_names,
            task.spans,
            f"{task.name}, {title}",
            settings,
            seen_entities[i],
            task.view,
        )
        figures[f"{task.name}/"], bootstraps[task.name] = figure, bootstrap
    recorded = {**scores, "bootstrap": bootstraps}
    if settings is not None:
        recorded["settings"] = settings
    (out_dir / "metrics.json").write_text(json.dumps(recorded, indent=2) + "\n")
    return figures, bootstraps


def mention_bootstrap(mentions: Mentions) -> dict:
    """The bootstrap interval of span data's scores, which count mentions (not tags)."""
    return {
        "level": "mention",
        "unit": "sentence",
        "samples": BOOTSTRAP_SAMPLES,
        "seed": 0,
        "scores": bootstrap_interval(
            mention_counts(mentions.gold, mentions.predicted), BOOTSTRAP_SAMPLES, 0
        ),
    }


def write_details(
    out_dir: Path,
    sentences: Dataset,
    gold: list[list[str]],
    predicted: list[list[str]],
    scores: dict,
    label_names: list[str],
    span_task: bool,
    title: str,
    settings: dict | None = None,
    seen_entities: set | None = None,
    view: Callable[[str], str] | None = None,
    conllu: tuple[Path, int] | None = None,
    mentions: Mentions | None = None,
):
    """What is read of an evaluation beyond its scores, into `out_dir`: `predictions.txt`,
    `metrics.json` with the bootstrap interval, the span error analysis, the confusion matrix.
    Returns (confusion-matrix figure, bootstrap interval). Costlier than the scoring itself
    (the bootstrap above all), so the training loop writes it once, for its last evaluation.

    All of them hold the labels as compared (`view`); `conllu` = (the split's CoNLL-U file,
    the predicted column) also writes `predictions.conllu`: that file with the predictions, as
    predicted, in the column, every other byte as it was. Span data (`mentions`) also writes
    `predictions.jsonl`, and its bootstrap interval and error tables count the mentions, nested
    ones too, as its scores do."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if conllu is not None:
        source, column = conllu
        by_first_line = dict(zip(sentences["line"], predicted, strict=True))
        write_conllu(source, out_dir / "predictions.conllu", column, by_first_line)
    gold, predicted = viewed(gold, view), viewed(predicted, view)
    write_predictions(
        out_dir / PREDICTIONS_FILE, sentences["tokens"], gold, predicted, sentences["document_id"]
    )
    if mentions is not None:
        write_span_predictions(
            out_dir / "predictions.jsonl", sentences["tokens"], mentions.gold, mentions.predicted
        )
        bootstrap = mention_bootstrap(mentions)
    else:
        bootstrap = word_level_bootstrap(gold, predicted, span_task)
    recorded = {**scores, "bootstrap": bootstrap}
    if settings is not None:
        recorded["settings"] = settings
    (out_dir / "metrics.json").write_text(json.dumps(recorded, indent=2) + "\n")
    if span_task:
        spans = (gold, predicted) if mentions is None else (mentions.gold, mentions.predicted)
        write_error_report(
            out_dir / "errors.json",
            out_dir / "errors.md",
            sentences["tokens"],
            *spans,
            seen_entities,
            mentions=mentions is not None,
        )
    unpredictable = sorted({tag for tags in gold for tag in tags} - set(label_names))
    matrix_labels = label_names + unpredictable
    figure = plot_confusion_matrix(
        confusion_matrix(gold, predicted, matrix_labels), matrix_labels, title
    )
    figure.savefig(out_dir / "confusion_matrix.png", dpi=120)
    return figure, recorded["bootstrap"]
