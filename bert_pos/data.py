"""Data: CoNLL splits from local files or the hub, subword alignment, batching.

Every source ends as the same `DatasetDict` of sentences (`tokens`, `tags` as label ids,
`document_id`, `line`), tokenized once with `.map`, and batched with dynamic padding.
"""

import hashlib
import json
import logging
import math
import os
from collections import Counter
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict, load_from_disk
from omegaconf import DictConfig
from tokenizers import Tokenizer
from tokenizers.decoders import WordPiece as WordPieceDecoder
from tokenizers.models import WordPiece
from tokenizers.normalizers import BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer
from tokenizers.processors import TemplateProcessing
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerFast

from bert_pos.conll import read_conll, split_file
from bert_pos.demo_corpus import write_demo_corpus
from bert_pos.labels import CONLL2003_TASKS, task_labels

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
IGNORE_INDEX = -100  # label of positions that carry no loss: specials, padding, continuations
# A tokenized example: model inputs, subword labels, and where its scored words are
EXAMPLE_COLUMNS = ("input_ids", "labels", "word_starts", "word_index", "tags", "sentence",
                   "first_word")  # fmt: skip


# ---------------------------------------------------------------- sources


def label_column(data: DictConfig) -> int:
    """The 0-based label column: `data.label_column`, or the task's CoNLL-2003 column."""
    if data.label_column is not None:
        return data.label_column
    return CONLL2003_TASKS[data.task][0]


def resolve_label_names(data: DictConfig, demo_corpus_dir: Path | None = None) -> list[str]:
    """The label vocabulary, with stable ids.

    CoNLL-2003 tasks use the hub dataset's lists. Any other task reads the label set of the
    training file, sorted (converted to IOB2 first when `data.scheme=iob1`).
    """
    if data.task in CONLL2003_TASKS:
        return task_labels(data.task)
    train_path = split_file(data.dir or demo_corpus_dir, "train", data.train_file)
    sentences = read_conll(train_path, label_column(data), None, data.word_column, data.scheme)
    return sorted({tag for s in sentences for tag in s.labels})


def load_splits(
    data: DictConfig, label_names: list[str], demo_corpus_dir: Path | None = None
) -> DatasetDict:
    """Sentences of each split from `data.dir`, the generated demo corpus, or the hub.

    Splits whose file name is null are skipped. With `data.scheme=iob1` the tags are
    converted to IOB2 as they are read; with `iob2`, span tags (`O`, `B-X`, `I-X`) must be
    valid IOB2, so an IOB1 file stops with an error instead of training on broken spans.
    """
    if data.dir is None and not data.demo_corpus:
        return load_hub_splits(data.hub_name, data.hub_revision, data.task, label_names)
    directory = data.dir
    if directory is None:
        directory = str(write_demo_corpus(demo_corpus_dir, dict(data.demo_sentences), seed=0))
    label_to_id = {label: i for i, label in enumerate(label_names)}
    splits = {}
    for split in SPLITS:
        name = data[f"{split}_file"]
        if name is None:
            continue
        path = split_file(directory, split, name)
        sentences = read_conll(path, label_column(data), label_names, data.word_column, data.scheme)
        splits[split] = Dataset.from_dict(
            {
                "tokens": [s.words for s in sentences],
                "tags": [[label_to_id[label] for label in s.labels] for s in sentences],
                "document_id": [s.document_id for s in sentences],
                "line": [s.line for s in sentences],
            }
        )
    return DatasetDict(splits)


