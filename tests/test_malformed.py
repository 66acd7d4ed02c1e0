"""Malformed inputs through the real loading path (`resolve_label_names` + `load_splits` with
the composed config): each file of tests/data/malformed/ (written once by make_corpus.py)
either loads to the right sentences or stops with a `ConllFormatError` that reads
`<file>:<line>: what is wrong; expected what`. Never a traceback, never a silent skip.

Works, because the format allows it and nothing has to be guessed:
  crlf.txt (CRLF endings), tabs_and_spaces.txt (fields split on spaces and tabs), bom.txt
  (the BOM is dropped), concatenated_bom.txt (so is one at a later line's start),
  trailing_whitespace.txt, whitespace_line.txt (a line of spaces and tabs is a sentence break),
  no_final_newline.txt, docstart_fields.txt (-DOCSTART- lines of any field count),
  nbsp_in_word.txt, unicode_spaces_in_words.txt and zero_width_in_word.txt (whitespace other
  than spaces and tabs, and zero-width characters, are part of a word), long_sentence.txt (600 words read; fitting them into the model is
  tokenize_splits' concern), long_word.txt (a 300-character word is one word),
  iob1.txt with data.scheme=iob1 (converted to IOB2), two_columns.txt with
  data.label_column=1, wrong_names/ with data.validation_file=dev.txt, I- tags in a
  column that is not a span label set (POS), bioes.txt and bilou.txt with data.scheme=bioes
  (the same sentences and ids as good.txt), good.jsonl (tag names) and ids.jsonl (integer ids,
  with data.labels), unseen_labels/ with a label set read from train: its test split's I-ORG
  (train has ORG only as B-ORG) has an id, its validation split's DATE type (absent from train)
  is kept as gold the model cannot predict, with a warning.
Errors, because every guess could train on wrong labels:
  wrong_columns.txt and two_columns.txt (field count), unknown_label.txt, i_after_o.txt,
  i_at_sentence_start.txt, i_after_other_type.txt and chunk_i_at_sentence_start.txt (I- tags
  that IOB2 forbids), latin1.txt and cp1252_quotes.txt (not UTF-8), nbsp_line.txt and
  nbsp_separated.txt (a no-break space separates no fields), unseen_labels/ with the fixed
  CoNLL-2003 list (DATE) or a data.labels list train does not fit, empty.txt,
  docstart_only.txt (no sentences), a
  missing file or folder, wrong_names/ with the default names, iob1.txt read as IOB2 (the
  message suggests data.scheme=iob1), extra_type.txt and pos_in_ner_column.txt (a tag set
  other than the config's), bioes_unclosed.txt and bioes_e_after_o.txt (BIOES that leaves an
  entity open or closes none), bioes.txt read as IOB2 (the message suggests data.scheme=bioes),
  and JSON lines: bad_json.jsonl, array.json, missing_field.jsonl, length_mismatch.jsonl,
  i_after_o.jsonl, ids.jsonl without data.labels.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from bert_pos.data.conll import ConllFormatError
from bert_pos.data.labels import IGNORE_INDEX, NER_LABELS
from bert_pos.data.sources import gold_labels, load_splits, resolve_label_names
from bert_pos.data.tags import DataFormatError
from tests.helpers import data_config

MALFORMED = Path(__file__).parent / "data" / "malformed"
ROOT = Path(__file__).resolve().parents[1]

GOOD_WORDS = [
    ["EU", "rejects", "German", "call", "."],
    ["Peter", "Blackburn"],
    ["BRUSSELS", "1996-08-22"],
]
GOOD_NER = [["B-ORG", "O", "B-MISC", "O", "O"], ["B-PER", "I-PER"], ["B-LOC", "O"]]
GOOD_CHUNK = [["B-NP", "B-VP", "B-NP", "I-NP", "O"], ["B-NP", "I-NP"], ["B-NP", "B-NP"]]
IOB2_HINT = (
    "is not valid IOB2; expected B-{0} to open an entity, I-{0} only after B-{0} or I-{0}. "
    "If the file is IOB1 (as the original eng.* files are), set data.scheme=iob1 to convert it"
)
NER_SET = f"expected one of the 9 labels {' '.join(NER_LABELS)}"


def load(directory: Path, *overrides: str, train_file: str | None = None):
    """The splits of `directory` as training loads them; with `train_file`, that file alone."""
    if train_file is not None:
        overrides = (
            f"train_file={train_file}",
            "validation_file=null",
            "test_file=null",
            *overrides,
        )
    data = data_config(f"dir={directory}", *overrides)
    label_names = resolve_label_names(data)
    splits = load_splits(data, label_names)
    tags = {split: gold_labels(dataset, label_names) for split, dataset in splits.items()}
    return splits, tags


def load_error(name: str, *overrides: str, error: type[Exception] = ConllFormatError) -> str:
    with pytest.raises(error) as err:
        load(MALFORMED, *overrides, train_file=name)
    return str(err.value)


# ---------------------------------------------------------------- inputs that load


@pytest.mark.parametrize(
    "name",
    [
        "good.txt",
        "crlf.txt",
        "tabs_and_spaces.txt",
        "bom.txt",
        "trailing_whitespace.txt",
        "whitespace_line.txt",
        "no_final_newline.txt",
    ],
)
def test_layout_variations_read_as_the_clean_file(name):
    splits, tags = load(MALFORMED, train_file=name)
    assert splits["train"]["tokens"] == GOOD_WORDS
    assert tags["train"] == GOOD_NER
    assert splits["train"]["line"] == [3, 9, 12]
    _, chunk_tags = load(MALFORMED, "task=chunk", train_file=name)
    assert chunk_tags["train"] == GOOD_CHUNK  # no stray "\r" or space in the middle column


@pytest.mark.parametrize(
    "name, words",
    [
        ("nbsp_in_word.txt", {(2, 0): "New\u00a0York"}),
        (
            "unicode_spaces_in_words.txt",
            {(0, 3): "call\u3000centre", (2, 1): "1\u202f996\u2009000"},
        ),
        ("zero_width_in_word.txt", {(0, 4): "\u200b", (1, 1): "Black\u200bburn"}),
    ],
)
def test_whitespace_other_than_spaces_and_tabs_stays_in_its_word(name, words):
    """str.split() would cut these words in two, and the field count error would then blame
    the wrong thing; conlleval splits on spaces and tabs only, and so does the reader."""
    splits, tags = load(MALFORMED, train_file=name)
    expected = [list(sentence) for sentence in GOOD_WORDS]
    for (sentence, word), text in words.items():
        expected[sentence][word] = text
    assert splits["train"]["tokens"] == expected
    assert tags["train"] == GOOD_NER and splits["train"]["line"] == [3, 9, 12]
    _, chunk_tags = load(MALFORMED, "task=chunk", train_file=name)
    assert chunk_tags["train"] == GOOD_CHUNK


@pytest.mark.parametrize("name", ["docstart_fields.txt", "concatenated_bom.txt"])
def test_two_documents_read_whole_whatever_their_docstart_lines(name):
    """-DOCSTART- lines may have any number of fields (some copies write the bare word); a BOM
    at the start of a later line (two files with BOMs, concatenated) does not turn its
    -DOCSTART- into a word."""
    splits, tags = load(MALFORMED, train_file=name)
    assert splits["train"]["tokens"] == GOOD_WORDS * 2 and tags["train"] == GOOD_NER * 2
    assert splits["train"]["document_id"] == [0, 0, 0, 1, 1, 1]


def test_label_sets_from_train_have_both_forms_of_each_type_and_score_unseen_types_as_gold(
    caplog,
):
    folder = MALFORMED / "unseen_labels"
    splits, tags = load(folder, "task=entities", "label_column=3")
    label_names = resolve_label_names(
        data_config(f"dir={folder}", "task=entities", "label_column=3")
    )
    # train has ORG, MISC and LOC only as B-: their I- forms have ids, as test's I-ORG needs
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
    assert tags["test"][-1] == ["B-ORG", "I-ORG"]
    assert splits["test"]["tags"][-1] == [label_names.index("B-ORG"), label_names.index("I-ORG")]
    # DATE never occurs in train: the model cannot predict it, and validation keeps it as gold
    assert tags["validation"][-1] == ["B-ORG", "O", "O", "B-DATE", "I-DATE"]
    assert splits["validation"]["tags"][-1][3:] == [IGNORE_INDEX, IGNORE_INDEX]
    validation = folder / "validation.txt"
    for label in ("B-DATE", "I-DATE"):
        assert (
            f"validation ({validation}): 1 word(s) have the gold label {label!r}, which is "
            "not among the 9 labels the model predicts"
        ) in caplog.text
    assert "test (" not in caplog.text


def test_unseen_labels_stop_where_the_label_list_is_fixed():
    folder = MALFORMED / "unseen_labels"
    # the CoNLL-2003 task's list is fixed, as the hub dataset's: DATE is an error in any split
    with pytest.raises(ConllFormatError) as err:
        load(folder)
    assert str(err.value) == (
        f"{folder / 'validation.txt'}:18: label 'B-DATE' (column 3, "
        f"0-based) is not in the label set; {NER_SET}"
    )
    # a data.labels list: train must fit it, file:line where it does not
    with pytest.raises(ConllFormatError) as err:
        load(folder, "task=entities", "label_column=3", "labels=[O,B-PER,I-PER,B-LOC,I-LOC]")
    assert str(err.value).startswith(
        f"{folder / 'train.txt'}:3: label 'B-ORG' (column 3, 0-based) is not in the label set"
    )


def test_sentence_of_600_words_is_read_whole():
    splits, tags = load(MALFORMED, train_file="long_sentence.txt")
    (words,) = splits["train"]["tokens"]
    assert len(words) == 600 and words[0] == "w000" and words[-1] == "w599"
    assert tags["train"] == [["O"] * 600]


def test_word_of_300_characters_is_one_word():
    splits, tags = load(MALFORMED, train_file="long_word.txt")
    (words,) = splits["train"]["tokens"]
    assert len(words) == 3 and len(words[1]) == 300 and words[1].startswith("Donau")
    assert tags["train"] == [["O", "B-ORG", "O"]]


@pytest.mark.parametrize("task, expected", [("ner", GOOD_NER), ("chunk", GOOD_CHUNK)])
def test_iob1_file_with_scheme_iob1_is_converted_to_iob2(task, expected):
    splits, tags = load(MALFORMED, f"task={task}", "scheme=iob1", train_file="iob1.txt")
    assert splits["train"]["tokens"] == GOOD_WORDS
    assert tags["train"] == expected


def test_iob1_file_with_a_label_set_read_from_the_file():
    _, tags = load(
        MALFORMED, "task=entities", "label_column=3", "scheme=iob1", train_file="iob1.txt"
    )
    assert tags["train"] == GOOD_NER


def test_two_column_file_with_its_label_column():
    _, tags = load(MALFORMED, "label_column=1", train_file="two_columns.txt")
    assert tags["train"] == GOOD_NER


def test_iob2_check_applies_to_span_columns_only():
    # the chunk column's I-NP opens a sentence, but the NER column is valid IOB2
    _, tags = load(MALFORMED, "task=ner", train_file="chunk_i_at_sentence_start.txt")
    assert tags["train"] == GOOD_NER
    # POS tags are not spans: nothing to check
    _, tags = load(MALFORMED, "task=pos", train_file="i_after_o.txt")
    assert tags["train"][0] == ["NNP", "VBZ", "JJ", "NN", "."]


def test_folder_with_other_file_names_loads_once_they_are_set():
    splits, _ = load(MALFORMED / "wrong_names", "validation_file=dev.txt")
    assert {split: len(dataset) for split, dataset in splits.items()} == {
        "train": 3,
        "validation": 3,
        "test": 3,
    }


@pytest.mark.parametrize("name", ["bioes.txt", "bilou.txt"])
@pytest.mark.parametrize(
    "overrides", [["task=ner"], ["task=chunk"], ["task=entities", "label_column=3"]]
)
def test_bioes_file_loads_as_its_iob2_conversion(name, overrides):
    """The same sentences, label ids, documents and lines as the IOB2 file, whether the label
    list is the task's or read from the file."""
    converted, _ = load(MALFORMED, *overrides, "scheme=bioes", train_file=name)
    iob2, _ = load(MALFORMED, *overrides, train_file="good.txt")
    assert converted["train"].to_dict() == iob2["train"].to_dict()


