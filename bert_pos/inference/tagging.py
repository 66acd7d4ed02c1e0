"""Tagging raw text or CoNLL files with a trained model (the work of `bert_pos.predict`).

Sentences are encoded and batched as training and evaluation encode and batch them
(`bert_pos.data.pipeline.encode_and_batch`: windows for long sentences, length-sorted
batches); each word takes the model's decoding at its first subword, so a sentence is tagged
exactly as evaluation scores it.
"""

import json
import logging
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import datasets
import torch
from omegaconf import DictConfig
from seqeval.metrics.sequence_labeling import get_entities

from bert_pos.data.conll import read_conll
from bert_pos.data.conllu import (
    FORM_COLUMN,
    new_conllu,
    parse_conllu,
    predicted_conllu,
    read_conllu,
)
from bert_pos.data.conllu import TASK_COLUMNS as CONLLU_TASK_COLUMNS
from bert_pos.data.labels import begin_to_inside_map, is_span_label_set
from bert_pos.data.pipeline import Batching, EncodingOptions, encode_and_batch
from bert_pos.inference.loading import TrainedModelError, load_trained
from bert_pos.modeling.encoders import max_length_of
from bert_pos.modeling.heads.span import resolve_spans
from bert_pos.modeling.tagger import Tagger
from bert_pos.modeling.words import at_word_starts
from bert_pos.runtime.devices import autocast_for, pick_device, resolve_precision
from bert_pos.scoring.scorer import UNALIGNED

log = logging.getLogger(__name__)

# A word: letters/digits joined by inner hyphens, apostrophes or dots ("1996-08-22", "O'Neill",
# "U.S"), or any other single non-space character (punctuation stands alone).
WORD = re.compile(r"\w+(?:[-'.]\w+)*|[^\w\s]")


def split_words(line: str) -> list[tuple[str, int, int]]:
    """Words of a raw text line with their character offsets (start, end)."""
    return [(m.group(), m.start(), m.end()) for m in WORD.finditer(line)]


def tag_sentences(
    model: Tagger,
    tokenizer,
    sentences: list[list[str]],
    label_names: list[str],
    batch_size: int,
    device: torch.device,
    autocast,
) -> list[list[tuple[str, float]]]:
    """(tag, probability) for every word of every sentence: each word takes the prediction at
    its first subword (argmax, or the model's Viterbi path; the probability is the label's
    at that subword). The sentences are encoded and batched as evaluation encodes and batches
    them (`data/pipeline.encode_and_batch`: windows for long sentences, each word from the
    window that keeps it; length-sorted batches); words the tokenizer maps to no subword get
    O (`<none>` where the label set has no O, as in evaluation) with probability 0."""
    return tag_tasks(model, tokenizer, sentences, [label_names], batch_size, device, autocast)[0]


