"""Sources: every dataset ends as the same `DatasetDict` of sentences.

Each split holds `tokens` (the words), `tags` (label ids), `document_id` (-1 where unknown)
and `line` (1-based line of the first word in its file, -1 for a dataset's rows). Where they
come from (bert_pos/data/formats.py decides, from the config):

- `data.dir`, one file per split (`data.train_file`, ...), each read by its format: CoNLL
  columns, JSON lines, or a split folder saved by `datasets` (`data.format`, or the name);
- `data.dir` holding a whole DatasetDict saved by `datasets` (dataset_dict.json);
- the generated demo corpus (`data.demo_corpus`);
- otherwise `data.hub_name`: a hub dataset (`data.hub_config`, `data.hub_revision`), or a
  local folder of parquet/arrow files that `datasets.load_dataset` reads.

Hub and saved datasets name their own splits (`data.split_names` maps ours to theirs); one
without a validation split gets a seeded share of train held out. Tags are read in
`data.scheme` and trained and scored as IOB2.
"""

import logging
from pathlib import Path
from typing import NamedTuple

from datasets import Dataset, DatasetDict
from omegaconf import DictConfig

from bert_pos.conll import Sentence, read_conll, split_file
from bert_pos.data.formats import SPLITS, source_kind, split_format
from bert_pos.data.jsonl import read_jsonl
from bert_pos.data.tables import Table, dataset_table, held_out_rows, table_sentences
from bert_pos.data.tags import DataFormatError, TagCheck
from bert_pos.demo_corpus import write_demo_corpus
from bert_pos.labels import CONLL2003_TASKS, iob2_label_names, task_labels

log = logging.getLogger(__name__)

# The hub's parquet export of a dataset: the only copy `datasets` >= 4 reads of a dataset that
# has a loading script. It keeps each config in a folder named after it.
PARQUET_EXPORT = "refs/convert/parquet"


class Columns(NamedTuple):
    """The columns (JSON fields) of a table source that hold each thing."""

    tokens: str
    tags: str
    document: str | None


def columns_of(data: DictConfig) -> Columns:
    """`data.tokens_column`, `data.tags_column` (null: `{task}_tags` for the CoNLL-2003 tasks,
    `ner_tags` for others, as the hub's datasets and `run_ner.py` name them) and
    `data.document_column`."""
    tags = data.tags_column
    if tags is None:
        tags = f"{data.task}_tags" if data.task in CONLL2003_TASKS else "ner_tags"
    return Columns(data.tokens_column, tags, data.document_column)


def label_column(data: DictConfig) -> int:
    """The 0-based label column of CoNLL files: `data.label_column`, or the task's CoNLL-2003
    column."""
    if data.label_column is not None:
        return data.label_column
    if data.task not in CONLL2003_TASKS:
        raise DataFormatError(
            f"data.task={data.task!r} is not a CoNLL-2003 task (ner, pos, chunk): set "
            "data.label_column, the 0-based column of its tags in the CoNLL files"
        )
    return CONLL2003_TASKS[data.task][0]


# ---------------------------------------------------------------- the label vocabulary


def resolve_label_names(data: DictConfig, demo_corpus_dir: Path | None = None) -> list[str]:
    """The label vocabulary, with stable ids (IOB2 names for span tags, whatever
    `data.scheme` the data is in), from the first of:

    - `data.labels` (written in `data.scheme`, converted);
    - the ClassLabel of a hub or saved dataset's tags column: the dataset's names in its
      order, so ids match its card;
    - for CoNLL files of a CoNLL-2003 task, that task's list (the hub dataset's);
    - the sorted set of the training split's tags.
    """
    if data.labels is not None:
        return iob2_label_names(list(data.labels), data.scheme)
    kind = source_kind(data)
    if kind in ("hub", "saved"):
        source = source_name(data)
        train = chosen_splits(open_named_splits(data), data.split_names, source)["train"]
        return table_label_names(dataset_table(train, f"{source} train", columns_of(data), None),
                                 data.scheme)  # fmt: skip
    conll_files = kind == "demo" or split_format(Path(data.dir) / data.train_file,
                                                 data.format) == "conll"  # fmt: skip
    if conll_files and data.task in CONLL2003_TASKS:
        return task_labels(data.task)
    path = split_file(files_directory(data, demo_corpus_dir), "train", data.train_file)
    fmt = split_format(path, data.format)
    if fmt == "conll":
        sentences = read_conll(path, label_column(data), None, data.word_column, data.scheme)
        return sorted({tag for s in sentences for tag in s.labels})
    return table_label_names(file_table(path, fmt, data), data.scheme)


