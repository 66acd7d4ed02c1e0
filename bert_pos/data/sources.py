"""Sources: every dataset ends as the same `DatasetDict` of sentences.

Each split holds `tokens` (the words), `tags` (label ids), `document_id` (the `-DOCSTART-`
document, -1 where unknown) and `line` (1-based line of the first word in its file, -1 for the
hub), from local CoNLL files, the generated demo corpus, or the Hugging Face hub.
"""

from pathlib import Path

from datasets import Dataset, DatasetDict
from omegaconf import DictConfig

from bert_pos.conll import read_conll, split_file
from bert_pos.demo_corpus import write_demo_corpus
from bert_pos.labels import CONLL2003_TASKS, task_labels

SPLITS = ("train", "validation", "test")


def label_column(data: DictConfig) -> int:
    """The 0-based label column: `data.label_column`, or the task's CoNLL-2003 column."""
    if data.label_column is not None:
        return data.label_column
    return CONLL2003_TASKS[data.task][0]


def resolve_label_names(data: DictConfig, demo_corpus_dir: Path | None = None) -> list[str]:
    """The label vocabulary, with stable ids.

    CoNLL-2003 tasks use the hub dataset's lists. Any other task reads the label set of the
    training file, sorted (converted to IOB2 first when `data.scheme=iob1`).
    """
    if data.task in CONLL2003_TASKS:
        return task_labels(data.task)
    train_path = split_file(data.dir or demo_corpus_dir, "train", data.train_file)
    sentences = read_conll(train_path, label_column(data), None, data.word_column, data.scheme)
    return sorted({tag for s in sentences for tag in s.labels})


def load_splits(
    data: DictConfig, label_names: list[str], demo_corpus_dir: Path | None = None
) -> DatasetDict:
    """Sentences of each split from `data.dir`, the generated demo corpus, or the hub.

    Splits whose file name is null are skipped. With `data.scheme=iob1` the tags are
    converted to IOB2 as they are read; with `iob2`, span tags (`O`, `B-X`, `I-X`) must be
    valid IOB2, so an IOB1 file stops with an error instead of training on broken spans.
    """
    if data.dir is None and not data.demo_corpus:
        return load_hub_splits(data.hub_name, data.hub_revision, data.task, label_names)
    directory = data.dir
    if directory is None:
        directory = str(write_demo_corpus(demo_corpus_dir, dict(data.demo_sentences), seed=0))
    label_to_id = {label: i for i, label in enumerate(label_names)}
    splits = {}
    for split in SPLITS:
        name = data[f"{split}_file"]
        if name is None:
            continue
        path = split_file(directory, split, name)
        sentences = read_conll(path, label_column(data), label_names, data.word_column, data.scheme)
        splits[split] = Dataset.from_dict(
            {
                "tokens": [s.words for s in sentences],
                "tags": [[label_to_id[label] for label in s.labels] for s in sentences],
                "document_id": [s.document_id for s in sentences],
                "line": [s.line for s in sentences],
            }
        )
    return DatasetDict(splits)


def load_hub_splits(
    hub_name: str, hub_revision: str | None, task: str, label_names: list[str]
) -> DatasetDict:
    """CoNLL-2003 from the hub (a parquet copy: `datasets` no longer runs loading scripts).

    Document ids come from `-DOCSTART-` rows where a copy keeps them (those rows are then
    dropped); the usual parquet copy has none, and its document ids are unknown: -1.
    """
    from datasets import load_dataset

    raw = load_dataset(hub_name, revision=hub_revision)
    column = f"{task}_tags"
    hub_names = getattr(raw["train"].features[column].feature, "names", None)
    if hub_names is not None and list(hub_names) != label_names:
        raise ValueError(
            f"{hub_name}: the {column} labels {hub_names} differ from the CoNLL-2003 list "
            f"{label_names}; ids would not match"
        )
    splits = {}
    for split in SPLITS:
        if split not in raw:
            continue
        tags = raw[split][column]
        if any(tag < 0 or tag >= len(label_names) for sentence in tags for tag in sentence):
            raise ValueError(
                f"{hub_name} {split}: a {column} id is outside 0..{len(label_names) - 1}"
            )
        tokens, document_ids, kept_tags, document = [], [], [], -1
        for words, sentence_tags in zip(raw[split]["tokens"], tags):
            if words == ["-DOCSTART-"]:
                document += 1
                continue
            tokens.append(words)
            kept_tags.append(sentence_tags)
            document_ids.append(document)
        count = len(tokens)
        splits[split] = Dataset.from_dict(
            {"tokens": tokens, "tags": kept_tags, "document_id": document_ids, "line": [-1] * count}
        )  # fmt: skip
    return DatasetDict(splits)


def subset(splits: DatasetDict, max_train: int | None, max_eval: int | None) -> DatasetDict:
    """The first N sentences of each split (documents stay whole but for the last one)."""
    limited = {}
    for split, dataset in splits.items():
        limit = max_train if split == "train" else max_eval
        limited[split] = dataset.select(range(min(limit, len(dataset)))) if limit else dataset
    return DatasetDict(limited)