@torch.inference_mode()
def tag_tasks(
    model: Tagger,
    tokenizer,
    sentences: list[list[str]],
    task_labels: list[list[str]],
    batch_size: int,
    device: torch.device,
    autocast,
    mentions: list | None = None,
) -> list[list[list[tuple[str, float]]]]:
    """`tag_sentences` for the first `len(task_labels)` tasks of the model (their label names),
    in one encoder pass per batch: per task, (tag, probability) of every word. `mentions` (a
    list, filled here): the first task's span head's decoded mentions per sentence, nested
    ones too, as (first word, end word exclusive, type, probability)."""
    indices = [index for index, words in enumerate(sentences) if words]
    results = [
        [[("O" if "O" in labels else UNALIGNED, 0.0)] * len(words) for words in sentences]
        for labels in task_labels
    ]
    if not indices:
        return results
    words = [sentences[i] for i in indices]
    loader = input_loader(model, tokenizer, words, task_labels[0], batch_size)
    model.eval()
    heads = model.heads()
    spans = SpanDecoding(heads[0], indices) if hasattr(heads[0], "candidates") else None
    for rows, batch in zip(loader.batch_sampler, loader, strict=True):
        with autocast:
            every_logits = model(
                batch["input_ids"].to(device),
                batch["attention_mask"].to(device),
                batch["word_index"].to(device),
                all_tasks=True,
            )
        word_starts = batch["word_starts"].to(device)
        examples = [loader.dataset[i] for i in rows]
        tasks = zip(heads, every_logits, task_labels, results)
        for task, (head, logits, labels, task_results) in enumerate(tasks):
            logits = logits.float()
            if task == 0 and spans is not None:  # decoded per sentence, after every window
                spans.read(logits, {key: value.to(device) for key, value in batch.items()})
                continue
            # argmax, or the best path of a CRF head or constrained decoding
            best_label = head.decode_words(logits, word_starts)  # (B, W)
            best_probability = word_probabilities(head, logits, word_starts, best_label)
            for row, example in enumerate(examples):
                sentence = indices[example["sentence"]]
                ids, probabilities = best_label[row].tolist(), best_probability[row].tolist()
                for w, start in enumerate(example["word_starts"]):
                    if start >= 0:
                        word = example["first_word"] + w
                        task_results[sentence][word] = (labels[ids[w]], probabilities[w])
    if spans is not None:
        found = spans.decode(results[0], task_labels[0])
        if mentions is not None:
            mentions += [found.get(sentence, []) for sentence in range(len(sentences))]
    return results


def input_loader(model: Tagger, tokenizer, words: list[list[str]], labels, batch_size: int):
    """Sentences without labels, encoded and batched as evaluation encodes and batches."""
    unlabelled = datasets.Dataset.from_dict(
        {
            "tokens": words,
            "tags": [[0] * len(w) for w in words],
            "document_id": [-1] * len(words),
            "line": [-1] * len(words),
        }
    )
    max_length = max_length_of(tokenizer, model.config)
    options = EncodingOptions("first", begin_to_inside_map(labels), max_length, None)
    # padding to a multiple of 8 must not pad a full window past the model's positions
    multiple = 8 if max_length % 8 == 0 else 1
    batching = Batching(batch_size, batch_size, tokenizer.pad_token_id, multiple)
    _, loaders = encode_and_batch(
        datasets.DatasetDict({"input": unlabelled}), tokenizer, options, batching
    )
    return loaders["input"]


class SpanDecoding:
    """The span head's predictions, as evaluation makes them: candidate spans collected from
    every window of a sentence, then decoded per sentence (`resolve_spans`)."""

    def __init__(self, head, indices: list[int]):
        self.head, self.indices = head, indices
        self.candidates = defaultdict(list)  # sentence -> (first, last, type id, probability)
        self.words = {}  # (sentence, word) -> the probability its one-word span is none

    def read(self, logits: torch.Tensor, batch: dict) -> None:
        read = self.head.candidates(logits, batch)
        for row, (spans, none) in enumerate(read):
            sentence = self.indices[int(batch["sentence"][row])]
            first = int(batch["first_word"][row])
            self.candidates[sentence] += [(a + first, b + first, k, p) for a, b, k, p in spans]
            for w, start in enumerate(batch["word_starts"][row].tolist()):
                if start >= 0:
                    self.words[(sentence, first + w)] = none[w]

    def decode(self, tagged: list, labels: list[str]) -> dict[int, list]:
        """Write every word's (tag, probability) into `tagged` (per sentence: the outermost
        mention's tag and probability, or O and the probability that the word is none), and
        return each sentence's mentions, nested ones too, as (first word, end word
        exclusive, type, probability)."""
        head, found = self.head, {}
        for (sentence, word), probability in self.words.items():
            tagged[sentence][word] = ("O", probability)
        for sentence, candidates in self.candidates.items():
            kept = resolve_spans(candidates, head.nested)
            found[sentence] = [(a, b + 1, head.types[k - 1], p) for a, b, k, p in kept]
            for a, b, k, p in kept:
                if any(c <= a and b <= d and (c, d) != (a, b) for c, d, _, _ in kept):
                    continue  # nested inside a kept span: no tag for it
                for word in range(a, b + 1):
                    if (sentence, word) in self.words:  # a word with no subword stays O
                        ids = head.begin_ids if word == a else head.inside_ids
                        tagged[sentence][word] = (labels[ids[k - 1]], p)
        return found


