"""Sources other than the CoNLL-2003 files, through the real loading path (`resolve_label_names`
+ `load_splits` with the composed config): hub datasets (local folders in the hub's layouts,
read by the same `datasets.load_dataset` call), the data presets of conf/data/, datasets saved
by `datasets`, JSON lines, split names, held-out validation, and the hub-layout copy that
experiments/make_hub_copy.py writes. Malformed CoNLL and JSON-lines files: test_malformed.py.
"""

import importlib.util
import logging
import re
from pathlib import Path

import datasets
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value
from omegaconf import OmegaConf

from bert_pos.config import ConfigError, check_config
from bert_pos.data.formats import DataSource, split_format
from bert_pos.data.labels import CHUNK_LABELS, IGNORE_INDEX, NER_LABELS, POS_LABELS
from bert_pos.data.sources import gold_labels, load_splits, resolve_label_names
from bert_pos.data.tables import held_out_rows
from bert_pos.data.tags import DataFormatError
from tests.helpers import CONF_DIR, NO_CONLL, ROOT, SHARED_CONLL, compose_config, data_config

WORDS = [
    ["EU", "rejects", "German", "call"],
    ["Peter", "Blackburn"],
    ["BRUSSELS", "1996"],
    ["The", "Commission", "said"],
]
NER = [["B-ORG", "O", "B-MISC", "O"], ["B-PER", "I-PER"], ["B-LOC", "O"], ["O", "B-ORG", "O"]]


@pytest.fixture(autouse=True)
def datasets_cache_in_tmp(tmp_path, monkeypatch):
    """`load_dataset` caches what it reads; these tests keep that inside their tmp folder."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


def tag_features(names: list[str] | None = None, dtype: str = "string") -> Features:
    tags = ClassLabel(names=names) if names is not None else Value(dtype)
    return Features({"tokens": Sequence(Value("string")), "ner_tags": Sequence(tags)})


def write_parquet_export(folder: Path, config: str, splits: dict, features: Features) -> str:
    """A dataset as the hub's parquet export lays it out: `<config>/<split>/0000.parquet`."""
    for split, rows in splits.items():
        path = folder / config / split / "0000.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        Dataset.from_dict(rows, features=features).to_parquet(str(path))
    return str(folder)


