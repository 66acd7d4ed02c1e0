"""Where a source keeps a task's labels, and what of a label is compared: the columns of
table sources, the label column of CoNLL and CoNLL-U files, the CoNLL-U file behind a split.
"""

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from omegaconf import DictConfig, OmegaConf

from bert_pos.data.conll import split_file
from bert_pos.data.conllu import FEATS_COLUMN, universal_features
from bert_pos.data.conllu import TASK_COLUMNS as CONLLU_TASK_COLUMNS
from bert_pos.data.formats import DataSource
from bert_pos.data.labels import CONLL2003_TASKS
from bert_pos.data.tags import DataFormatError
from bert_pos.data.tasks import task_data_configs


class Columns(NamedTuple):
    """The columns (JSON fields) of a table source that hold each thing."""

    tokens: str
    tags: str
    document: str | None
    surface: str | None = None  # where `_` marks a multiword token's surface row
    spans: str | None = None  # JSON lines: each row's mentions (tags then come from them)
    span_fields: tuple = ("start", "end", "type")  # a mention object's fields


def columns_of(data: DictConfig) -> Columns:
    """`data.tokens_column`, `data.tags_column` (null: `{task}_tags` for the CoNLL-2003 tasks,
    `ner_tags` for others, as the hub's datasets and `run_ner.py` name them) and
    `data.document_column`, `data.multiword_surface_column`."""
    tags = data.tags_column
    if tags is None:
        tags = f"{data.task}_tags" if data.task in CONLL2003_TASKS else "ner_tags"
    spans = OmegaConf.select(data, "spans_column", default=None)
    fields = tuple(OmegaConf.select(data, "span_fields", default=None) or ("start", "end", "type"))
    return Columns(
        data.tokens_column,
        tags,
        data.document_column,
        data.multiword_surface_column,
        spans,
        fields,
    )


# Per file format: each task's label column, what its tasks are called, and which column
# data.label_column counts in.
TASK_COLUMNS = {
    "conll": (
        {task: column for task, (column, _) in CONLL2003_TASKS.items()},
        "CoNLL-2003",
        "of its tags in the CoNLL files",
    ),
    "conllu": (CONLLU_TASK_COLUMNS, "CoNLL-U", "of the 10 columns"),
}


def label_column(data: DictConfig, fmt: str = "conll") -> int:
    """The 0-based label column of CoNLL files: `data.label_column`, or the task's column
    (CoNLL-2003's for conll files; UPOS, XPOS or FEATS for CoNLL-U)."""
    if data.label_column is not None:
        return data.label_column
    columns, kind, counted = TASK_COLUMNS[fmt]
    if data.task not in columns:
        raise DataFormatError(
            f"data.task={data.task!r} is not a {kind} task ({', '.join(columns)}): set one, "
            f"or data.label_column, the 0-based column {counted}"
        )
    return columns[data.task]


def conllu_source(data: DictConfig, split: str) -> tuple[Path, list[int]] | None:
    """A split read from a CoNLL-U file: (its path, the column each task of the run
    predicts), for writing predictions.conllu; None for any other source."""
    source = DataSource.of(data)
    if split not in source.files or source.files[split][1] != "conllu":
        return None
    columns = [label_column(one, "conllu") for one in task_data_configs(data)]
    return split_file(data.dir, split, data[f"{split}_file"]), columns


def label_view(data: DictConfig) -> Callable[[str], str] | None:
    """What is compared of a label: the universal features of CoNLL-U FEATS (UFeats, as the
    CoNLL 2018 scorer compares them); None (the label itself) for every other task."""
    source = DataSource.of(data)
    if source.reads_conllu_files and label_column(data, "conllu") == FEATS_COLUMN:
        return universal_features
    return None
