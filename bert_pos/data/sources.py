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

Gold labels the model cannot predict. The label list (`resolve_label_names`) is the model's:
its head and id2label. Where training data or data.labels define it, validation and test may
hold a label outside it (a type training never saw); such a word is no error. Its `tags` id
is IGNORE_INDEX, so it carries no loss (training, val/loss), and the split keeps its label in
an `unpredictable_labels` column (per sentence, the labels of those words in word order; the
column exists only in a split that has any), so scoring, predictions.txt and the confusion
matrix see it as gold: a missed entity. `gold_labels` reads every word's gold label back.
Loading warns with the label, the file and the count of its words. Train must fit the list,
and so must every split of a fixed list (a CoNLL-2003 task's, a dataset's ClassLabel): a
label outside it stops with file:line.
"""

import logging
from collections import Counter
from pathlib import Path

from datasets import Dataset, DatasetDict
from omegaconf import DictConfig, OmegaConf

from bert_pos.data.columns import Columns, columns_of, label_column
from bert_pos.data.conll import Sentence, read_conll, split_file
from bert_pos.data.conllu import read_conllu
from bert_pos.data.demo_corpus import write_demo_corpus
from bert_pos.data.formats import SPLITS, DataSource, split_format
from bert_pos.data.jsonl import read_jsonl
from bert_pos.data.labels import (
    CONLL2003_TASKS,
    IGNORE_INDEX,
    iob2_label_names,
    task_labels,
    training_label_names,
)
from bert_pos.data.mentions import mention_columns, read_layered_conll
from bert_pos.data.tables import Table, dataset_table, held_out_rows, table_sentences
from bert_pos.data.tags import DataFormatError, TagCheck, bioes_hint

log = logging.getLogger(__name__)

# The hub's parquet export of a dataset: the only copy `datasets` >= 4 reads of a dataset that
# has a loading script. It keeps each config in a folder named after it.
PARQUET_EXPORT = "refs/convert/parquet"

# A split's column of the gold labels its model cannot predict (see the module docstring)
UNPREDICTABLE_COLUMN = "unpredictable_labels"


# ---------------------------------------------------------------- the label vocabulary


def resolve_label_names(data: DictConfig, demo_corpus_dir: Path | None = None) -> list[str]:
    """The label vocabulary, with stable ids (IOB2 names for span tags, whatever
    `data.scheme` the data is in), from the first of:

    - `data.labels` (written in `data.scheme`, converted);
    - the ClassLabel of a hub or saved dataset's tags column: the dataset's names in its
      order, so ids match its card;
    - for CoNLL files of a CoNLL-2003 task, that task's list (the hub dataset's);
    - the sorted set of the training split's tags, a span set completed with B-X and I-X of
      each of its types (`training_label_names`).
    """
    if data.labels is not None:
        return iob2_label_names(list(data.labels), data.scheme)
    source = DataSource.of(data)  # read once; what follows takes it
    if source.kind in ("hub", "saved"):
        raw = open_named_splits(data, source)
        train = chosen_splits(raw, data.split_names, source.name)["train"]
        return table_label_names(
            dataset_table(train, f"{source.name} train", columns_of(data), None), data.scheme
        )
    if uses_task_labels(data, source):
        return task_labels(data.task)
    path = split_file(files_directory(data, demo_corpus_dir), "train", data.train_file)
    fmt = split_format(path, data.format)
    if fmt in ("conll", "conllu"):
        sentences = read_file_split(path, fmt, data, None)
        inner = [f"B-{kind}" for s in sentences for _, _, kind in s.mentions or []]
        return training_label_names([tag for s in sentences for tag in s.labels] + inner)
    return table_label_names(file_table(path, fmt, data), data.scheme)


def uses_task_labels(data: DictConfig, source: DataSource) -> bool:
    """Whether the label list is a CoNLL-2003 task's, fixed as the hub dataset's ClassLabel
    is: the demo corpus or CoNLL files (the first split's decides) of ner, pos or chunk,
    without data.labels."""
    if data.labels is not None or data.task not in CONLL2003_TASKS:
        return False
    return source.first_split_is_conll


def table_label_names(table: Table, scheme: str) -> list[str]:
    """A ClassLabel's names (as IOB2), else the label list of the table's (converted) tags."""
    if table.class_label is not None:
        return iob2_label_names(table.class_label, scheme)
    sentences = table_sentences(table, TagCheck(None, scheme, f"column {table.tags_column!r}"))
    # span data: a type that only ever occurs nested has no outermost tag; it is a label too
    inner = [f"B-{kind}" for s in sentences for _, _, kind in s.mentions or []]
    return training_label_names([tag for s in sentences for tag in s.labels] + inner)


# ---------------------------------------------------------------- the splits


def load_splits(
    data: DictConfig, label_names: list[str], demo_corpus_dir: Path | None = None
) -> DatasetDict:
    """Sentences of each split from the source `data` names (see the module docstring).

    File sources skip a split whose file name is null. With `data.scheme=iob1` or `bioes`
    the tags are converted to IOB2 as they are read; with `iob2`, span tags (`O`, `B-X`,
    `I-X`) must be valid IOB2, so an IOB1 file stops with an error instead of training on
    broken spans. `label_names` are the model's; validation and test may hold labels outside
    them unless the list is a CoNLL-2003 task's (see the module docstring).
    """
    source = DataSource.of(data)  # read once; what follows takes it
    if source.kind in ("hub", "saved"):
        return load_named_splits(data, source, label_names)
    directory = files_directory(data, demo_corpus_dir)
    fixed = uses_task_labels(data, source)
    splits = {}
    for split in SPLITS:
        name = data[f"{split}_file"]
        if name is None:
            continue
        path = split_file(directory, split, name)
        closed = fixed or split == "train"
        sentences = read_file_split(
            path, split_format(path, data.format), data, label_names, closed
        )
        splits[split] = sentences_dataset(sentences, label_names, f"{split} ({path})")
    return DatasetDict(splits)


def read_file_split(
    path: Path, fmt: str, data: DictConfig, label_names: list[str] | None, closed: bool = True
) -> list[Sentence]:
    """One split's file, by its format: CoNLL columns, CoNLL-U, or a table (JSON lines, a
    saved split), its tags checked against `label_names` (None: any, to read a label set)."""
    layers = OmegaConf.select(data, "span_columns", default=None)
    if fmt == "conll" and layers:
        return read_layered_conll(path, list(layers), data.word_column, data.scheme)
    if fmt == "conll":
        return read_conll(
            path, label_column(data), label_names, data.word_column, data.scheme, closed=closed
        )
    if fmt == "conllu":
        return read_conllu(path, label_column(data, fmt), label_names, closed)
    return checked_table_sentences(file_table(path, fmt, data), label_names, data.scheme, closed)


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
        raise DataFormatError(
            f"{path}: a saved DatasetDict, not one split; set data.dir={path} "
            "to read its splits (data.split_names)"
        )
    return dataset_table(saved, str(path), columns_of(data), data.labels)


def load_named_splits(data: DictConfig, source: DataSource, label_names: list[str]) -> DatasetDict:
    """The splits of a hub or saved dataset, with validation held out of train where the
    dataset has none."""
    raw = open_named_splits(data, source)
    chosen = chosen_splits(raw, data.split_names, source.name)
    splits = dataset_splits(
        chosen, source.name, columns_of(data), label_names, data.scheme, data.labels
    )
    if "validation" in splits:
        return splits
    log.info(
        "%s: no validation split (its splits: %s). To use one of them, set "
        "data.split_names.validation=NAME",
        source.name,
        ", ".join(raw),
    )
    return with_held_out_validation(splits, data.validation_fraction, data.validation_seed)


def with_held_out_validation(splits: DatasetDict, fraction: float, seed: int) -> DatasetDict:
    """Train and a validation split held out of it (`held_out_rows`), then the others."""
    train = splits["train"]
    rows = held_out_rows(list(train["document_id"]), fraction, seed)
    log.info(
        "validation: %d of the %d train sentences held out (data.validation_fraction=%s, "
        "data.validation_seed=%s)",
        len(rows),
        len(train),
        fraction,
        seed,
    )
    held = set(rows)
    kept = [row for row in range(len(train)) if row not in held]
    others = {split: dataset for split, dataset in splits.items() if split != "train"}
    return DatasetDict({"train": train.select(kept), "validation": train.select(rows), **others})


def open_named_splits(data: DictConfig, source: DataSource) -> DatasetDict:
    """The DatasetDict saved in `data.dir`, or the hub dataset `data.hub_name`."""
    if source.kind == "saved":
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
            log.info(
                "%s: no split %r (data.split_names.test); its splits are %s: no test split",
                source,
                name,
                ", ".join(raw),
            )
    return chosen


def dataset_splits(
    chosen: dict[str, Dataset],
    source: str,
    columns: Columns,
    label_names: list[str],
    scheme: str,
    data_labels: list[str] | None,
) -> DatasetDict:
    """Our splits of a dataset's rows, their tags checked and as ids into `label_names`
    (validation and test may hold string tags outside them; a ClassLabel's ids cannot)."""
    splits = {}
    for split, dataset in chosen.items():
        table = dataset_table(dataset, f"{source} {split}", columns, data_labels)
        sentences = checked_table_sentences(table, label_names, scheme, closed=split == "train")
        splits[split] = sentences_dataset(sentences, label_names, table.source)
    return DatasetDict(splits)


def checked_table_sentences(
    table: Table, label_names: list[str], scheme: str, closed: bool = True
) -> list[Sentence]:
    """A table's sentences, tags checked against `label_names` (`closed=False`: tags outside
    them pass, see `TagCheck`). A ClassLabel defines the ids: its names (as IOB2) must be
    `label_names` exactly, else ids would silently differ."""
    if table.class_label is not None:
        names = iob2_label_names(table.class_label, scheme)
        if names != label_names:
            conll2003 = any(label_names == labels for _, labels in CONLL2003_TASKS.values())
            listing = "CoNLL-2003" if conll2003 else "expected"
            raise DataFormatError(
                f"{table.source}: the {table.tags_column} labels {names} differ from the "
                f"{listing} list {label_names}; ids would not match"
            )
    check = TagCheck(label_names, scheme, f"column {table.tags_column!r}", closed=closed)
    return table_sentences(table, check)


def sentences_dataset(sentences: list[Sentence], label_names: list[str], source: str) -> Dataset:
    """One split's sentences with their labels as ids into `label_names`. A label outside them
    (one the model cannot predict) gets IGNORE_INDEX and is kept in the split's
    `unpredictable_labels` column, with a warning that names it and `source` (see the module
    docstring); a split without such labels has no such column."""
    label_to_id = {label: i for i, label in enumerate(label_names)}
    columns = {
        "tokens": [s.words for s in sentences],
        "tags": [[label_to_id.get(label, IGNORE_INDEX) for label in s.labels] for s in sentences],
        "document_id": [s.document_id for s in sentences],
        "line": [s.line for s in sentences],
    }
    unpredictable = [[label for label in s.labels if label not in label_to_id] for s in sentences]
    if any(unpredictable):
        warn_unpredictable(unpredictable, label_names, source)
        columns[UNPREDICTABLE_COLUMN] = unpredictable
    if any(s.mentions is not None for s in sentences):
        columns.update(mention_columns(sentences, label_names))
    return Dataset.from_dict(columns)


def warn_unpredictable(unpredictable: list[list[str]], label_names: list[str], source: str) -> None:
    """One warning per label the model cannot predict: where, and on how many words."""
    counts = Counter(label for labels in unpredictable for label in labels)
    for label, count in sorted(counts.items()):
        # labels are IOB2 by now: an S-X or E-X one comes from BIOES read as another scheme
        log.warning(
            "%s: %d word(s) have the gold label %r, which is not among the %d labels the model "
            "predicts (from the training data or data.labels); they are scored as gold (each "
            "such entity a miss) and carry no loss%s",
            source,
            count,
            label,
            len(label_names),
            bioes_hint(label, "iob2"),
        )


def gold_labels(sentences: Dataset, label_names: list[str], key: str = "") -> list[list[str]]:
    """Every word's gold label, per sentence: its `tags` id's name, or where the id is
    IGNORE_INDEX the next of the sentence's `unpredictable_labels` (see `sentences_dataset`).
    `key`: a further task's columns (`tags.<task>`, see data/tasks.py)."""
    if UNPREDICTABLE_COLUMN + key in sentences.column_names:
        unpredictable = sentences[UNPREDICTABLE_COLUMN + key]
    else:
        unpredictable = [[]] * len(sentences)
    gold = []
    for tags, others in zip(sentences["tags" + key], unpredictable, strict=True):
        others = iter(others)
        gold.append([label_names[tag] if tag != IGNORE_INDEX else next(others) for tag in tags])
    return gold


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