def write_pushed(folder: Path, splits: dict, features: Features) -> str:
    """A dataset as `push_to_hub` lays it out: `data/<split>-00000-of-00001.parquet`, which
    keeps any split name (`dev`)."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        path = folder / "data" / f"{split}-00000-of-00001.parquet"
        Dataset.from_dict(rows, features=features).to_parquet(str(path))
    return str(folder)


def rows(words=WORDS, tags=NER, names=None, **extra):
    """Columns of a split; with `names`, tags as ids into them."""
    if names is not None:
        tags = [[names.index(tag) for tag in sentence] for sentence in tags]
    return {"tokens": words, "ner_tags": tags, **extra}


def load(*overrides: str):
    data = data_config(*overrides)
    label_names = resolve_label_names(data)
    return label_names, load_splits(data, label_names)


def names_of(split: Dataset, label_names: list[str]) -> list[list[str]]:
    return [[label_names[i] for i in sentence] for sentence in split["tags"]]


# ---------------------------------------------------------------- hub datasets


def test_class_label_names_and_ids_are_the_datasets_own(tmp_path):
    # not the CoNLL-2003 order, not sorted: ids must still be the dataset's
    names = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
    hub = write_pushed(
        tmp_path / "hub",
        {s: rows(names=names) for s in ("train", "validation")},
        tag_features(names),
    )
    label_names, splits = load(f"hub_name={hub}", "task=entities")
    assert label_names == names and set(splits) == {"train", "validation"}
    assert splits["train"]["tags"][0] == [names.index(t) for t in NER[0]]
    assert splits["train"]["tokens"] == WORDS and names_of(splits["validation"], names) == NER
    assert splits["train"]["line"] == [-1] * 4 and splits["train"]["document_id"] == [-1] * 4


def test_string_tags_give_the_sorted_label_set_of_train_with_both_forms_of_each_type(tmp_path):
    hub = write_pushed(tmp_path / "hub", {"train": rows(), "validation": rows()}, tag_features())
    label_names, splits = load(f"hub_name={hub}")
    # train has B-LOC, B-MISC, B-ORG only as B-: their I- forms get ids too
    assert label_names == [
        "B-LOC",
        "B-MISC",
        "B-ORG",
        "B-PER",
        "I-LOC",
        "I-MISC",
        "I-ORG",
        "I-PER",
        "O",
    ]
    assert names_of(splits["validation"], label_names) == NER


def test_string_tag_of_a_type_absent_from_train_is_scored_gold_in_validation(tmp_path, caplog):
    unseen = rows(
        tags=[["B-ORG", "O", "B-MISC", "O"], ["B-DATE", "O"], ["B-LOC", "O"], ["O", "O", "O"]]
    )
    hub = write_pushed(tmp_path / "unseen", {"train": rows(), "validation": unseen}, tag_features())
    label_names, splits = load(f"hub_name={hub}")
    assert "B-DATE" not in label_names
    assert splits["validation"]["tags"][1] == [IGNORE_INDEX, label_names.index("O")]
    assert gold_labels(splits["validation"], label_names) == unseen["ner_tags"]
    assert f"{hub} validation: 1 word(s) have the gold label 'B-DATE'" in caplog.text
    # train itself must fit the label list a config gives
    with pytest.raises(
        DataFormatError,
        match=re.escape(
            f"{hub} train row 0, word 0: label 'B-ORG' (column 'ner_tags') is not in the "
            "label set; expected one of the 3 labels O B-PER I-PER"
        ),
    ):
        load(f"hub_name={hub}", "labels=[O,B-PER,I-PER]")


def test_other_split_names_are_mapped_by_config(tmp_path):
    dev = rows(words=[["Bonn"]], tags=[["B-LOC"]])
    hub = write_pushed(
        tmp_path / "hub", {"train": rows(), "dev": dev, "test": rows()}, tag_features(NER_LABELS)
    )
    _, splits = load(f"hub_name={hub}", "split_names.validation=dev")
    assert splits["validation"]["tokens"] == [["Bonn"]] and len(splits["train"]) == 4
    _, splits = load(f"hub_name={hub}", "split_names.validation=dev", "split_names.test=null")
    assert set(splits) == {"train", "validation"}
    with pytest.raises(
        DataFormatError,
        match=re.escape(
            f"{hub}: no split 'training' (data.split_names.train); its splits are train, test, "
            "dev. Set data.split_names.train=NAME"
        ),
    ):
        load(f"hub_name={hub}", "split_names.train=training")


def test_a_dataset_without_validation_split_holds_out_a_seeded_share_of_train(tmp_path, caplog):
    many = rows(words=[[f"w{i}"] for i in range(40)], tags=[["O"]] * 40)
    hub = write_pushed(
        tmp_path / "hub", {"train": many, "test": rows(WORDS[1:2], [["O", "O"]])}, tag_features()
    )
    with caplog.at_level(logging.INFO, logger="bert_pos.data.sources"):
        _, splits = load(f"hub_name={hub}", "validation_fraction=0.25")
    assert list(splits) == ["train", "validation", "test"]
    held = [int(words[0][1:]) for words in splits["validation"]["tokens"]]  # row numbers
    kept = [int(words[0][1:]) for words in splits["train"]["tokens"]]
    assert len(held) == 10 and sorted(held + kept) == list(range(40))
    assert held == sorted(held) and kept == sorted(kept)  # both keep the dataset's order
    assert "no validation split (its splits: train, test)" in caplog.text
    assert (
        "10 of the 40 train sentences held out (data.validation_fraction=0.25, "
        "data.validation_seed=0)" in caplog.text
    )
    _, again = load(f"hub_name={hub}", "validation_fraction=0.25")
    _, other = load(f"hub_name={hub}", "validation_fraction=0.25", "validation_seed=1")
    assert list(again["validation"]["tokens"]) == list(splits["validation"]["tokens"])
    assert list(other["validation"]["tokens"]) != list(splits["validation"]["tokens"])


def test_held_out_rows_are_whole_documents_where_documents_are_known():
    documents = [0, 0, 0, 1, 1, 2, 3, 3, 3, 3]
    held = held_out_rows(documents, 0.5, seed=0)
    held_documents = {documents[row] for row in held}
    assert len(held_documents) == 2  # half of the 4 documents, each one whole, in order
    assert held == [row for row, document in enumerate(documents) if document in held_documents]
    assert held_out_rows(documents, 0.5, seed=0) == held  # the seed decides
    assert len(held_out_rows([-1] * 10, 0.2, seed=0)) == 2  # unknown documents: sentences
    assert len(held_out_rows([-1] * 3, 0.01, seed=0)) == 1  # at least one
    with pytest.raises(DataFormatError, match="too few to hold out"):
        held_out_rows([-1], 0.5, seed=0)


def test_documents_from_a_document_column_or_from_docstart_rows(tmp_path):
    features = Features({**tag_features(), "doc": Value("string")})
    with_ids = rows(doc=["a", "a", "b", "a"])  # a document is a run of equal ids
    hub = write_pushed(tmp_path / "ids", {"train": with_ids, "validation": with_ids}, features)
    _, splits = load(f"hub_name={hub}", "document_column=doc")
    assert splits["train"]["document_id"] == [0, 0, 1, 2]
    docstart = rows(
        words=[["-DOCSTART-"], *WORDS[:2], ["-DOCSTART-"], *WORDS[2:]],
        tags=[["O"], *NER[:2], ["O"], *NER[2:]],
    )
    hub = write_pushed(
        tmp_path / "docstart", {"train": docstart, "validation": docstart}, tag_features()
    )
    _, splits = load(f"hub_name={hub}")
    assert splits["train"]["tokens"] == WORDS and splits["train"]["document_id"] == [0, 0, 1, 1]


def test_a_missing_column_names_the_column_the_dataset_and_the_key(tmp_path):
    hub = write_pushed(tmp_path / "hub", {"train": rows(), "validation": rows()}, tag_features())
    for key, value, column in [
        ("tags_column", "labels", "labels"),
        ("tokens_column", "words", "words"),
        ("document_column", "doc", "doc"),
    ]:
        with pytest.raises(DataFormatError) as err:
            load(f"hub_name={hub}", f"{key}={value}")
        assert str(err.value).startswith(
            f"{hub} train: no column {column!r} (data.{key}); the dataset's columns are tokens, "
            f"ner_tags. Set data.{key} to the one that holds the "
        )
    with pytest.raises(DataFormatError, match=re.escape("no column 'pos_tags' (data.tags_column)")):
        load(f"hub_name={hub}", "task=pos")  # {task}_tags
    ids = write_pushed(
        tmp_path / "ids", {"train": rows(names=NER_LABELS)}, tag_features(NER_LABELS)
    )
    with pytest.raises(
        DataFormatError,
        match=re.escape(
            f"{ids} train: column 'ner_tags' (data.tokens_column) holds List(ClassLabel("
        ),
    ):
        load(f"hub_name={ids}", "tokens_column=ner_tags")


def test_an_id_outside_the_class_label_names_split_and_row(tmp_path):
    bad = rows(names=NER_LABELS)
    bad["ner_tags"][2] = [5, -1]  # -1: the ClassLabel's "no label"
    hub = write_pushed(
        tmp_path / "hub",
        {"train": rows(names=NER_LABELS), "validation": bad},
        tag_features(NER_LABELS),
    )
    with pytest.raises(
        DataFormatError,
        match=re.escape(
            f"{hub} validation row 2, word 1: ner_tags id -1 is outside the ner_tags ClassLabel "
            "range 0..8"
        ),
    ):
        load(f"hub_name={hub}")


def test_integer_tags_without_a_class_label_need_data_labels(tmp_path):
    hub = write_pushed(
        tmp_path / "hub",
        {s: rows(names=NER_LABELS) for s in ("train", "test")},
        tag_features(dtype="int64"),
    )
    with pytest.raises(
        DataFormatError,
        match=re.escape(
            f"{hub} train: column 'ner_tags' holds integer ids without label names (it is no "
            "ClassLabel); set data.labels to the label names in id order"
        ),
    ):
        load(f"hub_name={hub}")
    label_names, splits = load(f"hub_name={hub}", f"labels=[{','.join(NER_LABELS)}]")
    assert label_names == NER_LABELS and names_of(splits["test"], NER_LABELS) == NER


def test_data_labels_must_agree_with_a_class_label(tmp_path):
    hub = write_pushed(
        tmp_path / "hub", {"train": rows(names=NER_LABELS)}, tag_features(NER_LABELS)
    )
    with pytest.raises(DataFormatError, match="differ from the expected list"):
        load(f"hub_name={hub}", f"labels=[{','.join(sorted(NER_LABELS))}]")


def test_data_labels_set_the_ids_of_conll_files_too(tmp_path):
    (tmp_path / "train.txt").write_text(CONLL)
    order = ["O", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    label_names, splits = load(
        f"dir={tmp_path}",
        "validation_file=train.txt",
        "test_file=null",
        f"labels=[{','.join(order)}]",
    )
    assert label_names == order and splits["train"]["tags"][0] == [3, 0, 1]


def test_a_bioes_class_label_trains_as_iob2(tmp_path):
    names = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "S-LOC"]
    bioes = rows(
        words=[["Peter", "Blackburn", "in", "Bonn"]],
        tags=[["B-PER", "E-PER", "O", "S-LOC"]],
        names=names,
    )
    hub = write_pushed(tmp_path / "hub", {"train": bioes, "validation": bioes}, tag_features(names))
    label_names, splits = load(f"hub_name={hub}", "scheme=bioes")
    assert label_names == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert names_of(splits["train"], label_names) == [["B-PER", "I-PER", "O", "B-LOC"]]


def test_hub_config_is_a_folder_in_the_parquet_export_and_a_config_name_elsewhere(tmp_path):
    export = tmp_path / "export"
    for language, words in [("es", [["Madrid"]]), ("nl", [["Amsterdam"]])]:
        write_parquet_export(
            export,
            language,
            {s: rows(words, [["B-LOC"]], NER_LABELS) for s in ("train", "validation")},
            tag_features(NER_LABELS),
        )
    _, splits = load(f"hub_name={export}", "hub_config=nl")  # default revision: the export
    assert splits["train"]["tokens"] == [["Amsterdam"]]
    # a repository whose card names its configs, as push_to_hub(config_name=...) writes it
    pushed = tmp_path / "pushed"
    card = ["---", "configs:"]
    for language, words in [("es", [["Madrid"]]), ("nl", [["Amsterdam"]])]:
        card += [f"- config_name: {language}", "  data_files:"]
        for split in ("train", "validation"):
            path = pushed / language / f"{split}-00000-of-00001.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            Dataset.from_dict(
                rows(words, [["B-LOC"]], NER_LABELS), features=tag_features(NER_LABELS)
            ).to_parquet(str(path))
            card += [f"  - split: {split}", f"    path: {language}/{split}-*.parquet"]
    (pushed / "README.md").write_text("\n".join(card + ["---", ""]))
    _, splits = load(f"hub_name={pushed}", "hub_config=es", "hub_revision=null")
    assert splits["validation"]["tokens"] == [["Madrid"]]


# ---------------------------------------------------------------- the presets of conf/data/

WNUT_LABELS = [
    "O",
    "B-corporation",
    "I-corporation",
    "B-creative-work",
    "I-creative-work",
    "B-group",
    "I-group",
    "B-location",
    "I-location",
    "B-person",
    "I-person",
    "B-product",
    "I-product",
]
WIKIANN_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
UPOS_LABELS = [
    "NOUN",
    "PUNCT",
    "ADP",
    "NUM",
    "SYM",
    "SCONJ",
    "ADJ",
    "PART",
    "DET",
    "CCONJ",
    "PROPN",
    "PRON",
    "X",
    "_",
    "ADV",
    "INTJ",
    "VERB",
    "AUX",
]
STRINGS = Sequence(Value("string"))

# Each preset's layout as its header describes it (from the dataset card): the export folder,
# the columns with their features, the tag column and its labels, and the split names.
PRESET_LAYOUTS = {
    "wnut17": (
        "wnut_17",
        {
            "id": Value("string"),
            "tokens": STRINGS,
            "ner_tags": Sequence(ClassLabel(names=WNUT_LABELS)),
        },
        "ner_tags",
    ),
    "wikiann": (
        "en",
        {
            "tokens": STRINGS,
            "ner_tags": Sequence(ClassLabel(names=WIKIANN_LABELS)),
            "langs": STRINGS,
            "spans": STRINGS,
        },
        "ner_tags",
    ),
    "ud_en_ewt": (
        "en_ewt",
        {
            "idx": Value("string"),
            "text": Value("string"),
            "tokens": STRINGS,
            "lemmas": STRINGS,
            "upos": Sequence(ClassLabel(names=UPOS_LABELS)),
            **{c: STRINGS for c in ("xpos", "feats", "head", "deprel", "deps", "misc")},
        },
        "upos",
    ),
    "ncbi_disease": (
        "ncbi_disease",
        {
            "id": Value("string"),
            "tokens": STRINGS,
            "ner_tags": Sequence(ClassLabel(names=["O", "B-Disease", "I-Disease"])),
        },
        "ner_tags",
    ),
    "conll2002": (
        "es",
        {
            "id": Value("string"),
            "tokens": STRINGS,
            "pos_tags": Sequence(ClassLabel(names=["AQ", "DA", "Fp", "NC", "NP"])),
            "ner_tags": Sequence(ClassLabel(names=NER_LABELS)),
        },
        "ner_tags",
    ),
}
PRESETS = sorted(
    path.stem
    for path in Path(CONF_DIR, "data").glob("*.yaml")
    # the hub presets (ud: local CoNLL-U files; spans: local JSON lines, test_span_head.py)
    if path.stem not in ("conll2003", "demo", "ud", "spans")
)


def test_every_preset_has_a_layout_here():
    assert PRESETS == sorted(PRESET_LAYOUTS)


def preset_rows(features: Features, tags_column: str, count: int) -> dict:
    """`count` rows that fill every column, with valid tags: `B-X I-X O` for span labels."""
    names = features[tags_column].feature.names
    spans = [name for name in names if name.startswith("B-")]
    columns = {}
    for i in range(count):
        if spans:
            tags = [spans[i % len(spans)], "I-" + spans[i % len(spans)][2:], "O"]
        else:
            tags = [names[i % len(names)], names[(i + 1) % len(names)], names[0]]
        row = {"tokens": [f"w{i}", "x", "."], tags_column: [names.index(t) for t in tags]}
        for column, feature in features.items():
            if column not in row:
                row[column] = ["a", "b", "c"] if isinstance(feature, Sequence) else str(i)
                if isinstance(feature, Sequence) and isinstance(feature.feature, ClassLabel):
                    row[column] = [0, 0, 0]
        for column, value in row.items():
            columns.setdefault(column, []).append(value)
    return columns


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_composes_passes_checks_and_states_only_what_differs(preset):
    check_config(compose_config([f"data={preset}"]))
    defaults = OmegaConf.load(Path(CONF_DIR, "data_common.yaml"))
    own = OmegaConf.load(Path(CONF_DIR, "data", f"{preset}.yaml"))
    assert list(own.defaults) == ["/data_common@_here_", "_self_"]
    assert [key for key in own if key != "defaults" and own[key] == defaults[key]] == []
    header = Path(CONF_DIR, "data", f"{preset}.yaml").read_text()
    assert f"python -m bert_pos.train data={preset}" in header
    assert "not checked against a download" in header.replace("\n# ", " ")


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_loads_a_local_copy_of_its_layout(tmp_path, preset):
    folder, columns, tags_column = PRESET_LAYOUTS[preset]
    features = Features(columns)
    splits_rows = {
        split: preset_rows(features, tags_column, 4) for split in ("train", "validation", "test")
    }
    hub = write_parquet_export(tmp_path / preset, folder, splits_rows, features)
    data = compose_config([f"data={preset}", f"data.hub_name={hub}"]).data
    label_names = resolve_label_names(data)
    assert label_names == features[tags_column].feature.names
    splits = load_splits(data, label_names)
    assert set(splits) == {"train", "validation", "test"}
    assert splits["test"]["tags"] == splits_rows["test"][tags_column]
    assert splits["train"]["tokens"] == splits_rows["train"]["tokens"]


# ---------------------------------------------------------------- saved datasets and JSON lines


def test_a_saved_dataset_dict_reads_its_splits_by_name(tmp_path):
    saved = DatasetDict(
        {
            "train": Dataset.from_dict(rows(names=NER_LABELS), features=tag_features(NER_LABELS)),
            "dev": Dataset.from_dict(rows(names=NER_LABELS), features=tag_features(NER_LABELS)),
        }
    )
    saved.save_to_disk(str(tmp_path / "saved"))
    assert DataSource.of(data_config(f"dir={tmp_path / 'saved'}")).kind == "saved"
    label_names, splits = load(f"dir={tmp_path / 'saved'}", "split_names.validation=dev")
    assert label_names == NER_LABELS and set(splits) == {"train", "validation"}
    assert names_of(splits["validation"], label_names) == NER


def test_split_folders_saved_by_datasets_and_json_lines_mix_in_one_folder(tmp_path):
    for split in ("train", "validation"):
        Dataset.from_dict(rows(), features=tag_features()).save_to_disk(str(tmp_path / split))
    (tmp_path / "test.jsonl").write_text(
        "".join(
            f'{{"tokens": {w!r}, "ner_tags": {t!r}}}\n'.replace("'", '"')
            for w, t in zip(WORDS, NER)
        )
    )
    label_names, splits = load(
        f"dir={tmp_path}", "train_file=train", "validation_file=validation", "test_file=test.jsonl"
    )
    assert {split: names_of(dataset, label_names) for split, dataset in splits.items()} == {
        "train": NER,
        "validation": NER,
        "test": NER,
    }
    assert splits["test"]["line"] == [1, 2, 3, 4] and splits["train"]["line"] == [-1] * 4


def test_the_format_follows_the_name_unless_data_format_says(tmp_path):
    (tmp_path / "saved").mkdir()
    assert split_format(tmp_path / "train.jsonl", None) == "jsonl"
    assert split_format(tmp_path / "train.json", None) == "jsonl"
    assert split_format(tmp_path / "saved", None) == "saved"
    for name in ("train.txt", "train.conll", "eng.train"):
        assert split_format(tmp_path / name, None) == "conll"
    assert split_format(tmp_path / "train.txt", "jsonl") == "jsonl"
    assert DataSource.of(data_config()).kind == "hub"
    assert DataSource.of(data_config("demo_corpus=true")).kind == "demo"
    files = DataSource.of(data_config(f"dir={tmp_path}", "train_file=train.jsonl"))
    assert files.kind == "files" and files.files["train"] == (tmp_path / "train.jsonl", "jsonl")
    assert files.files["validation"] == (tmp_path / "validation.txt", "conll")
    assert files.reads_conll_files and not files.first_split_is_conll


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["data.task=srl", "data.dir=/data"],
            "data.task='srl' is not a CoNLL-2003 task (pos, chunk, ner): set one, or data.label_column",
        ),
        (
            ["data.format=xml"],
            "data.format='xml': expected null or one of conll, conllu, jsonl, saved",
        ),
        (
            ["data.split_names.train=null"],
            "data.split_names={'train': None, 'validation': "
            "'validation', 'test': 'test'}: expected",
        ),
        (["data.validation_fraction=0"], "data.validation_fraction=0.0: must be within (0, 1)"),
        (["data.labels=[O,O]"], "data.labels=['O', 'O']: expected distinct label names"),
    ],
)
def test_data_checks_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_config(compose_config(overrides))


@pytest.mark.parametrize(
    "overrides",
    [
        ["data.task=upos", "data.tags_column=upos"],  # labels from the hub dataset
        [
            "data.task=disease",
            "data.dir={dir}",
            "data.train_file=train.jsonl",
            "data.validation_file=dev.jsonl",
            "data.test_file=null",
        ],  # JSON lines
        ["data.task=srl", "data.dir={dir}", "data.label_column=5"],
    ],  # CoNLL files with the column
)
def test_other_tasks_need_a_label_column_only_for_conll_files(overrides, tmp_path):
    check_config(compose_config([override.format(dir=tmp_path) for override in overrides]))


# ---------------------------------------------------------------- the hub-layout copy script


def make_hub_copy_module():
    spec = importlib.util.spec_from_file_location(
        "make_hub_copy", ROOT / "experiments" / "make_hub_copy.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_same_sentences_and_ids(conll_dir: Path, copy: str, task: str, label_names: list[str]):
    hub_names, hub = load(f"hub_name={copy}", f"task={task}")
    files_names, files = load(f"dir={conll_dir}", f"task={task}")
    assert hub_names == files_names == label_names and set(hub) == set(files)
    for split in files:
        assert hub[split]["tokens"] == files[split]["tokens"], split
        assert hub[split]["tags"] == files[split]["tags"], split


CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC

-DOCSTART- -X- -X- O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
"""


