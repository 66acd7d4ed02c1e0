"""Running a tagger over a split and scoring its predictions, as the CoNLL shared task scores.

`evaluate` returns the scores and every word's predicted tag; `evaluate_split` also writes
them (predictions in conlleval's format, metrics.json, a confusion matrix); `evaluate_run`
does it for a trained run folder, as `python -m bert_pos.evaluate` asks.
"""

import json
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import torch
from datasets import Dataset
from torch.utils.data import DataLoader

from bert_pos.data.conllu import write_conllu
from bert_pos.data.labels import IGNORE_INDEX
from bert_pos.data.sources import gold_labels
from bert_pos.modeling.tagger import unwrap
from bert_pos.runtime.distributed import gather_lists, sum_over_ranks
from bert_pos.scoring.error_analysis import write_error_report
from bert_pos.scoring.metrics import score_sequences
from bert_pos.scoring.predictions import PREDICTIONS_FILE, write_predictions
from bert_pos.scoring.significance import bootstrap_interval, sentence_counts

log = logging.getLogger(__name__)

UNALIGNED = "<none>"  # prediction of a word with no subword, where the label set has no O


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    loader: DataLoader,
    label_names: list[str],
    span_task: bool,
    level: str,
    device: torch.device,
    autocast: AbstractContextManager,
    mode: str = "conlleval",
    gold: list[list[str]] | None = None,
    view: Callable[[str], str] | None = None,
) -> tuple[dict, list[list[str]]]:
    """Loss and scores of `model` on `loader`, and the predicted tag of every word.

    Each word's prediction is the one at its first subword (the model's `decode_words`),
    whatever the training label strategy; how they are scored: `score_pieces`. The loss is
    the training objective (the model's `loss_sum`: cross-entropy, or a CRF's negative
    log-likelihood) per labelled subword, as train/loss is.

    A word whose gold label the model cannot predict (outside `label_names`, see
    data/sources.py) has the word label IGNORE_INDEX, so it adds nothing to the loss; it is
    scored with its label from `gold` (every word's gold label per sentence, in dataset
    order: `gold_labels`), at word level and, at its first subword, at subword level, as a
    word the model gets wrong. Without such words `gold` may be None.
    """
    was_training = model.training
    model.eval()
    loss_sum, labelled = 0.0, 0
    # per example: (sentence, first word, gold words, predicted words, gold and predicted
    # labelled subwords), in the order the loader visits them (longest first)
    pieces = []
    for indices, batch in zip(loader.batch_sampler, loader, strict=True):
        batch = {key: tensor.to(device, non_blocking=True) for key, tensor in batch.items()}
        with autocast:
            logits = model(batch["input_ids"], batch["attention_mask"], batch["word_index"])
        logits = logits.float()  # (B, T, C)
        labels = batch["labels"]
        # the training objective (cross-entropy, or the CRF's negative log-likelihood), so
        # val/loss and train/loss measure the same quantity per labelled subword
        loss_sum += unwrap(model).loss_sum(logits, batch).item()
        labelled += int((labels != IGNORE_INDEX).sum())
        # each example's own word count: padding hides it where a word has no subword and
        # no predictable label (start -1, label IGNORE_INDEX)
        word_counts = [len(loader.dataset[index]["word_starts"]) for index in indices]
        pieces += batch_pieces(
            unwrap(model), logits, batch, label_names, level, indices, word_counts
        )
    model.train(was_training)
    # Data-parallel: each process scored its share of the batches; score all of them together,
    # on every process, so metrics equal a single process's exactly and all ranks agree.
    pieces = gather_lists(pieces)
    loss_sum, labelled = sum_over_ranks([loss_sum, labelled], device)

    scores, predicted_words = score_pieces(pieces, gold, level, span_task, mode, view)
    scores["loss"] = loss_sum / max(labelled, 1)
    return scores, predicted_words


def score_pieces(pieces, gold, level: str, span_task: bool, mode: str, view) -> tuple[dict, list]:
    """The scores of every example's pieces, and the predicted word tags per sentence (in
    dataset order, as predicted).

    The windows of a long sentence (pieces of one `sentence` from `first_word` on) are
    stitched back into the whole sentence before scoring, so a span that crosses a window
    edge is one span. `level="word"` scores the word tags against the gold word labels;
    `level="subword"` scores every subword that carries a training label instead, as the
    Hugging Face token-classification recipes do. `view` maps a label to what is compared of
    it (CoNLL-U FEATS: its universal features, as the CoNLL 2018 scorer compares them)."""
    gold_words, predicted_words, gold_subwords, predicted_subwords = stitch_windows(pieces, 4)
    if level == "subword":
        gold_scored, predicted_scored = with_gold_names(gold_subwords, gold), predicted_subwords
    else:
        gold_scored, predicted_scored = with_gold_names(gold_words, gold), predicted_words
    scores = score_sequences(
        viewed(gold_scored, view), viewed(predicted_scored, view), span_task, mode
    )
    return scores, predicted_words