def mention_entities(line: str, words, mentions: list) -> list[dict]:
    """The span head's mentions of a line as entities with character offsets into it."""
    return [
        entity(line, words, first, end - 1, kind, probability)
        for first, end, kind, probability in sorted(mentions)
    ]


def word_probabilities(head, logits, word_starts, best_label) -> torch.Tensor:
    """Each word's probability of its predicted label (B, W), at its first subword."""
    at_starts = at_word_starts(logits.softmax(-1), word_starts)  # (B, W, C)
    return at_starts.gather(2, best_label[..., None]).squeeze(2)


def entity_spans(
    line: str, words: list[tuple[str, int, int]], tagged: list[tuple[str, float]]
) -> list[dict]:
    """Entities of an IOB2-tagged line (spans as the CoNLL scorer reads them), with character
    offsets into `line` and the mean word probability as score."""
    spans = []
    for entity_type, first, last in get_entities([tag for tag, _ in tagged]):
        score = sum(p for _, p in tagged[first : last + 1]) / (last - first + 1)
        spans.append(entity(line, words, first, last, entity_type, score))
    return spans


def entity(line: str, words, first: int, last: int, kind: str, score: float) -> dict:
    """An entity over words `first`..`last` of `line`, with its character offsets."""
    start, end = words[first][1], words[last][2]
    return {
        "type": kind,
        "start": start,
        "end": end,
        "text": line[start:end],
        "score": round(score, 6),
    }


def read_inputs(source, input_format: str) -> tuple[list[str], list[list[tuple[str, int, int]]]]:
    """Lines and their words with character offsets; CoNLL input reads words from column 0,
    CoNLL-U input its syntactic words (FORM), and both report offsets into the words joined
    by single spaces."""
    if input_format in ("conll", "conllu"):
        if not isinstance(source, Path):
            raise TrainedModelError(f"input_format={input_format} reads a file, not stdin")
        if input_format == "conll":
            sentences = read_conll(source, label_column=0, label_names=None)
        else:
            sentences = read_conllu(source, FORM_COLUMN, None)
        lines = [" ".join(s.words) for s in sentences]
        return lines, [split_joined(s.words) for s in sentences]
    text = source.read_text() if isinstance(source, Path) else source.read()
    lines = text.splitlines()
    return lines, [split_words(line) for line in lines]


def split_joined(words: list[str]) -> list[tuple[str, int, int]]:
    offsets, position = [], 0
    for word in words:
        offsets.append((word, position, position + len(word)))
        position += len(word) + 1
    return offsets


def tsv_or_jsonl(
    output_format: str, lines, words, tagged: list, tasks: list[str], spans, mentions=None
) -> str:
    """`word<TAB>tag` lines (a tag column per task), or one JSON object per line (with entity
    spans for span tags; with several tasks, `tags` and `entities` map each task to its own).
    `tagged`: per task, `tag_sentences`'s output; `tasks`: their names; `spans`: whether each
    task's labels are spans; `mentions`: the span head's, per sentence, which then are the
    first task's entities (nested ones too) instead of its tags' spans."""
    out = []
    for i, (line, line_words) in enumerate(zip(lines, words, strict=True)):
        line_tags = [task_tagged[i] for task_tagged in tagged]
        if output_format == "tsv":
            for k, (word, _, _) in enumerate(line_words):
                out.append("\t".join([word] + [tags[k][0] for tags in line_tags]))
            out.append("")
            continue
        tags = {name: [t for t, _ in one] for name, one in zip(tasks, line_tags, strict=True)}
        entities = {
            name: entity_spans(line, line_words, one)
            for name, one, span in zip(tasks, line_tags, spans, strict=True)
            if span
        }
        if mentions is not None:
            found = mentions[i] if i < len(mentions) else []  # no batch at all: none
            entities[tasks[0]] = mention_entities(line, line_words, found)
        record = {"text": line, "words": [w for w, _, _ in line_words]}
        if len(tasks) > 1:
            record["tags"] = tags
            if entities:
                record["entities"] = entities
        else:
            record["tags"] = tags[tasks[0]]
            if entities:
                record["entities"] = entities[tasks[0]]
        out.append(json.dumps(record, ensure_ascii=False))
    return "\n".join(out) + "\n"