def test_the_hub_layout_copy_loads_as_the_column_files(tmp_path):
    conll_dir = tmp_path / "conll"
    conll_dir.mkdir()
    for name in ("train.txt", "validation.txt", "test.txt"):
        (conll_dir / name).write_text(CONLL)
    copy = str(make_hub_copy_module().write_hub_copy(conll_dir, tmp_path / "copy"))
    assert (tmp_path / "copy" / "conll2003" / "train" / "0000.parquet").is_file()
    for task, labels in [("ner", NER_LABELS), ("pos", POS_LABELS), ("chunk", CHUNK_LABELS)]:
        assert_same_sentences_and_ids(conll_dir, copy, task, labels)


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.skipif(not (SHARED_CONLL / "train.txt").is_file(), reason=NO_CONLL)
def test_the_hub_layout_copy_of_conll2003_loads_as_its_files(tmp_path):
    copy = str(make_hub_copy_module().write_hub_copy(SHARED_CONLL, tmp_path / "copy"))
    for task, labels in [("ner", NER_LABELS), ("pos", POS_LABELS), ("chunk", CHUNK_LABELS)]:
        assert_same_sentences_and_ids(SHARED_CONLL, copy, task, labels)


def iob2_to_bioes(tags: list[str]) -> list[str]:
    """IOB2 to BIOES: single-word entities S-, last words E- (the inverse of the reader's)."""
    converted = []
    for i, tag in enumerate(tags):
        following = tags[i + 1] if i + 1 < len(tags) else "O"
        continues = following == f"I-{tag[2:]}"
        if tag.startswith("B-"):
            converted.append(tag if continues else f"S-{tag[2:]}")
        elif tag.startswith("I-"):
            converted.append(tag if continues else f"E-{tag[2:]}")
        else:
            converted.append(tag)
    return converted