def test_json_lines_with_tag_names_or_with_ids_and_their_names():
    splits, tags = load(MALFORMED, train_file="good.jsonl")
    assert splits["train"]["tokens"] == GOOD_WORDS and tags["train"] == GOOD_NER
    assert splits["train"]["line"] == [1, 2, 3] and splits["train"]["document_id"] == [-1] * 3
    _, tags = load(MALFORMED, f"labels=[{','.join(NER_LABELS)}]", train_file="ids.jsonl")
    assert tags["train"] == GOOD_NER


# ---------------------------------------------------------------- inputs that stop


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        (
            "wrong_columns.txt",
            [],
            ":10: 3 fields in 'Blackburn NNP I-PER'; expected 4 fields like the first token line "
            "(line 3)",
        ),
        (
            "two_columns.txt",
            [],
            ":1: 2 fields in 'EU B-ORG'; expected at least 4, since the word column is 0 and the "
            "label column is 3 (0-based; set data.word_column/data.label_column)",
        ),
        (
            "unknown_label.txt",
            [],
            f":9: label 'B-PERSON' (column 3, 0-based) is not in the label set; {NER_SET}",
        ),
        ("i_after_o.txt", [], ":5: tag 'I-MISC' after 'O' " + IOB2_HINT.format("MISC")),
        (
            "i_at_sentence_start.txt",
            [],
            ":9: tag 'I-PER' at the start of a sentence " + IOB2_HINT.format("PER"),
        ),
        ("i_after_other_type.txt", [], ":10: tag 'I-LOC' after 'B-PER' " + IOB2_HINT.format("LOC")),
        (
            "chunk_i_at_sentence_start.txt",
            ["task=chunk"],
            ":3: tag 'I-NP' at the start of a sentence " + IOB2_HINT.format("NP"),
        ),
        (
            "latin1.txt",
            [],
            r":12: bytes b'\xfc' are not UTF-8; expected a UTF-8 file (re-encode it, e.g. "
            "`iconv -f latin1 -t utf-8`)",
        ),
        (
            "cp1252_quotes.txt",
            [],
            r":7: bytes b'\x93' are not UTF-8; expected a UTF-8 file (re-encode it, e.g. "
            "`iconv -f cp1252 -t utf-8`)",
        ),
        (
            "nbsp_line.txt",
            [],
            r":11: 1 fields in '\xa0'; expected 4 fields like the first token line (line 3); "
            "fields are split on spaces and tabs only, and the line also holds U+00A0 NO-BREAK "
            "SPACE",
        ),
        (
            "nbsp_separated.txt",
            [],
            r":3: 1 fields in 'EU\xa0NNP\xa0B-NP\xa0B-ORG'; expected at least 4, since the word "
            "column is 0 and the label column is 3 (0-based; set data.word_column/"
            "data.label_column); fields are split on spaces and tabs only, and the line also "
            "holds U+00A0 NO-BREAK SPACE",
        ),
        (
            "empty.txt",
            [],
            ": no sentences found (the file is empty); expected one `word ... label` line per "
            "token, with a blank line between sentences",
        ),
        (
            "docstart_only.txt",
            [],
            ": no sentences found (only -DOCSTART- and blank lines); expected one `word ... "
            "label` line per token, with a blank line between sentences",
        ),
        ("iob1.txt", [], ":3: tag 'I-ORG' at the start of a sentence " + IOB2_HINT.format("ORG")),
        (
            "iob1.txt",
            ["task=chunk"],
            ":3: tag 'I-NP' at the start of a sentence " + IOB2_HINT.format("NP"),
        ),
        (
            "iob1.txt",
            ["task=entities", "label_column=3"],
            ":3: tag 'I-ORG' at the start of a sentence " + IOB2_HINT.format("ORG"),
        ),
        (
            "extra_type.txt",
            [],
            f":13: label 'B-DATE' (column 3, 0-based) is not in the label set; {NER_SET}",
        ),
        (
            "pos_in_ner_column.txt",
            [],
            f":1: label 'NNP' (column 3, 0-based) is not in the label set; {NER_SET}",
        ),
    ],
)
def test_malformed_file_stops_with_file_line_and_expectation(name, overrides, message):
    assert load_error(name, *overrides) == f"{MALFORMED / name}{message}"


