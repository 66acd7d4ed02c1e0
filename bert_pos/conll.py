"""Reading and writing CoNLL column files.

One token per line (`word col1 col2 ...`, fields split on spaces or tabs), a blank line between
sentences, and `-DOCSTART-` lines between documents. The reader validates as it goes: every
problem stops it with a `ConllFormatError` that names the file, the line and what was expected,
so a broken file never trains a model silently.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from bert_pos.labels import invalid_iob2_position, iob1_to_iob2, is_span_label_set

DOCSTART = "-DOCSTART-"


class ConllFormatError(ValueError):
    """A CoNLL file that cannot be read as it stands; the message names file and line."""


@dataclass
class Sentence:
    words: list[str]
    labels: list[str]
    document_id: int  # index of the `-DOCSTART-` document within the file, from 0
    line: int  # 1-based line of the first word; word i is on line `line + i`


def read_conll(
    path: str | Path,
    label_column: int,
    label_names: list[str] | None,
    word_column: int = 0,
    scheme: str = "iob2",
) -> list[Sentence]:
    """Read the sentences of one CoNLL file, with the label of `label_column` for each word.

    `scheme=iob1` converts the tags to IOB2 as they are read. Every (converted) label must be
    in `label_names` (None: any label, for reading a label set); when those are a span label
    set and `scheme=iob2`, an `I-X` must continue an X entity. Lines must all have the same
    number of fields as the first token line of the file. Accepted as they are: a UTF-8
    byte-order mark, CRLF line endings, tabs and spaces mixed between fields, trailing
    whitespace, and whitespace-only lines (sentence breaks).
    """
    if scheme not in ("iob2", "iob1"):
        raise ValueError(f"scheme={scheme!r}; expected iob2 or iob1")
    path = Path(path)
    if not path.is_file():
        raise ConllFormatError(f"{path}: no such file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConllFormatError(
            f"{path}:{line}: bytes {raw[err.start : err.end]!r} are not UTF-8; expected a UTF-8 "
            "file (re-encode it, e.g. `iconv -f latin1 -t utf-8`)"
        ) from None
    text = text.removeprefix("\ufeff")

    known_labels = None if label_names is None else set(label_names)
    check_spans = scheme == "iob2" and label_names is not None and is_span_label_set(label_names)
    sentences: list[Sentence] = []
    words: list[str] = []
    labels: list[str] = []
    first_line = 0
    num_fields = None
    first_token_line = 0
    document_id = -1

    def end_sentence():
        nonlocal words, labels
        if not words:
            return
        tags = iob1_to_iob2(labels) if scheme == "iob1" else labels
        if known_labels is not None:
            for i, (label, tag) in enumerate(zip(labels, tags)):
                if tag not in known_labels:
                    as_iob2 = f" (IOB2 {tag!r})" if tag != label else ""
                    raise ConllFormatError(
                        f"{path}:{first_line + i}: label {label!r}{as_iob2} (column "
                        f"{label_column}, 0-based) is not in the label set; expected one of the "
                        f"{len(label_names)} labels {' '.join(label_names)}"
                    )
        if check_spans:
            check_iob2(path, first_line, tags)
        sentences.append(Sentence(words, tags, max(document_id, 0), first_line))
        words, labels = [], []

    for line_number, line in enumerate(text.split("\n"), start=1):
        fields = line.split()
        if not fields:
            end_sentence()
            continue
        if fields[0] == DOCSTART:
            end_sentence()
            document_id += 1
            continue
        if num_fields is None:
            num_fields, first_token_line = len(fields), line_number
            needed = max(word_column, label_column) + 1
            if num_fields < needed:
                raise ConllFormatError(
                    f"{path}:{line_number}: {num_fields} fields in {line.strip()!r}; expected "
                    f"at least {needed}, since the word column is {word_column} and the label "
                    f"column is {label_column} (0-based; set data.word_column/data.label_column)"
                )
        elif len(fields) != num_fields:
            raise ConllFormatError(
                f"{path}:{line_number}: {len(fields)} fields in {line.strip()!r}; expected "
                f"{num_fields} fields like the first token line (line {first_token_line})"
            )
        if not words:
            first_line = line_number
        words.append(fields[word_column])
        labels.append(fields[label_column])
    end_sentence()

    if not sentences:
        content = "the file is empty" if not text.strip() else "only -DOCSTART- and blank lines"
        raise ConllFormatError(
            f"{path}: no sentences found ({content}); expected one `word ... label` line per "
            "token, with a blank line between sentences"
        )
    return sentences


def check_iob2(path: str | Path, first_line: int, tags: list[str]) -> None:
    """Stop at the first `I-X` that IOB2 forbids (at a sentence start, or after `O`, `B-Y` or
    `I-Y`) in the tags of the sentence that starts on `first_line`: IOB1 tags read as IOB2
    would split or merge entities without a word of warning."""
    i = invalid_iob2_position(tags)
    if i is None:
        return
    tag, entity = tags[i], tags[i][2:]
    previous = f"after {tags[i - 1]!r}" if i else "at the start of a sentence"
    raise ConllFormatError(
        f"{path}:{first_line + i}: tag {tag!r} {previous} is not valid IOB2; expected "
        f"B-{entity} to open an entity, I-{entity} only after B-{entity} or I-{entity}. If the "
        "file is IOB1 (as the original eng.* files are), set data.scheme=iob1 to convert it"
    )


def split_file(directory: str | Path, split: str, name: str) -> Path:
    """The file of one split, `directory/name`; a missing one stops with a message that names
    the config keys to set and the .txt files the folder does hold."""
    path = Path(directory) / name
    if path.is_file():
        return path
    keys = f"data.dir={directory} and data.{split}_file={name}"
    if not Path(directory).is_dir():
        raise ConllFormatError(f"{path}: no such file (from {keys}): the folder does not exist")
    present = sorted(p.name for p in Path(directory).glob("*.txt") if p.is_file())
    listing = ", ".join(present) if present else "no .txt files"
    skip = f" (or data.{split}_file=null: no {split} split)" if split == "test" else ""
    raise ConllFormatError(
        f"{path}: no such file (from {keys}); expected the {split} split there. The folder "
        f"holds {listing}: set data.{split}_file=NAME{skip}"
    )


def write_conll(path: str | Path, documents: list[list[list[tuple[str, ...]]]]) -> None:
    """Write documents (lists of sentences of per-word field tuples) with `-DOCSTART-` lines."""
    lines = []
    for document in documents:
        num_fields = len(document[0][0])
        lines += [" ".join([DOCSTART] + ["-X-"] * (num_fields - 2) + ["O"]), ""]
        for sentence in document:
            lines += [" ".join(fields) for fields in sentence]
            lines.append("")
    # Written beside, then renamed: a reader (another data-parallel process writing the same
    # generated corpus) never sees a half-written file.
    path = Path(path)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text("\n".join(lines) + "\n")
    partial.replace(path)
