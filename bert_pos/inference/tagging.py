"""Tagging raw text or CoNLL files with a trained model (the work of `bert_pos.predict`).

Sentences are encoded and batched as training and evaluation encode and batch them
(`bert_pos.data.pipeline.encode_and_batch`: windows for long sentences, length-sorted
batches); each word takes the model's decoding at its first subword, so a sentence is tagged
exactly as evaluation scores it.
"""

import logging
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass

import datasets
import torch
import torch.distributed as dist
from seqeval.metrics.sequence_labeling import get_entities

from bert_pos.data.batching import build_dataloaders
from bert_pos.data.labels import begin_to_inside_map
from bert_pos.data.pipeline import Batching, EncodingOptions, encode
from bert_pos.modeling.encoders import max_length_of
from bert_pos.modeling.heads.span import outermost, resolve_spans
from bert_pos.modeling.tagger import Tagger
from bert_pos.modeling.words import at_word_starts
from bert_pos.runtime.devices import padding_multiple
from bert_pos.runtime.distributed import gather_lists, is_distributed
from bert_pos.scoring.scorer import UNALIGNED

log = logging.getLogger(__name__)


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
    timings: Counter | None = None,
    document_context: "DocumentContext | None" = None,
) -> list[list[list[tuple[str, float]]]]:
    """`tag_sentences` for the first `len(task_labels)` tasks of the model (their label names),
    in one encoder pass per batch: per task, (tag, probability) of every word. `mentions` (a
    list, filled here): the first task's span head's decoded mentions per sentence, nested
    ones too, as (first word, end word exclusive, type, probability). `timings`: seconds
    spent encoding, in the model and decoding are added to it. `document_context`: for a
    tagger trained with it (the sentences outside its `tagged` range are context only).

    Data-parallel processes (torchrun) each run every `world_size`-th batch of the same
    batches one process would run, and every process gets all the tags: so the tags and
    their probabilities are those of one process, digit for digit."""
    timings = Counter() if timings is None else timings
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if is_distributed() else (0, 1)
    indices = [index for index, words in enumerate(sentences) if words]
    tagged = {}  # (task, sentence, word) -> (tag, probability), of this process's batches
    started = time.perf_counter()
    in_context = document_context.of(indices) if document_context else None
    words = [sentences[i] for i in indices]
    padding = padding_multiple(None, device)  # as training and evaluation pad on the device
    loader = input_loader(model, tokenizer, words, task_labels[0], batch_size, in_context, padding)
    timings["encoding"] += time.perf_counter() - started
    model.eval()
    heads = model.heads()
    spans = SpanDecoding(heads[0], indices) if hasattr(heads[0], "candidates") else None
    for number, rows in enumerate(loader.batch_sampler if indices else []):
        if number % world_size != rank:
            continue
        started = time.perf_counter()
        examples = [loader.dataset[i] for i in rows]
        batch = {key: value.to(device) for key, value in loader.collate_fn(examples).items()}
        collated = time.perf_counter()
        timings["encoding"] += collated - started
        with autocast:
            every_logits = model(
                batch["input_ids"], batch["attention_mask"], batch["word_index"], all_tasks=True
            )
        done = time.perf_counter()
        timings["model"] += done - collated
        tagged.update(tag_batch(heads, every_logits, batch, examples, indices, task_labels, spans))
        timings["decoding"] += time.perf_counter() - done
    started = time.perf_counter()
    results = every_process_tags(tagged, sentences, task_labels)
    if spans is not None:
        found = spans.decode(results[0], task_labels[0])
        if mentions is not None:
            mentions += [found.get(sentence, []) for sentence in range(len(sentences))]
    timings["decoding"] += time.perf_counter() - started
    return results


