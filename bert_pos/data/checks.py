"""The checks of `cfg.data` that types cannot express, one line each, naming the key.

Light on purpose (no `datasets`): the commands run them before the heavy libraries load.
"""

from pathlib import Path

from omegaconf import DictConfig

from bert_pos.data.columns import label_column
from bert_pos.data.formats import FORMATS, DataSource
from bert_pos.data.tags import DataFormatError


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
    for fmt, reads_files in (
        ("conllu", source.reads_conllu_files),
        ("conll", source.reads_conll_files),
    ):
        try:
            if reads_files:
                label_column(data, fmt)
        except DataFormatError as err:
            problems.append(str(err))
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