@pytest.mark.slow
def test_a_bioes_corpus_trains_exactly_like_its_iob2_original(tmp_path):
    from bert_pos.data.demo_corpus import write_demo_corpus
    from bert_pos.train import train
    from tests.helpers import TINY_DEMO_OVERRIDES

    iob2 = write_demo_corpus(tmp_path / "iob2", {"train": 300, "validation": 60, "test": 60}, 0)
    bioes = tmp_path / "bioes"
    bioes.mkdir()
    converted = 0
    for path in Path(iob2).glob("*.txt"):
        lines = path.read_text().split("\n")
        blocks, out = [], []
        for line in lines + [""]:
            if line.strip() and not line.startswith("-DOCSTART-"):
                blocks.append(line.split())
                continue
            if blocks:
                tags = iob2_to_bioes([fields[-1] for fields in blocks])
                converted += sum(t[:2] in ("S-", "E-") for t in tags)
                out += [" ".join(fields[:-1] + [tag]) for fields, tag in zip(blocks, tags)]
                blocks = []
            out.append(line)
        (bioes / path.name).write_text("\n".join(out[:-1]))
    assert converted > 100  # the files really differ
    runs = {}
    for scheme, folder in (("iob2", iob2), ("bioes", bioes)):
        overrides = TINY_DEMO_OVERRIDES + [
            "epochs=1",
            "data.demo_corpus=false",
            f"data.dir={folder}",
            f"data.scheme={scheme}",
        ]
        runs[scheme] = train(compose_config(overrides), tmp_path / f"run_{scheme}")
    for key in ("epochs", "best", "test"):
        assert runs["bioes"][key] == runs["iob2"][key]


