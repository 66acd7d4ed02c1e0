"""Encoding: sentences of words into subword examples, nothing truncated.

One window encoder (`encode_sentences`) serves training, evaluation and `bert_pos.predict`:
a sentence that fits the model's window is one `Piece`; a longer one is cut into overlapping
word windows, each word kept (trained on and scored) in exactly one of them. Training and
evaluation then turn pieces into examples with subword labels (`tokenize_splits`), and
optionally fill each example with the neighbouring sentences of its document as unlabelled
context (data/context.py).
"""

import json
import logging
from collections import Counter
from dataclasses import dataclass

from datasets import Dataset, DatasetDict
from transformers import PreTrainedTokenizerFast

from bert_pos.data.context import add_document_context
from bert_pos.data.labels import IGNORE_INDEX

log = logging.getLogger(__name__)

# A tokenized example: model inputs, subword labels, and where its scored words are
EXAMPLE_COLUMNS = (
    "input_ids",
    "labels",
    "word_starts",
    "word_index",
    "tags",
    "sentence",
    "first_word",
    "reach_starts",
)


def special_token_counts(tokenizer: PreTrainedTokenizerFast) -> tuple[int, int]:
    """How many special tokens the tokenizer puts before and after a sentence ([CLS] .. [SEP],
    <s> .. </s>, ...)."""
    word_ids = tokenizer(["a"], is_split_into_words=True).word_ids()
    first = next(i for i, word in enumerate(word_ids) if word is not None)
    last = max(i for i, word in enumerate(word_ids) if word is not None)
    return first, len(word_ids) - 1 - last


# ---------------------------------------------------------------- subword alignment


def align_labels(
    word_ids: list[int | None], word_labels: list[int], strategy: str, continuation_label: list[int]
) -> list[int]:
    """Subword labels from word labels.

    `first`: a word's first subword gets its label, its other subwords IGNORE_INDEX.
    `all`: every subword is labelled; a continuation of a B-X word gets I-X
    (`continuation_label[label]`). Special tokens (word id None) always get IGNORE_INDEX.
    """
    labels = []
    previous_word = None
    for word_id in word_ids:
        if word_id is None:
            labels.append(IGNORE_INDEX)
        elif word_id != previous_word:
            labels.append(word_labels[word_id])
        elif strategy == "all":  # a label the model cannot predict stays ignored
            label = word_labels[word_id]
            labels.append(IGNORE_INDEX if label == IGNORE_INDEX else continuation_label[label])
        else:
            labels.append(IGNORE_INDEX)
        previous_word = word_id
    return labels


def word_start_positions(word_ids: list[int | None], num_words: int) -> list[int]:
    """Position of each word's first subword; -1 for a word the tokenizer mapped to nothing."""
    starts = [-1] * num_words
    for position, word_id in enumerate(word_ids):
        if word_id is not None and starts[word_id] == -1:
            starts[word_id] = position
    return starts


def subword_counts(word_ids: list[int | None], num_words: int) -> list[int]:
    counts = [0] * num_words
    for word_id in word_ids:
        if word_id is not None:
            counts[word_id] += 1
    return counts


# ---------------------------------------------------------------- windows


class WordTooLongError(ValueError):
    """A single word has more subwords than the model's window holds."""

    def __init__(self, message: str, sentence: int, word: int):
        super().__init__(message)
        self.sentence, self.word = sentence, word