JSONL_EXAMPLE = '{"tokens": ["Peter", "Blackburn"], "ner_tags": ["B-PER", "I-PER"]}'


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        (
            "bioes_unclosed.txt",
            ["scheme=bioes"],
            ":10: tag 'I-PER' at the end of a sentence is not valid BIOES; expected E-PER to close "
            "the PER entity (S-PER for a one-word entity)",
        ),
        (
            "bioes_e_after_o.txt",
            ["scheme=bioes"],
            ":5: tag 'E-MISC' after 'O' is not valid BIOES; expected B-MISC to open an entity "
            "(S-MISC for a one-word entity)",
        ),
        (
            "bioes.txt",
            [],
            f":3: label 'S-ORG' (column 3, 0-based) is not in the label set; {NER_SET}. If the "
            "tags are BIOES (or BILOU), set data.scheme=bioes",
        ),
        (
            "bad_json.jsonl",
            [],
            f":2: not valid JSON (Expecting ',' delimiter at column 21); expected one JSON object "
            f"per line, e.g. {JSONL_EXAMPLE}",
        ),
        (
            "array.json",
            [],
            ":1: not valid JSON (Expecting value at column 2) (a JSON array is not JSON lines: "
            f"write one object per line); expected one JSON object per line, e.g. {JSONL_EXAMPLE}",
        ),
        (
            "missing_field.jsonl",
            [],
            ":3: no 'ner_tags' field (data.tags_column); the object has tokens, tags. Set "
            "data.tags_column to the field that holds the tags",
        ),
        (
            "length_mismatch.jsonl",
            [],
            ":2: 2 words but 1 tags (ner_tags); expected one tag per word",
        ),
        ("i_after_o.jsonl", [], ":1, word 2: tag 'I-MISC' after 'O' " + IOB2_HINT.format("MISC")),
        (
            "ids.jsonl",
            [],
            ":1, word 0: tag 3 (ner_tags); expected tag names throughout, or integer ids "
            "throughout with data.labels naming them",
        ),
    ],
)
def test_bioes_and_json_lines_problems_stop_with_file_line_and_expectation(
    name, overrides, message
):
    assert load_error(name, *overrides, error=DataFormatError) == f"{MALFORMED / name}{message}"