def test_hub_ud_trains_the_syntactic_words_of_a_multiword_token(tmp_path, caplog):
    """The hub's universal_dependencies rows hold a multiword token's surface form with upos
    `_` before its syntactic words ("don't" then "do", "n't"): the surface row is skipped, as
    CoNLL-U's range lines are, and counted in the log."""
    folder, columns, _ = PRESET_LAYOUTS["ud_en_ewt"]
    features = Features(columns)
    upos = [UPOS_LABELS.index(t) for t in ["PRON", "_", "AUX", "PART", "VERB"]]
    row = {column: [["a"] * 5] for column in columns if isinstance(columns[column], Sequence)}
    row.update({"idx": ["1"], "text": ["I don't go"], "upos": [upos]})
    row.update(
        {"tokens": [["I", "don't", "do", "n't", "go"]], "xpos": [["PRP", "_", "VBP", "RB", "VB"]]}
    )
    hub = write_parquet_export(
        tmp_path / "ud", folder, {s: row for s in ("train", "validation", "test")}, features
    )
    for task, column, expected in [
        ("upos", "upos", ["PRON", "AUX", "PART", "VERB"]),
        ("xpos", "xpos", ["PRP", "VBP", "RB", "VB"]),
    ]:
        data = compose_config(
            [
                "data=ud_en_ewt",
                f"data.hub_name={hub}",
                f"data.task={task}",
                f"data.tags_column={column}",
            ]
        ).data
        label_names = resolve_label_names(data)
        with caplog.at_level(logging.INFO):
            splits = load_splits(data, label_names)
        assert splits["test"]["tokens"] == [["I", "do", "n't", "go"]]
        assert [label_names[t] for t in splits["test"]["tags"][0]] == expected
    assert "1 multiword-token surface rows skipped (`_` in upos)" in caplog.text