def word_windows(subword_counts: list[int], budget: int) -> list[tuple[int, int, int, int]]:
    """Overlapping word windows for a sentence longer than `budget` subwords.

    Returns (start, end, keep_start, keep_end) word ranges: each window's subwords fit the
    budget, consecutive windows overlap by about half a window, and every word is kept from
    exactly one window, the one where it sits farther from the edge (more context).
    """
    n = len(subword_counts)
    spans = []
    start = 0
    while True:
        end, total = start, 0
        while end < n and total + subword_counts[end] <= budget:
            total += subword_counts[end]
            end += 1
        if end == start:
            raise WordTooLongError(
                f"word {start} alone has {subword_counts[start]} subwords, more than the "
                f"model's window of {budget}",
                sentence=-1,
                word=start,
            )
        spans.append((start, end))
        if end == n:
            break
        start = max(start + 1, (start + end) // 2)
    cuts = [0] + [(spans[i + 1][0] + spans[i][1]) // 2 for i in range(len(spans) - 1)] + [n]
    return [(s, e, cuts[i], cuts[i + 1]) for i, (s, e) in enumerate(spans)]


@dataclass
class Piece:
    """One example of a sentence: the whole sentence, or one window of a long one."""

    input_ids: list[int]
    word_ids: list[int | None]  # the sentence's word of each subword; None for special tokens
    # (and lone start markers, see `without_markers`)
    keep_start: int  # the piece trains on and scores the words keep_start .. keep_end - 1;
    keep_end: int  # the others in it are context
    window_end: int  # the window's words are keep_start's window start .. window_end - 1

    def word_starts(self, num_words: int) -> list[int]:
        """First-subword position of each kept word (-1: the word has no subword)."""
        return word_start_positions(self.word_ids, num_words)[self.keep_start : self.keep_end]

    def reach_starts(self, num_words: int) -> list[int]:
        """First-subword positions of the window's words after the kept ones (empty for a
        whole sentence): a span head scores the spans that start at a kept word and end
        there, so a mention across the kept edge is seen whole by the window keeping its
        first word."""
        return word_start_positions(self.word_ids, num_words)[self.keep_end : self.window_end]

    def word_index(self) -> list[int]:
        """Each subword's word among the kept ones (for pooling); -1 for none."""
        return [
            w - self.keep_start if w is not None and self.keep_start <= w < self.keep_end else -1
            for w in self.word_ids
        ]


def encode_sentences(
    tokenizer: PreTrainedTokenizerFast, sentences: list[list[str]], max_length: int
) -> list[list[Piece]]:
    """The pieces of each sentence (lists of words, none empty): one batched tokenizer call,
    and a second call per window for the sentences longer than `max_length` subwords."""
    encoding = tokenizer(sentences, is_split_into_words=True, truncation=False)
    budget = max_length - tokenizer.num_special_tokens_to_add()
    markers = bare_marker_ids(tokenizer)
    pieces = []
    for row, words in enumerate(sentences):
        word_ids = encoding.word_ids(row)
        if len(word_ids) <= max_length:
            ids = encoding["input_ids"][row]
            marked = without_markers(ids, word_ids, markers)
            pieces.append([Piece(ids, marked, 0, len(words), len(words))])
            continue
        try:
            windows = word_windows(subword_counts(word_ids, len(words)), budget)
        except WordTooLongError as err:
            raise WordTooLongError(str(err), sentence=row, word=err.word) from None
        sentence_pieces = []
        for start, end, keep_start, keep_end in windows:
            if keep_start == keep_end:  # a window that keeps no word trains and scores nothing
                continue
            window = tokenizer(words[start:end], is_split_into_words=True, truncation=False)
            window_ids = [None if w is None else start + w for w in window.word_ids()]
            window_ids = without_markers(window["input_ids"], window_ids, markers)
            sentence_pieces.append(
                Piece(window["input_ids"], window_ids, keep_start, keep_end, end)
            )
        pieces.append(sentence_pieces)
    return pieces


def bare_marker_ids(tokenizer: PreTrainedTokenizerFast) -> set[int]:
    """Ids of the lone word-start markers of byte-level BPE (`Ġ`) and SentencePiece-style
    (`▁`) vocabularies: a word whose letters have no piece with the marker attached starts
    with the marker alone, which says nothing of the word. WordPiece has none."""
    state = json.loads(tokenizer.backend_tokenizer.to_str()).get("pre_tokenizer") or {}
    kinds = json.dumps(state)
    marks = ({"Ġ"} if '"ByteLevel"' in kinds else set()) | (
        {state.get("replacement", "▁")} if '"Metaspace"' in kinds else set()
    )
    vocabulary = tokenizer.get_vocab()
    return {vocabulary[mark] for mark in marks if mark in vocabulary}


def without_markers(
    input_ids: list[int], word_ids: list[int | None], markers: set[int]
) -> list[int | None]:
    """`word_ids` with a lone start marker counted as no word's, where its word has other
    pieces: the word's label and prediction then sit at its first real piece (the one the
    Hugging Face pipeline groups the word by), and the marker is context, like a special token."""
    if not markers:
        return word_ids
    counts = Counter(word_ids)
    return [
        None if token in markers and word is not None and counts[word] > 1 else word
        for token, word in zip(input_ids, word_ids)
    ]


# ---------------------------------------------------------------- training and evaluation examples


def tokenize_splits(
    splits: DatasetDict,
    tokenizer: PreTrainedTokenizerFast,
    label_strategy: str,
    continuation_label: list[int],
    max_length: int,
    context_subwords: int | None = None,
    more_tasks: dict[str, list[int]] | None = None,
) -> DatasetDict:
    """Sentences into examples: `input_ids`, subword `labels` (the loss), and for evaluation
    `word_starts` and `tags` of the words the example scores, which are the words from
    `first_word` on of sentence `sentence` (its index in the split).

    A sentence is one example per `Piece` (see `encode_sentences`): a word carries labels only
    in the piece that keeps it, so every word is trained on and scored exactly once and
    nothing is truncated. Words the tokenizer maps to no subword are counted and logged
    (they are still scored, as wrong unless their gold label is O).

    `context_subwords`: document context, see `add_document_context` (None: sentences alone).
    `more_tasks`: the further tasks of a run with several (data/tasks.py), each task's column
    key and its `continuation_label`; each gets its `labels<key>` and `tags<key>` the same way.
    """
    tokenized, continuations = {}, {"": continuation_label, **(more_tasks or {})}
    for split, dataset in splits.items():
        encode = sentence_encoder(split, tokenizer, label_strategy, continuations, max_length)
        tokenized[split] = dataset.map(
            encode,
            batched=True,
            with_indices=True,
            remove_columns=dataset.column_names,
            desc=f"tokenizing {split}",
        )
        if context_subwords is not None:
            tokenized[split] = add_document_context(
                tokenized[split],
                dataset["document_id"],
                min(context_subwords, max_length),
                split,
                special_token_counts(tokenizer),
            )
        log_windows_and_unaligned(tokenized[split], split, max_length)
    return DatasetDict(tokenized)


def piece_mentions(mentions: list[list[int]], piece) -> list[list[int]]:
    """The mentions a piece trains on, as [first, last, type id] (last inclusive, counted from
    its first kept word): those that start at a kept word and end within the window (see
    `Piece.reach_starts`). A mention longer than what the windows overlap by is in no
    window whole; it is never predicted and is scored as missed."""
    start, end = piece.keep_start, piece.keep_end
    return [
        [a - start, b - 1 - start, kind]
        for a, b, kind in mentions
        if start <= a < end and b <= piece.window_end
    ]


def log_windows_and_unaligned(examples: Dataset, split: str, max_length: int) -> None:
    examples_per_sentence = Counter(examples["sentence"])
    windowed = [count for count in examples_per_sentence.values() if count > 1]
    if windowed:
        log.info(
            "%s: %d sentences longer than %d subwords, tagged in %d overlapping windows",
            split,
            len(windowed),
            max_length,
            sum(windowed),
        )
    unaligned = sum(start == -1 for example in examples["word_starts"] for start in example)
    if unaligned:
        log.warning("%s: %d words map to no subword; they count as predicted O", split, unaligned)


def sentence_encoder(
    split: str,
    tokenizer: PreTrainedTokenizerFast,
    label_strategy: str,
    continuations: dict[str, list[int]],
    max_length: int,
):
    """The batched `.map` function of `tokenize_splits` for one split: `continuations`, each
    task's column key and its continuation labels."""

    def encode(batch: dict, indices: list[int]) -> dict:
        try:
            pieces_of = encode_sentences(tokenizer, batch["tokens"], max_length)
        except WordTooLongError as err:
            row = err.sentence
            word = batch["tokens"][row][err.word]
            raise ValueError(
                f"{split} sentence {indices[row]} (line {batch['line'][row]}), word {word!r}: {err}"
            ) from None
        out = {column: [] for column in EXAMPLE_COLUMNS}
        out.update({f"{column}{key}": [] for key in continuations for column in ("labels", "tags")})
        if "mentions" in batch:
            out["mentions"] = []
        for row, sentence in enumerate(indices):
            words = batch["tokens"][row]
            for piece in pieces_of[row]:
                for key, continuation_label in continuations.items():
                    word_labels = batch["tags" + key][row]
                    labels = align_labels(
                        piece.word_ids, word_labels, label_strategy, continuation_label
                    )
                    if piece.keep_end - piece.keep_start < len(words):  # context words: no loss
                        labels = [
                            label
                            if w is not None and piece.keep_start <= w < piece.keep_end
                            else IGNORE_INDEX
                            for label, w in zip(labels, piece.word_ids)
                        ]
                    out["labels" + key].append(labels)
                    out["tags" + key].append(word_labels[piece.keep_start : piece.keep_end])
                if "mentions" in batch:  # span data: the piece's whole mentions, its words'
                    out["mentions"].append(piece_mentions(batch["mentions"][row], piece))
                out["input_ids"].append(piece.input_ids)
                out["word_starts"].append(piece.word_starts(len(words)))
                out["word_index"].append(piece.word_index())
                out["sentence"].append(sentence)
                out["first_word"].append(piece.keep_start)
                out["reach_starts"].append(piece.reach_starts(len(words)))
        return out

    return encode
