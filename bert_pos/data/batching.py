"""Batching: dynamic padding, length-grouped training batches, length-sorted evaluation.

A batch is a dict of tensors (see `PaddingCollator`); the training sampler is reproducible
from (seed, epoch), restarts mid-epoch for an exact resume, and shards global batches for
data-parallel processes.
"""

import math

import torch
from datasets import DatasetDict
from torch.utils.data import DataLoader

from bert_pos.data.encoding import EXAMPLE_COLUMNS
from bert_pos.data.labels import IGNORE_INDEX


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
        # a run with several tasks: each further task's labels (data/tasks.py), padded alike
        keys = [column[len("labels") :] for column in examples[0] if column.startswith("labels.")]
        more_labels = {key: torch.full_like(labels, IGNORE_INDEX) for key in keys}
        more_word_labels = {key: torch.full_like(word_labels, IGNORE_INDEX) for key in keys}
        for row, example in enumerate(examples):
            n = len(example["input_ids"])
            input_ids[row, :n] = torch.tensor(example["input_ids"])
            attention_mask[row, :n] = 1
            labels[row, :n] = torch.tensor(example["labels"])
            w = len(example["word_starts"])
            word_starts[row, :w] = torch.tensor(example["word_starts"])
            word_labels[row, :w] = torch.tensor(example["tags"])
            for key in keys:
                more_labels[key][row, :n] = torch.tensor(example["labels" + key])
                more_word_labels[key][row, :w] = torch.tensor(example["tags" + key])
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
        for key in keys:
            batch["labels" + key], batch["word_labels" + key] = (
                more_labels[key],
                more_word_labels[key],
            )
        if "mentions" in examples[0]:  # span data: (B, M, 3) [first, last, type], -1 pad
            most = max(1, max(len(e["mentions"]) for e in examples))
            batch["mentions"] = torch.full((batch_size, most, 3), -1, dtype=torch.long)
            for row, example in enumerate(examples):
                if example["mentions"]:
                    batch["mentions"][row, : len(example["mentions"])] = torch.tensor(
                        example["mentions"]
                    )
        if any(e.get("reach_starts") for e in examples):
            batch.update(span_starts(examples))
        if "sentence" in examples[0]:  # where evaluation puts each example's words back
            batch["sentence"] = torch.tensor([e["sentence"] for e in examples])  # (B,)
            batch["first_word"] = torch.tensor([e["first_word"] for e in examples])  # (B,)
        return batch


def span_starts(examples: list[dict]) -> dict[str, torch.Tensor]:
    """A batch holding windows of long sentences: the words a span head reads, each example's
    kept words followed by the window's later words (`Piece.reach_starts`), as `span_starts`
    (B, W') first-subword positions (-1 pad), and how many of them are kept, `kept_words` (B,)."""
    rows = [e["word_starts"] + e["reach_starts"] for e in examples]
    starts = torch.full((len(rows), max(map(len, rows))), -1, dtype=torch.long)
    for row, positions in enumerate(rows):
        starts[row, : len(positions)] = torch.tensor(positions, dtype=torch.long)
    kept = torch.tensor([len(e["word_starts"]) for e in examples], dtype=torch.long)
    return {"span_starts": starts, "kept_words": kept}


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

    def __init__(
        self,
        lengths: list[int],
        batch_size: int,
        seed: int,
        group_by_length: bool,
        group_batches: int = 50,
        num_shards: int = 1,
        shard: int = 0,
    ):
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
            for column in example:  # every task's labels
                if column.split(".")[0] in ("labels", "tags"):
                    example[column] = [IGNORE_INDEX] * len(example[column])
            if "mentions" in example:
                example["mentions"] = []
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
    group_batches: int = 50,
) -> dict[str, DataLoader]:
    """Loaders of every split; with `num_shards` > 1, this data-parallel process's share
    (`batch_size` and `eval_batch_size` are per process)."""
    collator = PaddingCollator(pad_token_id, pad_to_multiple_of)
    loaders = {}
    for split, dataset in tokenized.items():
        # every task's labels too (`labels.<task>`, `tags.<task>`: data/tasks.py)
        columns = list(EXAMPLE_COLUMNS) + [
            c
            for c in dataset.column_names
            if "." in c or c == "mentions"  # span data
        ]
        examples = dataset.select_columns(columns).to_list()  # fast to index
        lengths = [len(e["input_ids"]) for e in examples]
        if split == "train":
            examples = TrainExamples(examples)
            sampler = ShuffledBatchSampler(
                lengths, batch_size, seed, group_by_length, group_batches, num_shards, shard
            )
        else:
            sampler = length_sorted_batches(lengths, eval_batch_size, num_shards, shard)
        loaders[split] = DataLoader(
            examples,
            batch_sampler=sampler,
            collate_fn=collator,
            num_workers=num_workers,
            pin_memory=pin_memory,
        )
    return loaders
