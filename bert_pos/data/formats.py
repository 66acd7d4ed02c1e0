"""Which reader each split needs, from the config and the file names alone.

Light on purpose (no `datasets` import): `check_config` asks it before the heavy libraries load.
"""

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

SPLITS = ("train", "validation", "test")
FORMATS = ("conll", "conllu", "jsonl", "saved")  # data.format; null = from each file's name
JSONL_SUFFIXES = (".jsonl", ".json")
CONLLU_SUFFIX = ".conllu"


@dataclass(frozen=True)
class DataSource:
    """Where a run's splits come from, worked out once from `cfg.data`:

    - kind `hub`: data.hub_name, a hub dataset or a folder `datasets.load_dataset` reads;
    - `demo`: the generated demo corpus;
    - `saved`: data.dir is a DatasetDict saved by `datasets` (with dataset_dict.json);
    - `files`: data.dir holds one file, or one saved split folder, per split (`files`: each
      split's path and the reader its format needs)."""

    kind: str
    name: str  # as messages name it: the folder, or the hub dataset with its config
    files: dict[str, tuple[Path, str]]  # kind files: split -> (path, conll | jsonl | saved)

    @classmethod
    def of(cls, data: DictConfig) -> "DataSource":
        if data.dir is None:
            if data.demo_corpus:
                return cls("demo", "the demo corpus", {})
            name = f"{data.hub_name}" + (f" ({data.hub_config})" if data.hub_config else "")
            return cls("hub", name, {})
        if data.format in (None, "saved") and (Path(data.dir) / "dataset_dict.json").is_file():
            return cls("saved", str(data.dir), {})
        files = {}
        for split in SPLITS:
            if data[f"{split}_file"] is not None:
                path = Path(data.dir) / data[f"{split}_file"]
                files[split] = (path, split_format(path, data.format))
        return cls("files", str(data.dir), files)

    @property
    def reads_conllu_files(self) -> bool:
        """Whether any split is read from CoNLL-U files (whose tasks are upos, xpos, feats)."""
        return self.kind == "files" and any(fmt == "conllu" for _, fmt in self.files.values())

    @property
    def reads_conll_files(self) -> bool:
        """Whether any split is read from CoNLL column files (which need a label column)."""
        if self.kind != "files":
            return self.kind == "demo"
        return any(fmt == "conll" for _, fmt in self.files.values())

    @property
    def first_split_is_conll(self) -> bool:
        """The demo corpus, or CoNLL files (the first split's decides): where a CoNLL-2003
        task's fixed label list applies."""
        if self.kind != "files":
            return self.kind == "demo"
        return bool(self.files) and next(iter(self.files.values()))[1] == "conll"


def split_format(path: Path, configured: str | None) -> str:
    """`data.format`, or the one the split's name implies: `.conllu` CoNLL-U, `.jsonl`/`.json`
    JSON lines, a folder a split saved by `datasets`, anything else (`.txt`, `.conll`,
    `eng.train`) CoNLL columns, as every file was read before there were other formats."""
    if configured is not None:
        return configured
    if path.suffix.lower() == CONLLU_SUFFIX:
        return "conllu"
    if path.suffix.lower() in JSONL_SUFFIXES:
        return "jsonl"
    if path.is_dir():
        return "saved"
    return "conll"
