"""Which reader each split needs, from the config and the file names alone.

Light on purpose (no `datasets` import): `check_config` asks it before the heavy libraries load.
"""

from pathlib import Path

from omegaconf import DictConfig

SPLITS = ("train", "validation", "test")
FORMATS = ("conll", "jsonl", "saved")  # data.format; null = from each split's file name
JSONL_SUFFIXES = (".jsonl", ".json")


def source_kind(data: DictConfig) -> str:
    """Where the splits come from: `hub` (data.hub_name: a hub dataset or a folder that
    `datasets.load_dataset` reads), `demo` (the generated demo corpus), `saved` (data.dir is
    a DatasetDict saved by `datasets`, with dataset_dict.json) or `files` (data.dir holds one
    file, or one saved split folder, per split: data.train_file, ...)."""
    if data.dir is None:
        return "demo" if data.demo_corpus else "hub"
    if data.format in (None, "saved") and (Path(data.dir) / "dataset_dict.json").is_file():
        return "saved"
    return "files"


def split_format(path: Path, configured: str | None) -> str:
    """`data.format`, or the one the split's name implies: `.jsonl`/`.json` JSON lines, a
    folder a split saved by `datasets`, anything else (`.txt`, `.conll`, `eng.train`) CoNLL
    columns, as every file was read before there were other formats."""
    if configured is not None:
        return configured
    if path.suffix.lower() in JSONL_SUFFIXES:
        return "jsonl"
    if path.is_dir():
        return "saved"
    return "conll"


def reads_conll_files(data: DictConfig) -> bool:
    """Whether any split is read from CoNLL column files (which need a label column)."""
    kind = source_kind(data)
    if kind != "files":
        return kind == "demo"
    names = [data[f"{split}_file"] for split in SPLITS if data[f"{split}_file"] is not None]
    return any(split_format(Path(data.dir) / name, data.format) == "conll" for name in names)
