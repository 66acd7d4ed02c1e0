"""Running a tagger over a split and scoring its predictions, as the CoNLL shared task scores.

`evaluate` returns the scores and every word's predicted tag (`evaluate_tasks`: of every task
of a run, in one pass); details.py writes what else is read of an evaluation (predictions in
conlleval's format, metrics.json, a confusion matrix), and bert_pos/inference/evaluate_run.py
does it for a trained run folder, as `python -m bert_pos.evaluate` asks.
"""

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch.utils.data import DataLoader

from bert_pos.data.labels import IGNORE_INDEX
from bert_pos.data.tasks import ALL_TAGS, Task, has_all_tags, task_batch
from bert_pos.modeling.tagger import unwrap
from bert_pos.runtime.distributed import gather_lists, sum_over_ranks
from bert_pos.scoring.metrics import score_sequences
from bert_pos.scoring.span_scores import (
    Mentions,
    predicted_mentions,
    sentence_mentions,
    span_scores,
    windows_tagged_from_mentions,
)

log = logging.getLogger(__name__)

UNALIGNED = "<none>"  # prediction of a word with no subword, where the label set has no O


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
    task = Task("", label_names, view)
    if span_task != task.spans:
        raise ValueError(f"span_task={span_task} for labels {label_names}")
    golds = None if gold is None else [gold]
    scores, predicted = evaluate_tasks(model, loader, [task], level, device, autocast, mode, golds)
    return scores, predicted[0]


@torch.inference_mode()
def evaluate_tasks(
    model: torch.nn.Module,
    loader: DataLoader,
    tasks: list[Task],
    level: str,
    device: torch.device,
    autocast: AbstractContextManager,
    mode: str = "conlleval",
    golds: list | None = None,
    weights: list[float] | None = None,
    mentions: Mentions | None = None,
) -> tuple[dict, list[list[list[str]]]]:
    """`evaluate` for every task of a run in one pass of the encoder per batch: the scores,
    and each task's predicted word tags. With one task the scores are that task's (`f1`,
    `loss`, ...); with several, each task's as `<task>/<score>`, `loss` their `weights`-ed sum
    (the training objective), and `alltags/accuracy` where the tasks are UPOS, XPOS and FEATS
    (the CoNLL 2018 scorer's AllTags: a word counts where all three are right). `golds`: each
    task's `gold` (see `evaluate`). `mentions`: span data (nested mentions) of the first task,
    whose precision, recall and F1 are then the mentions' exact matches (see `Mentions`)."""
    was_training = model.training
    model.eval()
    heads = unwrap(model).heads()
    loss_sums, labelled = [0.0] * len(tasks), [0] * len(tasks)
    # per task, per example: (sentence, first word, gold words, predicted words, gold and
    # predicted labelled subwords), in the order the loader visits them (longest first)
    pieces = [[] for _ in tasks]
    # span head: (sentence, its candidate spans) of every example; a batch's word tags
    candidates, span_tags = [], None
    span_head = mentions is not None and hasattr(heads[0], "candidates")
    for indices, batch in zip(loader.batch_sampler, loader, strict=True):
        batch = {key: tensor.to(device, non_blocking=True) for key, tensor in batch.items()}
        with autocast:
            logits = model(
                batch["input_ids"], batch["attention_mask"], batch["word_index"], all_tasks=True
            )
        # each example's own word count (padding hides words with no subword and no label)
        word_counts = [len(loader.dataset[index]["word_starts"]) for index in indices]
        if span_head:
            read, span_tags = batch_candidates(heads[0], logits[0].float(), batch, indices)
            candidates += read
        for i, task in enumerate(tasks):
            task_logits = logits[i].float()  # (B, T, C)
            one = task_batch(batch, task.key)
            # the training objective (cross-entropy, or the CRF's negative log-likelihood), so
            # val/loss and train/loss measure the same quantity per labelled subword
            loss_sums[i] += heads[i].loss_sum(task_logits, one).item()
            labelled[i] += int((one["labels"] != IGNORE_INDEX).sum())
            tags = span_tags if i == 0 else None
            pieces[i] += batch_pieces(
                heads[i], task_logits, one, task.label_names, level, indices, word_counts, tags
            )
    model.train(was_training)
    decoded = sentence_mentions(heads[0], gather_lists(candidates)) if span_head else None
    per_task, predicted = score_tasks(
        tasks, pieces, loss_sums, labelled, golds, level, mode, device, mentions, decoded
    )
    return combined_scores(tasks, per_task, weights, golds, predicted), predicted


def score_tasks(tasks, pieces, loss_sums, labelled, golds, level, mode, device, mentions, decoded):
    """Each task's scores and predicted word tags from its pieces (see `evaluate_tasks`)."""
    per_task, predicted = [], []
    for i, task in enumerate(tasks):
        # Data-parallel: each process scored its share of the batches; score all of them
        # together, on every process, so metrics equal a single process's exactly.
        task_pieces = gather_lists(pieces[i])
        loss_sum, count = sum_over_ranks([loss_sums[i], labelled[i]], device)
        gold = None if golds is None else golds[i]
        if decoded is not None and i == 0:
            task_pieces = windows_tagged_from_mentions(task_pieces, decoded)
        scores, words = score_pieces(task_pieces, gold, level, task.spans, mode, task.view)
        scores["loss"] = loss_sum / max(count, 1)
        if mentions is not None and i == 0:
            mentions.predicted = predicted_mentions(decoded, words)
            scores.update(span_scores(mentions.gold, mentions.predicted))
        per_task.append(scores)
        predicted.append(words)
    return per_task, predicted


