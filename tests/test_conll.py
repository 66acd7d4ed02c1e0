"""The CoNLL reader and writer (bert_pos/data/conll.py): columns, documents, encodings, tag
schemes, and a one-line error naming the file and line for every malformed input.
"""

import pytest

from bert_pos.data.conll import ConllFormatError, read_conll, write_conll
from bert_pos.data.labels import NER_LABELS, POS_LABELS

GOOD = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O

BRUSSELS NNP B-NP B-LOC
"""


def write(tmp_path, text, name="f.txt", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def test_reads_sentences_labels_and_documents(tmp_path):
    sentences = read_conll(write(tmp_path, GOOD), label_column=3, label_names=NER_LABELS)
    assert [s.words for s in sentences] == [["EU", "rejects"], ["Peter", "Blackburn"], ["BRUSSELS"]]
    assert [s.labels for s in sentences] == [["B-ORG", "O"], ["B-PER", "I-PER"], ["B-LOC"]]
    assert [s.document_id for s in sentences] == [0, 0, 1]  # DOCSTART lines are boundaries
    assert [s.line for s in sentences] == [3, 6, 11]


def test_other_columns_and_tabs(tmp_path):
    path = write(tmp_path, GOOD.replace(" ", "\t"))
    sentences = read_conll(path, label_column=1, label_names=POS_LABELS)
    assert sentences[0].labels == ["NNP", "VBZ"]


def test_bom_and_crlf_are_accepted(tmp_path):
    path = write(tmp_path, "\ufeff" + GOOD.replace("\n", "\r\n"))
    sentences = read_conll(path, label_column=3, label_names=NER_LABELS)
    assert sentences[0].words == ["EU", "rejects"] and sentences[-1].labels == ["B-LOC"]


def test_file_without_docstart_is_one_document(tmp_path):
    path = write(tmp_path, "a NN B-NP O\n\nb NN B-NP O\n")
    assert [s.document_id for s in read_conll(path, 3, NER_LABELS)] == [0, 0]


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            GOOD.replace("Peter NNP B-NP B-PER", "Peter NNP B-PER"),
            r"f.txt:6: 3 fields in 'Peter NNP B-PER'; expected 4 fields like the first token "
            r"line \(line 3\)",
        ),
        (
            GOOD.replace("B-LOC", "B-PLACE"),
            r"f.txt:11: label 'B-PLACE' \(column 3, 0-based\) is not in the label set; expected "
            "one of the 9 labels O B-PER",
        ),
        ("EU B-ORG\n", "f.txt:1: 2 fields in 'EU B-ORG'; expected at least 4"),
        ("", r"f.txt: no sentences found \(the file is empty\); expected one"),
        ("-DOCSTART- -X- -X- O\n\n", r"f.txt: no sentences found \(only -DOCSTART-"),
        ("EU NNP I-NP I-ORG\n", "f.txt:1: tag 'I-ORG' at the start of a sentence is not valid"),
    ],
)
def test_malformed_input_names_file_and_line(tmp_path, text, expected):
    with pytest.raises(ConllFormatError, match=expected):
        read_conll(write(tmp_path, text), label_column=3, label_names=NER_LABELS)


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = write(tmp_path, GOOD.encode() + b"Caf\xe9 NNP B-NP O\n")
    with pytest.raises(ConllFormatError, match=r"f.txt:12: bytes b'\\xe9' are not UTF-8"):
        read_conll(path, 3, NER_LABELS)


def test_missing_file(tmp_path):
    with pytest.raises(ConllFormatError, match="nope.txt: no such file"):
        read_conll(tmp_path / "nope.txt", 3, NER_LABELS)


def test_write_then_read_round_trip(tmp_path):
    documents = [
        [[("EU", "NNP", "B-NP", "B-ORG"), ("rejects", "VBZ", "B-VP", "O")]],
        [[("Peter", "NNP", "B-NP", "B-PER")]],
    ]
    write_conll(tmp_path / "out.txt", documents)
    sentences = read_conll(tmp_path / "out.txt", 3, NER_LABELS)
    assert [s.words for s in sentences] == [["EU", "rejects"], ["Peter"]]
    assert [s.document_id for s in sentences] == [0, 1]


def test_iob1_is_converted_as_read_and_checked_after_conversion(tmp_path):
    path = write(tmp_path, "EU NNP I-NP I-ORG\nrejects VBZ I-VP O\n\nPeter NNP I-NP I-PER\n")
    sentences = read_conll(path, 3, NER_LABELS, scheme="iob1")
    assert [s.labels for s in sentences] == [["B-ORG", "O"], ["B-PER"]]
    # an unknown type: the message shows the tag as written and as converted
    path = write(tmp_path, "Peter NNP I-NP I-PER\nMonday NNP I-NP I-DATE\n")
    with pytest.raises(ConllFormatError, match=r"f.txt:2: label 'I-DATE' \(IOB2 'B-DATE'\) \(col"):
        read_conll(path, 3, NER_LABELS, scheme="iob1")


def test_iob2_check_only_for_span_label_sets(tmp_path):
    path = write(tmp_path, "EU NNP I-NP I-ORG\n")
    assert read_conll(path, 1, POS_LABELS)[0].labels == ["NNP"]  # POS: nothing to check
    assert read_conll(path, 3, None)[0].labels == ["I-ORG"]  # reading a label set: as written


@pytest.mark.parametrize(
    "line, fields",
    [
        ("New\u00a0York NNP\tB-NP  B-LOC \r", ["New\u00a0York", "NNP", "B-NP", "B-LOC"]),
        ("10\u202f000 CD\u3000x O", ["10\u202f000", "CD\u3000x", "O"]),
        ("Black\u200bburn NNP", ["Black\u200bburn", "NNP"]),
        (" \t  \r", []),  # spaces and tabs only: a sentence break
        ("\u00a0", ["\u00a0"]),  # other whitespace: a token line, its field count checked
    ],
)
def test_fields_are_split_on_spaces_and_tabs_only(line, fields):
    from bert_pos.data.conll import line_fields

    assert line_fields(line) == fields


def test_labels_outside_the_set_pass_an_open_check_but_spans_are_still_checked(tmp_path):
    path = write(tmp_path, "Monday NNP B-NP B-DATE\nnight NN I-NP I-DATE\n")
    assert read_conll(path, 3, NER_LABELS, closed=False)[0].labels == ["B-DATE", "I-DATE"]
    path = write(tmp_path, "Monday NNP B-NP O\nnight NN I-NP I-DATE\n")
    with pytest.raises(ConllFormatError, match="f.txt:2: tag 'I-DATE' after 'O' is not valid"):
        read_conll(path, 3, NER_LABELS, closed=False)