def conllu_output(cfg: DictConfig, tasks: list, source, lines, words, tagged: list) -> str:
    """CoNLL-U with the column of each of the model's tasks (UPOS, XPOS or FEATS) predicted: a
    CoNLL-U input with only those columns changed, or new lines for text and CoNLL input."""
    columns = [CONLLU_TASK_COLUMNS.get(task) for task in tasks]
    if None in columns:
        raise TrainedModelError(
            f"format=conllu needs a model of CoNLL-U tasks ({', '.join(CONLLU_TASK_COLUMNS)}), "
            f"loaded from its run folder or a multi-task export; model_dir={cfg.model_dir} "
            f"has the tasks {tasks}"
        )
    # per sentence, one label list per task's column
    tags = [[[tag for tag, _ in one[i]] for one in tagged] for i in range(len(lines))]
    if cfg.input_format == "conllu":
        first_lines = [s.first_line for s in parse_conllu(source)]
        return predicted_conllu(source, columns, dict(zip(first_lines, tags, strict=True)))[0]
    return new_conllu(lines, [[w for w, _, _ in ws] for ws in words], columns, tags)


def predict(cfg: DictConfig) -> dict:
    try:
        trained = load_trained(cfg.model_dir)
    except TrainedModelError as err:
        reason = str(err).removeprefix(f"{cfg.model_dir}: ")
        raise TrainedModelError(f"model_dir={cfg.model_dir}: {reason}") from None
    device = pick_device(cfg.device)
    datasets.disable_progress_bars()
    model, tokenizer = trained.model.to(device), trained.tokenizer
    tasks, task_labels = trained.task_names, model.task_label_names
    source = sys.stdin if cfg.input == "-" else Path(cfg.input)
    if source is not sys.stdin and not source.is_file():
        raise TrainedModelError(f"input={cfg.input}: no such file (or - for stdin)")
    lines, words = read_inputs(source, cfg.input_format)

    started = time.perf_counter()
    # the span head's mentions, nested ones too, beside the tags
    mentions = [] if hasattr(model.heads()[0], "decode_mentions") else None
    tagged = tag_tasks(  # every task in one pass
        model,
        tokenizer,
        [[w for w, _, _ in ws] for ws in words],
        task_labels,
        cfg.batch_size,
        device,
        autocast_for(device, resolve_precision(cfg.precision, device)),
        mentions,
    )
    seconds = time.perf_counter() - started

    if cfg.format == "conllu":
        text = conllu_output(cfg, tasks, source, lines, words, tagged)
    else:
        spans = [is_span_label_set(labels) for labels in task_labels]
        text = tsv_or_jsonl(cfg.format, lines, words, tagged, tasks, spans, mentions)
    if cfg.output == "-":
        sys.stdout.write(text)
    else:
        Path(cfg.output).write_text(text)
    word_count = sum(len(ws) for ws in words)
    stats = {
        "sentences": len(lines),
        "words": word_count,
        "seconds": seconds,
        "sentences_per_s": len(lines) / seconds,
        "words_per_s": word_count / seconds,
    }
    log.info(
        "tagged %d sentences (%d words) in %.2f s: %.1f sentences/s, %.0f words/s",
        len(lines),
        word_count,
        seconds,
        stats["sentences_per_s"],
        stats["words_per_s"],
    )
    return stats
