"""Write a local copy of CoNLL-2003 column files in the hub's layout, to train through the hub path.

    python experiments/make_hub_copy.py ../shared/data/conll2003 /tmp/conll2003_hub
    python -m bert_pos.train data.hub_name=/tmp/conll2003_hub

The copy is laid out as the hub's parquet export of eriktks/conll2003 (the default
`data.hub_revision`, refs/convert/parquet): `conll2003/{train,validation,test}/0000.parquet`,
with columns id, tokens, pos_tags, chunk_tags, ner_tags, the tag columns ClassLabel sequences
with the lists of bert_pos/data/labels.py. Like the hub copy it has no `-DOCSTART-` rows, so
`data.hub_name=<copy>` loads the same sentences and label ids as `data.dir=<files>`, with
document ids unknown (-1) and no line numbers.
"""

import argparse
from pathlib import Path

from datasets import ClassLabel, Dataset, Features, Sequence, Value

from bert_pos.data.conll import read_conll
from bert_pos.data.labels import CONLL2003_TASKS

SPLIT_FILES = {"train": "train.txt", "validation": "validation.txt", "test": "test.txt"}
FEATURES = Features(
    {
        "id": Value("string"),
        "tokens": Sequence(Value("string")),
        **{
            f"{task}_tags": Sequence(ClassLabel(names=labels))
            for task, (_, labels) in CONLL2003_TASKS.items()
        },
    }
)


def hub_rows(path: Path) -> dict[str, list]:
    """The columns of one split: each sentence's words and its ids in each task's list (the
    file is read once per tag column, each column checked as bert_pos reads it)."""
    rows = {}
    for task, (column, labels) in CONLL2003_TASKS.items():
        sentences = read_conll(path, column, labels)
        label_to_id = {label: i for i, label in enumerate(labels)}
        rows["tokens"] = [s.words for s in sentences]
        rows[f"{task}_tags"] = [[label_to_id[tag] for tag in s.labels] for s in sentences]
    rows["id"] = [str(i) for i in range(len(rows["tokens"]))]
    return rows


def write_hub_copy(conll_dir: Path, out_dir: Path, config_name: str = "conll2003") -> Path:
    """Write `out_dir/<config_name>/<split>/0000.parquet` for each split file that exists."""
    for split, name in SPLIT_FILES.items():
        if not (conll_dir / name).is_file():
            continue
        target = out_dir / config_name / split / "0000.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        Dataset.from_dict(hub_rows(conll_dir / name), features=FEATURES).to_parquet(str(target))
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "conll_dir", type=Path, help="folder of train.txt, validation.txt, test.txt"
    )
    parser.add_argument("out_dir", type=Path, help="folder to write the hub-layout copy into")
    args = parser.parse_args()
    print(write_hub_copy(args.conll_dir, args.out_dir))


if __name__ == "__main__":
    main()