def test_missing_file_names_the_config_keys(tmp_path):
    with pytest.raises(ConllFormatError) as err:
        load(tmp_path, train_file="train.txt")
    assert str(err.value) == (
        f"{tmp_path / 'train.txt'}: no such file (from data.dir={tmp_path} and "
        "data.train_file=train.txt); expected the train split there. The folder holds no .txt "
        "files: set data.train_file=NAME"
    )


@pytest.mark.parametrize("task", ["ner", "entities"])  # entities: labels read from the file
def test_missing_folder_names_the_config_keys(tmp_path, task):
    missing = tmp_path / "nowhere"
    with pytest.raises(ConllFormatError) as err:
        load(missing, f"task={task}", "label_column=3")
    assert str(err.value) == (
        f"{missing / 'train.txt'}: no such file (from data.dir={missing} and "
        "data.train_file=train.txt): the folder does not exist"
    )


def test_folder_with_other_file_names_lists_what_is_there():
    folder = MALFORMED / "wrong_names"
    with pytest.raises(ConllFormatError) as err:
        load(folder)
    assert str(err.value) == (
        f"{folder / 'validation.txt'}: no such file (from data.dir={folder} and "
        "data.validation_file=validation.txt); expected the validation split there. The folder "
        "holds dev.txt, test.txt, train.txt: set data.validation_file=NAME"
    )


def test_missing_test_file_can_be_left_out():
    folder = MALFORMED / "wrong_names"
    with pytest.raises(ConllFormatError) as err:
        load(folder, "validation_file=dev.txt", "test_file=testb.txt")
    assert str(err.value).endswith(
        "holds dev.txt, test.txt, train.txt: set data.test_file=NAME (or data.test_file=null: "
        "no test split)"
    )


@pytest.mark.slow
def test_training_cli_prints_the_message_without_a_traceback(tmp_path):
    overrides = [
        "+experiment=demo",
        "data.demo_corpus=false",
        f"data.dir={MALFORMED}",
        "data.train_file=iob1.txt",
        "data.validation_file=good.txt",
        "data.test_file=null",
        "data.cache_dir=null",
        f"hydra.run.dir={tmp_path}",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "bert_pos.train", *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert f"{MALFORMED / 'iob1.txt'}:3: tag 'I-ORG' at the start of a sentence" in output
    assert "data.scheme=iob1" in (tmp_path / "error.txt").read_text()
