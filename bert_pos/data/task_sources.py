"""The sources of a run's tasks (data/tasks.py): each task's labels and tags read as a
one-task run reads them (data/sources.py), joined into one set of splits.
"""

from pathlib import Path

from datasets import DatasetDict
from omegaconf import DictConfig

from bert_pos.data.columns import label_view
from bert_pos.data.sources import (
    UNPREDICTABLE_COLUMN,
    load_splits,
    resolve_label_names,
)
from bert_pos.data.tags import DataFormatError
from bert_pos.data.tasks import Task, task_data_configs, task_key


def resolve_tasks(data: DictConfig, demo_corpus_dir: Path | None = None) -> list[Task]:
    """The tasks a run learns (data/tasks.py), each with its label vocabulary
    (`resolve_label_names` of its own data config) and what of a label is compared."""
    return [
        Task(
            one.task,
            resolve_label_names(one, demo_corpus_dir),
            label_view(one),
            task_key(i, one.task),
        )
        for i, one in enumerate(task_data_configs(data))
    ]


def load_task_splits(
    data: DictConfig, tasks: list[Task], demo_corpus_dir: Path | None = None
) -> DatasetDict:
    """The splits of a run's tasks: the first task's as `load_splits` reads them,
    with each further task's tags (and labels its model cannot predict) beside them in columns
    named after it (`tags.<task>`). Every task reads the same sentences, each checked as its
    own run would check them; words that differ between tasks are an error."""
    configs = task_data_configs(data)
    splits = load_splits(configs[0], tasks[0].label_names, demo_corpus_dir)
    for one, task in zip(configs[1:], tasks[1:], strict=True):
        other = load_splits(one, task.label_names, demo_corpus_dir)
        for split, dataset in splits.items():
            if split not in other or other[split]["tokens"] != dataset["tokens"]:
                raise DataFormatError(
                    f"{split}: the words read for task {task.name!r} differ from those of "
                    f"{tasks[0].name!r}; every task must label the same sentences"
                )
            dataset = dataset.add_column(task.tags_column, other[split]["tags"])
            if UNPREDICTABLE_COLUMN in other[split].column_names:
                dataset = dataset.add_column(
                    UNPREDICTABLE_COLUMN + task.key, other[split][UNPREDICTABLE_COLUMN]
                )
            splits[split] = dataset
    return splits
