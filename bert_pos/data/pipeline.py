"""Sentences to batches, one way for training and evaluation: encode (cached), then batch.

    options = EncodingOptions.of(cfg.data, tasks, max_length)
    tokenized, loaders = encode_and_batch(splits, tokenizer, options, batching, cache_dir)

The encoding options are what decides an example (and the cache key); `Batching` is how the
examples are laid out, which decides nothing a model computes beyond float rounding.
"""

from dataclasses import asdict, dataclass

from datasets import DatasetDict
from omegaconf import DictConfig

from bert_pos.data.batching import build_dataloaders
from bert_pos.data.cache import tokenize_splits_cached
from bert_pos.data.labels import begin_to_inside_map
from bert_pos.data.tasks import Task


@dataclass(frozen=True)
class EncodingOptions:
    label_strategy: str  # first | all: which subwords of a word carry the loss
    continuation_label: list[int]  # per label id, the id a word's later subwords get (all)
    max_length: int  # subwords per example, special tokens included
    context_subwords: int | None  # document context per side; None: sentences alone
    # a run with several tasks: each further task's column key and its continuation labels
    more_tasks: dict[str, list[int]] | None = None

    @classmethod
    def of(cls, data: DictConfig, tasks: list[Task], max_length: int) -> "EncodingOptions":
        """The options a data config asks for, read once here."""
        context = document_context_subwords(data)
        more = {task.key: begin_to_inside_map(task.label_names) for task in tasks[1:]}
        continuation = begin_to_inside_map(tasks[0].label_names)
        return cls(data.label_strategy, continuation, max_length, context, more or None)


@dataclass(frozen=True)
class Batching:
    batch_size: int  # training batch, per process
    eval_batch_size: int
    pad_token_id: int
    pad_to_multiple_of: int
    group_by_length: bool = False
    group_batches: int = 50
    num_workers: int = 0
    seed: int = 0
    pin_memory: bool = False
    num_shards: int = 1  # data-parallel processes, and this one's shard
    shard: int = 0


def document_context_subwords(data: DictConfig) -> int | None:
    """Subwords per example, context included, of a run with document context; None for
    sentences alone."""
    return data.context_subwords if data.context == "document" else None


def encode(
    splits: DatasetDict, tokenizer, options: EncodingOptions, cache_dir: str | None = None
) -> DatasetDict:
    """The splits as subword examples (kept under `cache_dir` when given)."""
    return tokenize_splits_cached(
        cache_dir,
        splits,
        tokenizer,
        options.label_strategy,
        options.continuation_label,
        options.max_length,
        options.context_subwords,
        options.more_tasks,
    )


def encode_and_batch(
    splits: DatasetDict,
    tokenizer,
    options: EncodingOptions,
    batching: Batching,
    cache_dir: str | None = None,
) -> tuple[DatasetDict, dict]:
    """The splits as subword examples (`encode`), and a loader per split: shuffled training
    batches, length-sorted evaluation batches."""
    tokenized = encode(splits, tokenizer, options, cache_dir)
    return tokenized, build_dataloaders(tokenized, **asdict(batching))