def load_hub_splits(
    hub_name: str, hub_revision: str | None, task: str, label_names: list[str]
) -> DatasetDict:
    """CoNLL-2003 from the hub (a parquet copy: `datasets` no longer runs loading scripts).

    Document ids come from `-DOCSTART-` rows where a copy keeps them (those rows are then
    dropped); the usual parquet copy has none, and its document ids are unknown: -1.
    """
    from datasets import load_dataset

    raw = load_dataset(hub_name, revision=hub_revision)
    column = f"{task}_tags"
    hub_names = getattr(raw["train"].features[column].feature, "names", None)
    if hub_names is not None and list(hub_names) != label_names:
        raise ValueError(
            f"{hub_name}: the {column} labels {hub_names} differ from the CoNLL-2003 list "
            f"{label_names}; ids would not match"
        )
    splits = {}
    for split in SPLITS:
        if split not in raw:
            continue
        tags = raw[split][column]
        if any(tag < 0 or tag >= len(label_names) for sentence in tags for tag in sentence):
            raise ValueError(
                f"{hub_name} {split}: a {column} id is outside 0..{len(label_names) - 1}"
            )
        tokens, document_ids, kept_tags, document = [], [], [], -1
        for words, sentence_tags in zip(raw[split]["tokens"], tags):
            if words == ["-DOCSTART-"]:
                document += 1
                continue
            tokens.append(words)
            kept_tags.append(sentence_tags)
            document_ids.append(document)
        count = len(tokens)
        splits[split] = Dataset.from_dict(
            {"tokens": tokens, "tags": kept_tags, "document_id": document_ids, "line": [-1] * count}
        )  # fmt: skip
    return DatasetDict(splits)


# ---------------------------------------------------------------- tokenizer for random models


