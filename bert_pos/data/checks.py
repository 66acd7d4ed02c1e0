"""The checks of `cfg.data` that types cannot express, one line each, naming the key.

Light on purpose (no `datasets`): the commands run them before the heavy libraries load.
"""

from pathlib import Path

from omegaconf import DictConfig

from bert_pos.data.conllu import TASK_COLUMNS as CONLLU_TASK_COLUMNS
from bert_pos.data.formats import FORMATS, DataSource
from bert_pos.data.labels import CONLL2003_TASKS


def data_problems(data: DictConfig) -> list[str]:
    """The checks of `data` that types cannot express, one line each, naming the key."""
    problems = []
    if data.dir is not None and not Path(data.dir).expanduser().is_dir():
        problems.append(f"data.dir={data.dir}: no such folder")  # said before torch loads
    source = DataSource.of(data)
    if source.kind == "hub" and data.hub_name is None:
        problems.append(
            "data.hub_name=null and data.dir=null: name a hub dataset (data=conll2003, ...) "
            "or a local folder (data.dir=PATH)"
        )
    for key in ("train_file", "validation_file"):
        if data[key] is None:
            problems.append(f"data.{key}=null: training needs this split")
    column_tasks = [
        (source.reads_conllu_files, CONLLU_TASK_COLUMNS, "CoNLL-U", "of the 10 columns"),
        (source.reads_conll_files, CONLL2003_TASKS, "CoNLL-2003", "of its tags in the CoNLL files"),
    ]
    for reads_files, tasks, kind, column in column_tasks:
        if reads_files and data.task not in tasks and data.label_column is None:
            problems.append(
                f"data.task={data.task!r} is not a {kind} task ({', '.join(tasks)}): set one, "
                f"or data.label_column, the 0-based column {column}"
            )
    if data.multiword_surface_column is not None and source.kind not in (
        "hub",
        "saved",
    ):
        problems.append(
            f"data.multiword_surface_column={data.multiword_surface_column}: read from hub and "
            "saved datasets only (CoNLL-U files mark multiword tokens with range lines)"
        )
    if data.format is not None and data.format not in FORMATS:
        problems.append(
            f"data.format={data.format!r}: expected null or one of {', '.join(FORMATS)}"
        )
    unknown = set(data.split_names) - {"train", "validation", "test"}
    if unknown or data.split_names.get("train") is None:
        problems.append(
            f"data.split_names={dict(data.split_names)}: expected the dataset's "
            "split names of train (required), validation and test"
        )
    if not 0 < data.validation_fraction < 1:
        problems.append(
            f"data.validation_fraction={data.validation_fraction}: must be within (0, 1)"
        )
    if data.labels is not None and (not data.labels or len(set(data.labels)) != len(data.labels)):
        problems.append(f"data.labels={list(data.labels)}: expected distinct label names, or null")
    return problems