def batch_pieces(
    model,
    logits: torch.Tensor,
    batch: dict,
    label_names: list[str],
    level: str,
    indices: list[int],
    word_counts: list[int],
) -> list[tuple]:
    """Each example's (sentence, first word, gold word tags, predicted word tags, gold and
    predicted tags of its labelled subwords; the last two only at subword level). `indices`:
    the examples' places in the loader's dataset (their sentences, where the batch has no
    `sentence` key); `word_counts`: how many words each scores. A gold label the model cannot
    predict (IGNORE_INDEX among the words) stands as the word's index in its sentence, for
    `with_gold_names` to name."""
    unaligned = "O" if "O" in label_names else UNALIGNED
    labels = batch["labels"]
    predictions = logits.argmax(-1)  # (B, T)
    starts = batch["word_starts"]  # (B, W), -1 for padding and for words without subwords
    # argmax at first subwords, or the best path (CRF head, constrained decoding)
    decoded = model.decode_words(logits, starts)  # (B, W)
    word_predictions = decoded.tolist()
    if level == "subword":  # first subwords score the decoded word tags
        rows, words = (starts >= 0).nonzero(as_tuple=True)
        predictions[rows, starts[rows, words]] = decoded[rows, words]
        label_rows, prediction_rows = labels.tolist(), predictions.tolist()
    if "sentence" in batch:
        sentences, first_words = batch["sentence"].tolist(), batch["first_word"].tolist()
    else:
        sentences, first_words = list(indices), [0] * len(indices)
    pieces = []
    for row, row_gold in enumerate(batch["word_labels"].tolist()):
        n, first_word = word_counts[row], first_words[row]
        row_starts = starts[row, :n].tolist()
        gold_subwords, predicted_subwords = [], []
        if level == "subword":
            # a word the model cannot predict has no training label; its first subword scores it
            unpredictable_at = {
                start: first_word + w
                for w, (tag, start) in enumerate(zip(row_gold[:n], row_starts))
                if tag == IGNORE_INDEX and start >= 0
            }
            gold_subwords, predicted_subwords = scored_subwords(
                label_rows[row], prediction_rows[row], unpredictable_at, label_names
            )
        pieces.append(
            (
                sentences[row],
                first_word,
                [
                    label_names[tag] if tag != IGNORE_INDEX else first_word + w
                    for w, tag in enumerate(row_gold[:n])
                ],
                [
                    label_names[tag] if start >= 0 else unaligned
                    for tag, start in zip(word_predictions[row][:n], row_starts)
                ],
                gold_subwords,
                predicted_subwords,
            )
        )
    return pieces


def scored_subwords(
    gold_row: list[int], predicted_row: list[int], unpredictable_at: dict, label_names: list[str]
) -> tuple[list, list[str]]:
    """Gold and predicted tags of an example's scored subwords: those with a training label,
    and the positions in `unpredictable_at` (position -> the placeholder of a word whose gold
    label the model cannot predict)."""
    gold, predicted = [], []
    for position, (g, p) in enumerate(zip(gold_row, predicted_row)):
        if g == IGNORE_INDEX and position not in unpredictable_at:
            continue
        gold.append(label_names[g] if g != IGNORE_INDEX else unpredictable_at[position])
        predicted.append(label_names[p])
    return gold, predicted


def with_gold_names(sequences: list[list], gold: list[list[str]] | None) -> list[list[str]]:
    """Stitched gold sequences with every placeholder (the index of a word whose gold label the
    model cannot predict, see `batch_pieces`) replaced by that word's label in `gold`."""
    if gold is None:
        if any(isinstance(tag, int) for sequence in sequences for tag in sequence):
            raise ValueError(
                "evaluation: words whose gold label is IGNORE_INDEX, and no gold "
                "labels to name them (pass `gold`)"
            )
        return sequences
    return [
        [gold[sentence][tag] if isinstance(tag, int) else tag for tag in sequence]
        for sentence, sequence in enumerate(sequences)
    ]