def table_label_names(table: Table, scheme: str) -> list[str]:
    """A ClassLabel's names (as IOB2), else the sorted set of the table's (converted) tags."""
    if table.class_label is not None:
        return iob2_label_names(table.class_label, scheme)
    sentences = table_sentences(table, TagCheck(None, scheme, f"column {table.tags_column!r}"))
    return sorted({tag for s in sentences for tag in s.labels})


# ---------------------------------------------------------------- the splits


def load_splits(
    data: DictConfig, label_names: list[str], demo_corpus_dir: Path | None = None
) -> DatasetDict:
    """Sentences of each split from the source `data` names (see the module docstring).

    File sources skip a split whose file name is null. With `data.scheme=iob1` or `bioes`
    the tags are converted to IOB2 as they are read; with `iob2`, span tags (`O`, `B-X`,
    `I-X`) must be valid IOB2, so an IOB1 file stops with an error instead of training on
    broken spans.
    """
    if source_kind(data) in ("hub", "saved"):
        return load_named_splits(data, label_names)
    directory = files_directory(data, demo_corpus_dir)
    splits = {}
    for split in SPLITS:
        name = data[f"{split}_file"]
        if name is None:
            continue
        path = split_file(directory, split, name)
        fmt = split_format(path, data.format)
        if fmt == "conll":
            sentences = read_conll(path, label_column(data), label_names, data.word_column,
                                   data.scheme)  # fmt: skip
        else:
            sentences = checked_table_sentences(file_table(path, fmt, data), label_names,
                                                 data.scheme)  # fmt: skip
        splits[split] = sentences_dataset(sentences, label_names)
    return DatasetDict(splits)


def files_directory(data: DictConfig, demo_corpus_dir: Path | None) -> str:
    """`data.dir`, or the demo corpus, generated into `demo_corpus_dir`."""
    if data.dir is not None:
        return data.dir
    return str(write_demo_corpus(demo_corpus_dir, dict(data.demo_sentences), seed=0))


def file_table(path: Path, fmt: str, data: DictConfig) -> Table:
    """The rows of a JSON-lines file or of a split folder saved by `datasets`."""
    if fmt == "jsonl":
        return read_jsonl(path, columns_of(data), data.labels)
    from datasets import load_from_disk

    saved = load_from_disk(str(path))
    if not isinstance(saved, Dataset):
        raise DataFormatError(f"{path}: a saved DatasetDict, not one split; set data.dir={path} "
                              "to read its splits (data.split_names)")  # fmt: skip
    return dataset_table(saved, str(path), columns_of(data), data.labels)


def load_named_splits(data: DictConfig, label_names: list[str]) -> DatasetDict:
    """The splits of a hub or saved dataset, with validation held out of train where the
    dataset has none."""
    source = source_name(data)
    raw = open_named_splits(data)
    chosen = chosen_splits(raw, data.split_names, source)
    splits = dataset_splits(chosen, source, columns_of(data), label_names, data.scheme,
                            data.labels)  # fmt: skip
    if "validation" in splits:
        return splits
    log.info("%s: no validation split (its splits: %s). To use one of them, set "
             "data.split_names.validation=NAME", source, ", ".join(raw))  # fmt: skip
    return with_held_out_validation(splits, data.validation_fraction, data.validation_seed)


def with_held_out_validation(splits: DatasetDict, fraction: float, seed: int) -> DatasetDict:
    """Train and a validation split held out of it (`held_out_rows`), then the others."""
    train = splits["train"]
    rows = held_out_rows(list(train["document_id"]), fraction, seed)
    log.info("validation: %d of the %d train sentences held out (data.validation_fraction=%s, "
             "data.validation_seed=%s)", len(rows), len(train), fraction, seed)  # fmt: skip
    held = set(rows)
    kept = [row for row in range(len(train)) if row not in held]
    others = {split: dataset for split, dataset in splits.items() if split != "train"}
    return DatasetDict({"train": train.select(kept), "validation": train.select(rows), **others})


def source_name(data: DictConfig) -> str:
    """A hub or saved dataset as messages name it, e.g. `unimelb-nlp/wikiann (en)`."""
    if source_kind(data) == "saved":
        return data.dir
    return data.hub_name + (f" ({data.hub_config})" if data.hub_config else "")