def build_wordpiece_tokenizer(
    sentences: list[list[str]], directory: Path, max_pieces: int = 4000
) -> PreTrainedTokenizerFast:
    """A cased WordPiece tokenizer for a randomly initialised model, built from `sentences`.

    Vocabulary: the special tokens, every character seen (alone and as a `##` continuation),
    every word seen at least twice, and the most frequent word-initial and `##` continuation
    pieces of 2 to 5 characters, so rare and unseen words split into meaningful pieces
    (`Lovi ##gal`, `Vifen ##port`) instead of collapsing to [UNK].
    """
    word_counts = Counter(word for sentence in sentences for word in sentence)
    characters = sorted({c for word in word_counts for c in word})
    frequent_words = [word for word, count in word_counts.items() if count >= 2 and len(word) > 1]
    piece_counts = Counter()
    for word, count in word_counts.items():
        for start in range(len(word)):
            for end in range(start + 2, min(start + 5, len(word)) + 1):
                piece_counts[word[start:end] if start == 0 else "##" + word[start:end]] += count
    pieces = [piece for piece, count in piece_counts.most_common(max_pieces) if count >= 5]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += characters + ["##" + c for c in characters]
    vocab += sorted(set(frequent_words + pieces) - set(vocab))
    backend = Tokenizer(WordPiece({piece: i for i, piece in enumerate(vocab)}, unk_token="[UNK]"))
    backend.normalizer = BertNormalizer(lowercase=False, strip_accents=False)
    backend.pre_tokenizer = BertPreTokenizer()
    backend.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab.index("[CLS]")), ("[SEP]", vocab.index("[SEP]"))],
    )  # fmt: skip
    backend.decoder = WordPieceDecoder()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=512,
    )  # fmt: skip
    tokenizer.save_pretrained(directory)
    return tokenizer


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
        elif strategy == "all":
            labels.append(continuation_label[word_labels[word_id]])
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
            raise ValueError(
                f"word {start} alone has {subword_counts[start]} subwords, more than the "
                f"model's window of {budget}"
            )
        spans.append((start, end))
        if end == n:
            break
        start = max(start + 1, (start + end) // 2)
    cuts = [0] + [(spans[i + 1][0] + spans[i][1]) // 2 for i in range(len(spans) - 1)] + [n]
    return [(s, e, cuts[i], cuts[i + 1]) for i, (s, e) in enumerate(spans)]


def tokenize_splits(
    splits: DatasetDict,
    tokenizer: PreTrainedTokenizerFast,
    label_strategy: str,
    continuation_label: list[int],
    max_length: int,
    context_subwords: int | None = None,
) -> DatasetDict:
    """Sentences into examples: `input_ids`, subword `labels` (the loss), and for evaluation
    `word_starts` and `tags` of the words the example scores, which are the words from
    `first_word` on of sentence `sentence` (its index in the split).

    A sentence that fits in `max_length` subwords is one example. A longer one becomes one
    example per `word_windows` window: a word carries labels only in the window that keeps
    it and is context elsewhere, so every word is trained on and scored exactly once and
    nothing is truncated. Words the tokenizer maps to no subword are counted and logged
    (they are still scored, as wrong unless their gold label is O).

    `context_subwords`: document context, see `add_document_context` (None: sentences alone).
    """
    tokenized = {}
    for split, dataset in splits.items():
        encode = sentence_encoder(split, tokenizer, label_strategy, continuation_label, max_length)
        tokenized[split] = dataset.map(
            encode, batched=True, with_indices=True, remove_columns=dataset.column_names,
            desc=f"tokenizing {split}",
        )  # fmt: skip
        if context_subwords is not None:
            tokenized[split] = add_document_context(
                tokenized[split], dataset["document_id"], min(context_subwords, max_length), split
            )
        examples_per_sentence = Counter(tokenized[split]["sentence"])
        windowed = [count for count in examples_per_sentence.values() if count > 1]
        if windowed:
            log.info(
                "%s: %d sentences longer than %d subwords, tagged in %d overlapping windows",
                split, len(windowed), max_length, sum(windowed),
            )  # fmt: skip
        starts = tokenized[split]["word_starts"]
        unaligned = sum(start == -1 for example in starts for start in example)
        if unaligned:
            log.warning(
                "%s: %d words map to no subword; they count as predicted O", split, unaligned
            )
    return DatasetDict(tokenized)


def sentence_encoder(
    split: str,
    tokenizer: PreTrainedTokenizerFast,
    label_strategy: str,
    continuation_label: list[int],
    max_length: int,
):
    """The batched `.map` function of `tokenize_splits` for one split."""

    def encode(batch: dict, indices: list[int]) -> dict:
        encoding = tokenizer(batch["tokens"], is_split_into_words=True, truncation=False)
        out = {column: [] for column in EXAMPLE_COLUMNS}
        for row, sentence in enumerate(indices):
            words, word_labels = batch["tokens"][row], batch["tags"][row]
            word_ids = encoding.word_ids(row)
            # (input ids, sentence word id of each subword, kept word range)
            pieces = [(encoding["input_ids"][row], word_ids, 0, len(words))]
            if len(word_ids) > max_length:
                counts = [0] * len(words)
                for word_id in word_ids:
                    if word_id is not None:
                        counts[word_id] += 1
                budget = max_length - 2  # [CLS] and [SEP]
                try:
                    windows = word_windows(counts, budget)
                except ValueError as err:
                    word = next(w for w, count in enumerate(counts) if count > budget)
                    raise ValueError(
                        f"{split} sentence {sentence} (line {batch['line'][row]}), word "
                        f"{words[word]!r}: {err}"
                    ) from err
                pieces = []
                for start, end, keep_start, keep_end in windows:
                    if keep_start == keep_end:  # a window that scores no word trains nothing
                        continue
                    window = tokenizer(words[start:end], is_split_into_words=True,
                                       truncation=False)  # fmt: skip
                    window_ids = [None if w is None else start + w for w in window.word_ids()]
                    pieces.append((window["input_ids"], window_ids, keep_start, keep_end))
            for input_ids, piece_word_ids, keep_start, keep_end in pieces:
                labels = align_labels(piece_word_ids, word_labels, label_strategy,
                                      continuation_label)  # fmt: skip
                if keep_end - keep_start < len(words):  # context words carry no loss
                    labels = [
                        label if w is not None and keep_start <= w < keep_end else IGNORE_INDEX
                        for label, w in zip(labels, piece_word_ids)
                    ]
                starts = word_start_positions(piece_word_ids, len(words))[keep_start:keep_end]
                out["input_ids"].append(input_ids)
                out["labels"].append(labels)
                out["word_starts"].append(starts)
                # each subword's word among the scored ones (for pooling), -1 for none
                out["word_index"].append([
                    w - keep_start if w is not None and keep_start <= w < keep_end else -1
                    for w in piece_word_ids
                ])  # fmt: skip
                out["tags"].append(word_labels[keep_start:keep_end])
                out["sentence"].append(sentence)
                out["first_word"].append(keep_start)
        return out

    return encode


def tokenize_splits_cached(
    splits: DatasetDict,
    tokenizer: PreTrainedTokenizerFast,
    label_strategy: str,
    continuation_label: list[int],
    max_length: int,
    cache_dir: str | None,
    context_subwords: int | None = None,
) -> DatasetDict:
    """`tokenize_splits`, kept under `cache_dir` and reused when the same sentences are
    tokenized the same way again (the key hashes the sentences, the tokenizer, the label
    strategy and the window). `cache_dir=None` tokenizes every time."""
    if cache_dir is None:
        return tokenize_splits(splits, tokenizer, label_strategy, continuation_label, max_length,
                               context_subwords)  # fmt: skip
    recipe = [
        "word-index-v2",  # the layout of the tokenized examples: bump it when that changes
        {split: dataset._fingerprint for split, dataset in splits.items()},  # content hashes
        tokenizer.backend_tokenizer.to_str(), label_strategy, continuation_label, max_length,
        context_subwords,
    ]  # fmt: skip
    key = hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:20]
    folder = Path(cache_dir).expanduser() / key
    if (folder / "dataset_dict.json").is_file():
        log.info("tokenized splits read from the cache %s", folder)
        return load_from_disk(str(folder))
    tokenized = tokenize_splits(splits, tokenizer, label_strategy, continuation_label, max_length,
                                context_subwords)  # fmt: skip
    # Written beside, then renamed: a run killed while saving never leaves a partial entry.
    partial = folder.with_name(f"{key}.partial-{os.getpid()}")
    tokenized.save_to_disk(str(partial))
    try:
        partial.rename(folder)
    except OSError:  # another run stored the same entry first
        pass
    return tokenized


def same_document_neighbours(sentence: int, step: int, document_ids: list[int], inner: dict):
    """Subwords of the sentences before (step -1, nearest first) or after (+1) `sentence`
    in its document."""
    other = sentence + step
    while 0 <= other < len(document_ids) and document_ids[other] == document_ids[sentence]:
        yield inner.get(other, [])
        other += step


def add_document_context(
    examples: Dataset, document_ids: list[int], budget: int, split: str = "split"
) -> Dataset:
    """Each sentence's example with the subwords of its neighbours in the same document
    around it, up to `budget` subwords in all ([CLS] and [SEP] included): half the room
    before, half after, and the room one side cannot fill goes to the other. Context
    subwords carry no labels, no word starts and no word index, so only the sentence's own
    words are trained on and scored, once each. Sentences that needed windows (longer than
    the model's window) stay as they are. Documents come from the `-DOCSTART-` lines; where
    they are unknown (document id -1, e.g. a hub copy without those lines) the split's
    sentence order is one stream, with a warning.
    """
    columns = examples.to_dict()
    sentences = columns["sentence"]
    if any(document < 0 for document in document_ids):
        log.warning("%s: document boundaries unknown; context comes from the neighbouring "
                    "sentences in file order, across documents", split)  # fmt: skip
    per_sentence = Counter(sentences)
    # the subwords of each whole sentence, without [CLS] and [SEP]
    inner = {
        s: ids[1:-1] for s, ids in zip(sentences, columns["input_ids"]) if per_sentence[s] == 1
    }
    for row, sentence in enumerate(sentences):
        if per_sentence[sentence] > 1:
            continue
        room = budget - len(columns["input_ids"][row])
        if room <= 0:
            continue
        before, after = [], []
        for ids in same_document_neighbours(sentence, -1, document_ids, inner):
            if len(before) >= room:
                break
            before = ids + before
        for ids in same_document_neighbours(sentence, +1, document_ids, inner):
            if len(after) >= room:
                break
            after = after + ids
        left = min(len(before), max(room // 2, room - len(after)))
        right = min(len(after), room - left)
        left_ids, right_ids = before[len(before) - left :], after[:right]
        ids = columns["input_ids"][row]
        columns["input_ids"][row] = ids[:1] + left_ids + ids[1:-1] + right_ids + ids[-1:]
        none_left, none_right = [IGNORE_INDEX] * left, [IGNORE_INDEX] * right
        labels = columns["labels"][row]
        columns["labels"][row] = labels[:1] + none_left + labels[1:-1] + none_right + labels[-1:]
        index = columns["word_index"][row]
        columns["word_index"][row] = (index[:1] + [-1] * left + index[1:-1] + [-1] * right
                                      + index[-1:])  # fmt: skip
        columns["word_starts"][row] = [
            start + left if start >= 0 else start for start in columns["word_starts"][row]
        ]
    return Dataset.from_dict(columns)


# ---------------------------------------------------------------- batching


class PaddingCollator:
    """Pads a list of tokenized examples into tensors, to the batch's own longest length
    rounded up to a multiple of `pad_to_multiple_of` (tensor-core friendly, fewer shapes).
    Examples from `tokenize_splits` also bring `sentence` and `first_word` along."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int):
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        multiple = self.pad_to_multiple_of
        length = math.ceil(max(len(e["input_ids"]) for e in examples) / multiple) * multiple
        most_words = max(len(e["word_starts"]) for e in examples)
        batch_size = len(examples)
        input_ids = torch.full((batch_size, length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((batch_size, length), dtype=torch.long)
        labels = torch.full((batch_size, length), IGNORE_INDEX, dtype=torch.long)
        word_starts = torch.full((batch_size, most_words), -1, dtype=torch.long)
        word_labels = torch.full((batch_size, most_words), IGNORE_INDEX, dtype=torch.long)
        word_index = torch.full((batch_size, length), -1, dtype=torch.long)
        for row, example in enumerate(examples):
            n = len(example["input_ids"])
            input_ids[row, :n] = torch.tensor(example["input_ids"])
            attention_mask[row, :n] = 1
            labels[row, :n] = torch.tensor(example["labels"])
            w = len(example["word_starts"])
            word_starts[row, :w] = torch.tensor(example["word_starts"])
            word_labels[row, :w] = torch.tensor(example["tags"])
            if "word_index" in example:
                word_index[row, :n] = torch.tensor(example["word_index"])
        batch = {
            "input_ids": input_ids,  # (B, T)
            "attention_mask": attention_mask,  # (B, T)
            "labels": labels,  # (B, T) subword labels, IGNORE_INDEX where no loss
            "word_starts": word_starts,  # (B, W) first-subword position of each word, -1 pad
            "word_labels": word_labels,  # (B, W) gold word labels, IGNORE_INDEX pad
            "word_index": word_index,  # (B, T) word of each subword among the scored, -1 none
        }
        if "sentence" in examples[0]:  # where evaluation puts each example's words back
            batch["sentence"] = torch.tensor([e["sentence"] for e in examples])  # (B,)
            batch["first_word"] = torch.tensor([e["first_word"] for e in examples])  # (B,)
        return batch


class ShuffledBatchSampler:
    """Random batches for training, reproducible from (seed, epoch).

    With `group_by_length`, the shuffled examples are cut into groups of `group_batches`
    batches, each group is sorted by length and cut into batches, and the batches are
    shuffled: batches hold sentences of similar length, so little compute goes to padding,
    while the order stays random. Every example appears exactly once per epoch.

    Data-parallel: with `num_shards` processes the sampler forms the global batches of
    `batch_size x num_shards` examples exactly as one process with that batch would, and
    yields shard `shard`'s contiguous part of each. So N processes see, step by step, the
    same examples as one process with the global batch, and each example once per epoch
    across all of them. A process whose part of a short last batch is empty gets a blank
    (index `len(lengths) + i`: example i without labels, see `TrainExamples`), so it still
    runs the step every process must take, adding nothing to the gradient.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, group_by_length: bool,
                 group_batches: int = 50, num_shards: int = 1, shard: int = 0):  # fmt: skip
        self.lengths = lengths
        self.batch_size = batch_size * num_shards  # the global batch
        self.seed = seed
        self.group_by_length = group_by_length
        self.group_size = self.batch_size * group_batches
        self.num_shards, self.shard = num_shards, shard
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Batches of `epoch`, from its `start_batch`-th on (resuming inside an epoch)."""
        self.epoch = epoch
        self.start_batch = start_batch

    def batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        if not self.group_by_length:
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        batches = []
        for start in range(0, len(order), self.group_size):
            group = sorted(order[start : start + self.group_size], key=self.lengths.__getitem__)
            batches += [
                group[i : i + self.batch_size] for i in range(0, len(group), self.batch_size)
            ]
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def __iter__(self):
        for batch in self.batches()[self.start_batch :]:
            yield self.shard_of(batch) if self.num_shards > 1 else batch

    def shard_of(self, batch: list[int]) -> list[int]:
        """This shard's contiguous part of a global batch (sizes differ by at most one)."""
        size, extra = divmod(len(batch), self.num_shards)
        start = self.shard * size + min(self.shard, extra)
        part = batch[start : start + size + (self.shard < extra)]
        return part or [len(self.lengths) + batch[0]]  # a blank: see the class docstring

    def __len__(self) -> int:
        """Batches in a whole epoch (whatever `start_batch` is)."""
        if not self.group_by_length:
            return math.ceil(len(self.lengths) / self.batch_size)
        full_groups, rest = divmod(len(self.lengths), self.group_size)
        return full_groups * math.ceil(self.group_size / self.batch_size) + math.ceil(
            rest / self.batch_size
        )


class TrainExamples(list):
    """Tokenized training examples; index `len(self) + i` is a blank: example i with every
    label ignored (a data-parallel process's stand-in for an empty share of a batch)."""

    def __getitem__(self, index):
        if isinstance(index, int) and index >= len(self):
            example = dict(super().__getitem__(index - len(self)))
            example["labels"] = [IGNORE_INDEX] * len(example["labels"])
            example["tags"] = [IGNORE_INDEX] * len(example["tags"])
            example["word_index"] = [-1] * len(example["input_ids"])
            return example
        return super().__getitem__(index)


def length_sorted_batches(
    lengths: list[int], batch_size: int, num_shards: int = 1, shard: int = 0
) -> list[list[int]]:
    """Evaluation batches: longest first (memory problems show at once), least padding.
    Data-parallel: every `num_shards`-th batch from `shard` on (the scores are computed
    from all shards' predictions together)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return batches[shard::num_shards]


def build_dataloaders(
    tokenized: DatasetDict,
    batch_size: int,
    eval_batch_size: int,
    group_by_length: bool,
    pad_token_id: int,
    pad_to_multiple_of: int,
    num_workers: int,
    seed: int,
    pin_memory: bool,
    num_shards: int = 1,
    shard: int = 0,
) -> dict[str, DataLoader]:
    """Loaders of every split; with `num_shards` > 1, this data-parallel process's share
    (`batch_size` and `eval_batch_size` are per process)."""
    collator = PaddingCollator(pad_token_id, pad_to_multiple_of)
    loaders = {}
    for split, dataset in tokenized.items():
        examples = dataset.select_columns(
            list(EXAMPLE_COLUMNS)
        ).to_list()  # plain lists: fast to index
        lengths = [len(e["input_ids"]) for e in examples]
        if split == "train":
            examples = TrainExamples(examples)
            sampler = ShuffledBatchSampler(lengths, batch_size, seed, group_by_length,
                                           num_shards=num_shards, shard=shard)  # fmt: skip
        else:
            sampler = length_sorted_batches(lengths, eval_batch_size, num_shards, shard)
        loaders[split] = DataLoader(
            examples, batch_sampler=sampler, collate_fn=collator,
            num_workers=num_workers, pin_memory=pin_memory,
        )  # fmt: skip
    return loaders


def subset(splits: DatasetDict, max_train: int | None, max_eval: int | None) -> DatasetDict:
    """The first N sentences of each split (documents stay whole but for the last one)."""
    limited = {}
    for split, dataset in splits.items():
        limit = max_train if split == "train" else max_eval
        limited[split] = dataset.select(range(min(limit, len(dataset)))) if limit else dataset
    return DatasetDict(limited)