def stitch_windows(pieces: list[tuple], count: int) -> list[list[list[str]]]:
    """`count` sequences per sentence, each over the whole sentence in dataset order, from
    (sentence, first word, sequence 1, ..., sequence `count`) pieces: a sentence's sequence
    is the concatenation of its pieces' in first-word order. A gap or an overlap between
    pieces is an error: those words would go unscored or be scored twice."""
    stitched = [[] for _ in range(count)]  # stitched[k][sentence]: sequence k of a sentence
    words = 0  # words of the last sentence so far (sequence 0 has one entry per word)
    for sentence, first_word, *sequences in sorted(pieces, key=lambda piece: piece[:2]):
        if first_word == 0 and sentence == len(stitched[0]):
            for whole, part in zip(stitched, sequences):
                whole.append(list(part))
        elif sentence == len(stitched[0]) - 1 and first_word == words:
            for whole, part in zip(stitched, sequences):
                whole[-1] += part
        else:
            raise ValueError(
                f"evaluation: sentence {sentence} has a piece from word {first_word}, but "
                f"{len(stitched[0])} sentences and {words} words of the last were stitched"
            )
        words = first_word + len(sequences[0])
    return stitched


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


def viewed(sequences: list[list[str]], view: Callable[[str], str] | None) -> list[list[str]]:
    """The labels as they are compared (`view`), or as they are."""
    if view is None:
        return sequences
    return [[view(label) for label in sequence] for sequence in sequences]


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
    label_names: list[str],
    span_task: bool,
    level: str,
    mode: str,
    device: torch.device,
    autocast: AbstractContextManager,
    out_dir: Path,
    title: str,
    write: bool = True,
    settings: dict | None = None,
    seen_entities: set | None = None,
    view: Callable[[str], str] | None = None,
    conllu: tuple[Path, int] | None = None,
):
    """Evaluate one split and write `predictions.txt`, `metrics.json` (with a bootstrap 95%
    interval of the word-level score), `confusion_matrix.png` and, for span tasks, the span
    error analysis `errors.json` / `errors.md` (split by entities seen in training where
    `seen_entities`, (surface, type) pairs, are given) into `out_dir`. Returns (scores,
    confusion-matrix figure, bootstrap interval); `write=False` (data-parallel ranks but the
    first) writes nothing and has neither figure nor interval;
    `settings` (what was evaluated, how) are recorded in metrics.json beside the scores.
    Gold labels the model cannot predict (see data/sources.py) are scored and written as
    gold, and have rows of their own in the confusion matrix, after the model's labels.
    `view` and `conllu`: see `evaluate` and `write_details`."""
    gold = gold_labels(sentences, label_names)
    scores, predicted = evaluate(
        model, loader, label_names, span_task, level, device, autocast, mode, gold, view
    )
    if not write:
        return scores, None, None
    figure, bootstrap = write_details(
        out_dir,
        sentences,
        gold,
        predicted,
        scores,
        label_names,
        span_task,
        title,
        settings,
        seen_entities,
        view,
        conllu,
    )
    return scores, figure, bootstrap


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
):
    """What is read of an evaluation beyond its scores, into `out_dir`: `predictions.txt`,
    `metrics.json` with the bootstrap interval, the span error analysis, the confusion matrix.
    Returns (confusion-matrix figure, bootstrap interval). Costlier than the scoring itself
    (the bootstrap above all), so the training loop writes it once, for its last evaluation.

    All of them hold the labels as compared (`view`); `conllu` = (the split's CoNLL-U file,
    the predicted column) also writes `predictions.conllu`: that file with the predictions, as
    predicted, in the column, every other byte as it was."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if conllu is not None:
        source, column = conllu
        by_first_line = dict(zip(sentences["line"], predicted, strict=True))
        write_conllu(source, out_dir / "predictions.conllu", column, by_first_line)
    gold, predicted = viewed(gold, view), viewed(predicted, view)
    write_predictions(
        out_dir / PREDICTIONS_FILE, sentences["tokens"], gold, predicted, sentences["document_id"]
    )
    recorded = {**scores, "bootstrap": word_level_bootstrap(gold, predicted, span_task)}
    if settings is not None:
        recorded["settings"] = settings
    (out_dir / "metrics.json").write_text(json.dumps(recorded, indent=2) + "\n")
    if span_task:
        write_error_report(
            out_dir / "errors.json",
            out_dir / "errors.md",
            sentences["tokens"],
            gold,
            predicted,
            seen_entities,
        )
    unpredictable = sorted({tag for tags in gold for tag in tags} - set(label_names))
    matrix_labels = label_names + unpredictable
    figure = plot_confusion_matrix(
        confusion_matrix(gold, predicted, matrix_labels), matrix_labels, title
    )
    figure.savefig(out_dir / "confusion_matrix.png", dpi=120)
    return figure, recorded["bootstrap"]