def batch_candidates(head, logits: torch.Tensor, batch: dict, indices: list[int]) -> tuple:
    """(sentence, candidates) of each example: the span head's candidate spans as (first, last,
    type id, probability) of the sentence's words; and the word tags (B, W) they decode to
    (`decode_words`'s), or None for a batch of windows, whose candidates reach past their
    kept words (each window's tags come from its kept words alone: `decode_words`)."""
    sentences, first_words = example_places(batch, indices)
    per_example = head.candidates(logits, batch)
    tags = None if "span_starts" in batch else head.tags_of(per_example, batch["word_starts"])
    return [
        (sentence, [(a + first, b + first, kind, p) for a, b, kind, p in spans])
        for sentence, first, (spans, _) in zip(sentences, first_words, per_example, strict=True)
    ], tags


def example_places(batch: dict, indices: list[int]) -> tuple[list[int], list[int]]:
    """Each example's sentence and its first word there: a window's (`sentence`, `first_word`
    in the batch), else the example's place in the loader's dataset and 0."""
    if "sentence" in batch:
        return batch["sentence"].tolist(), batch["first_word"].tolist()
    return list(indices), [0] * len(indices)


def combined_scores(tasks: list[Task], per_task: list[dict], weights, golds, predicted) -> dict:
    """One task's scores as they are; several tasks' as `<task>/<score>`, with `loss` their
    weighted sum and AllTags where the tasks have it (see `evaluate_tasks`)."""
    if len(tasks) == 1:
        return per_task[0]
    weights = weights or [1.0] * len(tasks)
    scores = {"loss": sum(w * s["loss"] for w, s in zip(weights, per_task, strict=True))}
    for task, one in zip(tasks, per_task, strict=True):
        scores.update({f"{task.name}/{key}": value for key, value in one.items()})
    if has_all_tags(tasks) and golds is not None:
        scores["alltags/accuracy"] = all_tags_accuracy(tasks, golds, predicted)
    return scores


def all_tags_accuracy(tasks: list[Task], golds: list, predicted: list) -> float:
    """The share of words whose UPOS, XPOS and FEATS (as compared: UFeats) are all right."""
    chosen = [i for i, task in enumerate(tasks) if task.name in ALL_TAGS]
    right = words = 0
    for sentence in range(len(golds[chosen[0]])):
        columns = [
            (
                viewed([golds[i][sentence]], tasks[i].view)[0],
                viewed([predicted[i][sentence]], tasks[i].view)[0],
            )
            for i in chosen
        ]
        for w in range(len(columns[0][0])):
            words += 1
            right += all(gold[w] == guess[w] for gold, guess in columns)
    return right / max(words, 1)


def task_scores(scores: dict, tasks: list[Task], index: int) -> dict:
    """One task's scores out of `evaluate_tasks`'s (its `<task>/` keys, unprefixed)."""
    if len(tasks) == 1:
        return scores
    prefix = f"{tasks[index].name}/"
    return {key[len(prefix) :]: value for key, value in scores.items() if key.startswith(prefix)}


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
    decoded: torch.Tensor | None = None,
) -> list[tuple]:
    """Each example's (sentence, first word, gold word tags, predicted word tags, gold and
    predicted tags of its labelled subwords; the last two only at subword level). `indices`:
    the examples' places in the loader's dataset (their sentences, where the batch has no
    `sentence` key); `word_counts`: how many words each scores. A gold label the model cannot
    predict (IGNORE_INDEX among the words) stands as the word's index in its sentence, for
    `with_gold_names` to name. `decoded`: the word tags, where the caller decoded them."""
    unaligned = "O" if "O" in label_names else UNALIGNED
    labels = batch["labels"]
    predictions = logits.argmax(-1)  # (B, T)
    starts = batch["word_starts"]  # (B, W), -1 for padding and for words without subwords
    if decoded is None:  # argmax at first subwords, or the best path (CRF head, constrained)
        decoded = model.decode_words(logits, starts)  # (B, W)
    word_predictions = decoded.tolist()
    if level == "subword":  # first subwords score the decoded word tags
        rows, words = (starts >= 0).nonzero(as_tuple=True)
        predictions[rows, starts[rows, words]] = decoded[rows, words]
        label_rows, prediction_rows = labels.tolist(), predictions.tolist()
    sentences, first_words = example_places(batch, indices)
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


def viewed(sequences: list[list[str]], view: Callable[[str], str] | None) -> list[list[str]]:
    """The labels as they are compared (`view`), or as they are."""
    if view is None:
        return sequences
    return [[view(label) for label in sequence] for sequence in sequences]