def tag_batch(heads, every_logits, batch, examples, indices, task_labels, spans) -> dict:
    """(task, sentence, word) -> (tag, probability) of a batch's words, every task; a span
    head's candidates go to `spans` instead, decoded once every window has been read."""
    tagged = {}
    for task, (head, logits) in enumerate(zip(heads, every_logits)):
        logits = logits.float()
        if task == 0 and spans is not None:
            spans.read(logits, batch)
            continue
        labels = task_labels[task]
        # argmax, or the best path of a CRF head or constrained decoding
        best_label = head.decode_words(logits, batch["word_starts"])  # (B, W)
        best_probability = word_probabilities(head, logits, batch["word_starts"], best_label)
        for row, example in enumerate(examples):
            sentence = indices[example["sentence"]]
            ids, probabilities = best_label[row].tolist(), best_probability[row].tolist()
            for w, start in enumerate(example["word_starts"]):
                if start >= 0:
                    word = example["first_word"] + w
                    tagged[task, sentence, word] = (labels[ids[w]], probabilities[w])
    return tagged


def every_process_tags(tagged: dict, sentences: list[list[str]], task_labels) -> list:
    """Per task, per sentence, every word's (tag, probability): those `tagged` by this process
    and (data-parallel) by the others; a word no batch tags (it has no subword) gets O, or
    `<none>` where the label set has no O, with probability 0."""
    results = [
        [[("O" if "O" in labels else UNALIGNED, 0.0)] * len(words) for words in sentences]
        for labels in task_labels
    ]
    for (task, sentence, word), value in gather_lists(list(tagged.items())):
        results[task][sentence][word] = value
    return results


@dataclass(frozen=True)
class DocumentContext:
    """What a tagger trained with document context (data/context.py) needs to see each
    sentence as it was trained and evaluated: its neighbours in its document around it, up to
    `subwords` per example. `documents`: each sentence's document; the sentences in `tagged`
    are tagged, the others are read as context only."""

    documents: list[int]
    subwords: int
    tagged: range

    def of(self, indices: list[int]) -> "DocumentContext":
        """The same context for the sentences at `indices` alone (in that order)."""
        kept = [i for i, index in enumerate(indices) if index in self.tagged]
        tagged = range(kept[0], kept[-1] + 1) if kept else range(0)
        return DocumentContext([self.documents[i] for i in indices], self.subwords, tagged)


def input_loader(
    model: Tagger,
    tokenizer,
    words: list[list[str]],
    labels,
    batch_size: int,
    document_context: DocumentContext | None = None,
    pad_to_multiple_of: int = 1,
):
    """Sentences without labels, encoded and batched as evaluation encodes and batches; with
    `document_context`, batches of the sentences it tags, each amid its document's.
    `pad_to_multiple_of`: the device's (`padding_multiple`: 8 on CUDA, 1 on CPU)."""
    documents = document_context.documents if document_context else [-1] * len(words)
    unlabelled = datasets.Dataset.from_dict(
        {
            "tokens": words,
            "tags": [[0] * len(w) for w in words],
            "document_id": documents,
            "line": [-1] * len(words),
        }
    )
    max_length = max_length_of(tokenizer, model.config)
    context = document_context.subwords if document_context else None
    options = EncodingOptions("first", begin_to_inside_map(labels), max_length, context)
    # padding to a multiple must not pad a full window past the model's positions
    multiple = pad_to_multiple_of if max_length % pad_to_multiple_of == 0 else 1
    batching = Batching(batch_size, batch_size, tokenizer.pad_token_id, multiple)
    examples = encode(datasets.DatasetDict({"input": unlabelled}), tokenizer, options)
    if document_context is not None:  # the context-only sentences make no examples
        examples["input"] = examples["input"].filter(
            lambda sentence: sentence in document_context.tagged, input_columns="sentence"
        )
    return build_dataloaders(examples, **asdict(batching))["input"]


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
        exclusive, type, probability). Data-parallel, every process's candidates first."""
        head, found = self.head, {}
        self.words = dict(gather_lists(list(self.words.items())))
        candidates = defaultdict(list)
        for sentence, spans in gather_lists(list(self.candidates.items())):
            candidates[sentence] += spans
        self.candidates = candidates
        for (sentence, word), probability in self.words.items():
            tagged[sentence][word] = ("O", probability)
        for sentence, candidates in self.candidates.items():
            kept = resolve_spans(candidates, head.nested)
            found[sentence] = [(a, b + 1, head.types[k - 1], p) for a, b, k, p in kept]
            for a, b, k, p in outermost(kept):  # those tags can hold
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