def open_named_splits(data: DictConfig) -> DatasetDict:
    """The DatasetDict saved in `data.dir`, or the hub dataset `data.hub_name`."""
    if source_kind(data) == "saved":
        from datasets import load_from_disk

        return load_from_disk(data.dir)
    return open_hub_dataset(data.hub_name, data.hub_config, data.hub_revision)


def open_hub_dataset(hub_name: str, hub_config: str | None, hub_revision: str | None):
    """A hub dataset (or a local folder of its files) as `datasets.load_dataset` reads it. In
    the parquet export a config is the folder of that name, not a name `load_dataset` knows."""
    from datasets import load_dataset

    if hub_config is not None and hub_revision == PARQUET_EXPORT:
        return load_dataset(hub_name, data_dir=hub_config, revision=hub_revision)
    return load_dataset(hub_name, hub_config, revision=hub_revision)


def chosen_splits(raw: DatasetDict, split_names: dict, source: str) -> dict[str, Dataset]:
    """Our splits from the dataset's: `split_names` maps ours to its names (null: none).
    Train must exist; a missing validation split is held out of train later, a missing test
    split is left out (both logged)."""
    chosen = {}
    for split in SPLITS:
        name = split_names.get(split)
        if name is not None and name in raw:
            chosen[split] = raw[name]
        elif split == "train":
            raise DataFormatError(
                f"{source}: no split {name!r} (data.split_names.train); its splits are "
                f"{', '.join(raw)}. Set data.split_names.train=NAME"
            )
        elif split == "test" and name is not None:
            log.info("%s: no split %r (data.split_names.test); its splits are %s: no test split",
                     source, name, ", ".join(raw))  # fmt: skip
    return chosen


def dataset_splits(chosen: dict[str, Dataset], source: str, columns: Columns,
                   label_names: list[str], scheme: str,
                   data_labels: list[str] | None) -> DatasetDict:  # fmt: skip
    """Our splits of a dataset's rows, their tags checked and as ids into `label_names`."""
    splits = {}
    for split, dataset in chosen.items():
        table = dataset_table(dataset, f"{source} {split}", columns, data_labels)
        splits[split] = sentences_dataset(
            checked_table_sentences(table, label_names, scheme), label_names
        )
    return DatasetDict(splits)


def checked_table_sentences(table: Table, label_names: list[str], scheme: str) -> list[Sentence]:
    """A table's sentences, tags checked against `label_names`. A ClassLabel defines the ids:
    its names (as IOB2) must be `label_names` exactly, else ids would silently differ."""
    if table.class_label is not None:
        names = iob2_label_names(table.class_label, scheme)
        if names != label_names:
            conll2003 = any(label_names == labels for _, labels in CONLL2003_TASKS.values())
            listing = "CoNLL-2003" if conll2003 else "expected"
            raise DataFormatError(
                f"{table.source}: the {table.tags_column} labels {names} differ from the "
                f"{listing} list {label_names}; ids would not match"
            )
    check = TagCheck(label_names, scheme, f"column {table.tags_column!r}")
    return table_sentences(table, check)


def sentences_dataset(sentences: list[Sentence], label_names: list[str]) -> Dataset:
    label_to_id = {label: i for i, label in enumerate(label_names)}
    return Dataset.from_dict(
        {
            "tokens": [s.words for s in sentences],
            "tags": [[label_to_id[label] for label in s.labels] for s in sentences],
            "document_id": [s.document_id for s in sentences],
            "line": [s.line for s in sentences],
        }
    )


def load_hub_splits(
    hub_name: str, hub_revision: str | None, task: str, label_names: list[str]
) -> DatasetDict:
    """A hub dataset in the CoNLL-2003 layout (`tokens`, `{task}_tags`, splits named train,
    validation, test), as `load_splits` reads it with the default config."""
    columns = Columns("tokens", f"{task}_tags", None)
    raw = open_hub_dataset(hub_name, None, hub_revision)
    chosen = chosen_splits(raw, {split: split for split in SPLITS}, hub_name)
    return dataset_splits(chosen, hub_name, columns, label_names, "iob2", None)


def subset(splits: DatasetDict, max_train: int | None, max_eval: int | None) -> DatasetDict:
    """The first N sentences of each split (documents stay whole but for the last one)."""
    limited = {}
    for split, dataset in splits.items():
        limit = max_train if split == "train" else max_eval
        limited[split] = dataset.select(range(min(limit, len(dataset)))) if limit else dataset
    return DatasetDict(limited)
