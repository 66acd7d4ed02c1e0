"""Tasks: the tag layers a run learns, each with its label set and how it is scored.

Everything that differs between tasks lives here, so the loop, the scorer and the commands
ask the task instead of working it out from the labels or the config again: whether its
labels are spans (entity P/R/F1, `f1`) or tags (token `accuracy`), and what of a label is
compared (`view`: CoNLL-U FEATS is compared by its universal features, as the CoNLL 2018
scorer compares them; every other label as it is).

A run learns `data.tasks` (null: the one `data.task`) on one encoder. The first task's
columns are the plain ones (`tags`, `labels`, `word_labels`, so a one-task run is exactly
what it always was); every further task's carry its name (`tags.xpos`, `labels.xpos`, ...).
A run with several tasks reports each task's scores as `<task>/<metric>`.
"""

from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from bert_pos.data.labels import is_span_label_set
from bert_pos.data.tags import DataFormatError

# The CoNLL-U tasks whose joint accuracy is the CoNLL 2018 scorer's AllTags
ALL_TAGS = ("upos", "xpos", "feats")


@dataclass(frozen=True)
class Task:
    name: str  # data.task: ner, pos, chunk, upos, xpos, feats, or a dataset's own name
    label_names: list[str]  # the model's labels, in id order
    view: Callable[[str], str] | None = None  # what is compared of a label; None: itself
    key: str = ""  # its columns' suffix: "" for a run's first task, ".<name>" for the others

    @property
    def spans(self) -> bool:
        """Whether the labels are IOB2 spans, scored at entity level."""
        return is_span_label_set(self.label_names)

    @property
    def metric(self) -> str:
        """The score a run selects its best checkpoint by, and reports first."""
        return "f1" if self.spans else "accuracy"

    @property
    def tags_column(self) -> str:  # word label ids of a sentence
        return "tags" + self.key

    @property
    def labels_column(self) -> str:  # subword label ids of an example (the loss)
        return "labels" + self.key


def task_key(index: int, name: str) -> str:
    return "" if index == 0 else f".{name}"


def task_batch(batch: dict, key: str) -> dict:
    """A batch as one task's head reads it: that task's labels under the plain names."""
    if not key:
        return batch
    return {**batch, "labels": batch["labels" + key], "word_labels": batch["word_labels" + key]}


def task_names(data: DictConfig) -> list[str]:
    """The tasks a run learns: `data.tasks`, or the one `data.task`."""
    tasks = OmegaConf.select(data, "tasks", default=None)
    return [data.task] if not tasks else [str(name) for name in tasks]


def task_data_configs(data: DictConfig) -> list[DictConfig]:
    """One data config per task, each reading that task's labels as a one-task run would:
    `data.task` set to it, and its column from `data.task_columns` (a 0-based column of
    CoNLL files, or a table's column name) where given."""
    names = task_names(data)
    if len(names) == 1:  # data.tasks=[X] is data.task=X
        one = data.copy()
        one.task, one.tasks = names[0], None
        return [one]
    check_tasks(data, names)
    columns = OmegaConf.select(data, "task_columns", default=None) or {}
    configs = []
    for name in names:
        one = data.copy()
        one.task, one.tasks = name, None
        column = columns.get(name)
        if isinstance(column, int):
            one.label_column = column
        elif column is not None:
            one.tags_column = str(column)
        configs.append(one)
    return configs


def check_tasks(data: DictConfig, names: list[str]) -> None:
    """Settings that name one column or one label list cannot serve several tasks."""
    if len(set(names)) != len(names):
        raise DataFormatError(f"data.tasks={names}: a task is listed twice")
    for name in names:
        if not name.isidentifier():
            raise DataFormatError(
                f"data.tasks: {name!r} is not a valid task name (letters, digits, _)"
            )
    for key in ("labels", "label_column", "tags_column"):
        if data[key] is not None:
            raise DataFormatError(
                f"data.{key} applies to one task; with data.tasks={names} give each task's "
                "column in data.task_columns (e.g. 'data.task_columns={lemma: 2}') and let each "
                "read its labels from the data"
            )
    weights = OmegaConf.select(data, "task_weights", default=None) or {}
    columns = OmegaConf.select(data, "task_columns", default=None) or {}
    for setting, mapping in (("task_weights", weights), ("task_columns", columns)):
        unknown = sorted(set(mapping) - set(names))
        if unknown:
            raise DataFormatError(
                f"data.{setting}: {', '.join(unknown)} is not among data.tasks={names}"
            )


def task_weights(data: DictConfig, tasks: list[Task]) -> list[float]:
    """Each task's weight in the summed loss (`data.task_weights`, default 1)."""
    weights = OmegaConf.select(data, "task_weights", default=None) or {}
    return [float(weights.get(task.name, 1.0)) for task in tasks]


def selection_key(tasks: list[Task], select: str | None) -> str:
    """The score a run selects its best checkpoint by: `eval.select`, or the first task's
    metric (`f1` or `accuracy`; `<task>/<metric>` with several tasks)."""
    keys = score_keys(tasks)
    if select is None:
        return keys[0]
    if select not in keys:
        raise DataFormatError(f"eval.select={select}: expected one of {', '.join(keys)}")
    return select


def score_keys(tasks: list[Task]) -> list[str]:
    """The scores a run can select by, the first task's metric first."""
    if len(tasks) == 1:
        task = tasks[0]
        return [task.metric] + (["precision", "recall"] if task.spans else [])
    keys = []
    for task in tasks:
        keys.append(f"{task.name}/{task.metric}")
    for task in tasks:
        if task.spans:
            keys += [f"{task.name}/precision", f"{task.name}/recall"]
    if has_all_tags(tasks):
        keys.append("alltags/accuracy")
    return keys


def has_all_tags(tasks: list[Task]) -> bool:
    return len(tasks) > 1 and set(ALL_TAGS) <= {task.name for task in tasks}
