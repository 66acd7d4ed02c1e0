"""Reading and writing CoNLL column files.

One token per line (`word col1 col2 ...`, fields split on spaces and tabs only, as the shared
task's `conlleval` splits them), a blank line between sentences, and `-DOCSTART-` lines between
documents. The reader validates as it goes: every problem stops it with a `ConllFormatError`
that names the file, the line and what was expected, so a broken file never trains a model
silently.
"""

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from bert_pos.data.tags import DataFormatError, TagCheck

DOCSTART = "-DOCSTART-"

# Fields are separated by runs of spaces and tabs, and by nothing else: a word may hold any other
# character, a no-break space (U+00A0), a thin space (U+2009) or a zero-width space included,
# where `str.split()` would cut it in two and shift every later field.
FIELD_SEPARATOR = re.compile("[ \t]+")


class ConllFormatError(DataFormatError):
    """A CoNLL file that cannot be read as it stands; the message names file and line."""


@dataclass
class Sentence:
    words: list[str]
    labels: list[str]
    document_id: int  # index of the `-DOCSTART-` document within the file, from 0
    line: int  # 1-based line of the first word; word i is on line `line + i`
    mentions: list | None = None  # span data: every (start, end, type) mention, nested ones too


def read_conll(
    path: str | Path,
    label_column: int,
    label_names: list[str] | None,
    word_column: int = 0,
    scheme: str = "iob2",
    closed: bool = True,
) -> list[Sentence]:
    """Read the sentences of one CoNLL file, with the label of `label_column` for each word.

    `scheme=iob1` and `scheme=bioes` convert the tags to IOB2 as they are read (a BIOES
    sequence must be valid first). Every (converted) label must be in `label_names` (None: any
    label, for reading a label set; `closed=False`: labels outside them pass, gold labels a
    model cannot predict); when those are a span label set and `scheme=iob2`, an
    `I-X` must continue an X entity (see `TagCheck`). Lines must all have the same
    number of fields as the first token line of the file. Accepted as they are: a UTF-8
    byte-order mark, CRLF line endings, tabs and spaces mixed between fields, leading and
    trailing spaces and tabs, lines of only spaces and tabs (sentence breaks), and words that
    hold other whitespace (see `line_fields`).
    """
    check = TagCheck(
        label_names, scheme, f"column {label_column}, 0-based", ConllFormatError, closed
    )
    path = Path(path)
    text = read_utf8(path)
    sentences: list[Sentence] = []
    words: list[str] = []
    labels: list[str] = []
    first_line = 0
    layout = FieldLayout(path, word_column, label_column)
    document_id = -1
    for line_number, line in enumerate(text.split("\n"), start=1):
        fields = line_fields(line)
        if not fields or fields[0] == DOCSTART:
            if words:
                tags = check(labels, word_line(path, first_line))
                sentences.append(Sentence(words, tags, max(document_id, 0), first_line))
                words, labels = [], []
            document_id += bool(fields)
            continue
        layout.check(fields, line, line_number)
        if not words:
            first_line = line_number
        words.append(fields[word_column])
        labels.append(fields[label_column])
    if words:
        sentences.append(
            Sentence(
                words, check(labels, word_line(path, first_line)), max(document_id, 0), first_line
            )
        )
    if not sentences:
        content = "the file is empty" if not text.strip() else "only -DOCSTART- and blank lines"
        raise ConllFormatError(
            f"{path}: no sentences found ({content}); expected one `word ... label` line per "
            "token, with a blank line between sentences"
        )
    return sentences


def line_fields(line: str) -> list[str]:
    """The fields of one line, its CRLF carriage return dropped: split on spaces and tabs only,
    so a line of only other whitespace (a lone U+00A0) is a token line, not a sentence break."""
    return [field for field in FIELD_SEPARATOR.split(line.removesuffix("\r")) if field]


def other_whitespace(line: str) -> str:
    """The whitespace characters of `line` that do not separate fields, named for a message,
    e.g. `U+00A0 NO-BREAK SPACE`; empty when there are none."""
    found = dict.fromkeys(c for c in line if c.isspace() and c not in " \t\r")
    return ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, 'whitespace')}" for c in found)


def word_line(path: Path, first_line: int):
    """Where word i of the sentence that starts on `first_line` is: `file:line`."""
    return lambda i: f"{path}:{first_line + i}"


def read_utf8(path: Path, error: type[DataFormatError] = ConllFormatError) -> str:
    """The text of a file that must be UTF-8. A byte-order mark is dropped, also one that opens
    a later line: files that each had one, concatenated with `cat`, would otherwise turn a
    `-DOCSTART-` line into a word."""
    if not path.is_file():
        raise error(f"{path}: no such file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        # 0x80-0x9F are control characters in Latin-1 but curly quotes, dashes and the euro
        # sign in Windows-1252, which word processors write
        encoding = "cp1252" if 0x80 <= raw[err.start] <= 0x9F else "latin1"
        raise error(
            f"{path}:{line}: bytes {raw[err.start : err.end]!r} are not UTF-8; expected a UTF-8 "
            f"file (re-encode it, e.g. `iconv -f {encoding} -t utf-8`)"
        ) from None
    return text.removeprefix("\ufeff").replace("\n\ufeff", "\n")


class FieldLayout:
    """Every token line has as many fields as the file's first one, enough for both columns."""

    def __init__(self, path: Path, word_column: int, label_column: int):
        self.path, self.word_column, self.label_column = path, word_column, label_column
        self.num_fields = None
        self.first_token_line = 0

    def check(self, fields: list[str], line: str, line_number: int) -> None:
        path = self.path
        shown = line.strip(" \t\r")
        if self.num_fields is None:
            self.num_fields, self.first_token_line = len(fields), line_number
            needed = max(self.word_column, self.label_column) + 1
            if self.num_fields < needed:
                raise ConllFormatError(
                    f"{path}:{line_number}: {self.num_fields} fields in {shown!r}; "
                    f"expected at least {needed}, since the word column is {self.word_column} "
                    f"and the label column is {self.label_column} (0-based; set "
                    f"data.word_column/data.label_column){separator_hint(line)}"
                )
        elif len(fields) != self.num_fields:
            raise ConllFormatError(
                f"{path}:{line_number}: {len(fields)} fields in {shown!r}; expected "
                f"{self.num_fields} fields like the first token line (line "
                f"{self.first_token_line}){separator_hint(line)}"
            )


def separator_hint(line: str) -> str:
    """For a line with the wrong field count: a note when it holds whitespace other than spaces
    and tabs, which is part of a word, never a separator (a file that separates its fields
    with no-break spaces, or a line of only such whitespace)."""
    other = other_whitespace(line)
    if not other:
        return ""
    return f"; fields are split on spaces and tabs only, and the line also holds {other}"


def split_file(directory: str | Path, split: str, name: str) -> Path:
    """The file (or saved-dataset folder) of one split, `directory/name`; a missing one stops
    with a message that names the config keys to set and the files of the same kind (same
    suffix; folders for a name without one) the folder does hold."""
    path = Path(directory) / name
    if path.exists():
        return path
    keys = f"data.dir={directory} and data.{split}_file={name}"
    if "*" in name and Path(directory).is_dir():  # a pattern, e.g. *-ud-train.conllu
        matches = sorted(Path(directory).glob(name))
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ConllFormatError(
                f"{path}: {len(matches)} files match (from {keys}): "
                f"{', '.join(m.name for m in matches)}; name one in data.{split}_file"
            )
    if not Path(directory).is_dir():
        raise ConllFormatError(f"{path}: no such file (from {keys}): the folder does not exist")
    if path.suffix:
        present = sorted(p.name for p in Path(directory).glob(f"*{path.suffix}") if p.is_file())
        listing = ", ".join(present) if present else f"no {path.suffix} files"
    else:
        present = sorted(p.name for p in Path(directory).iterdir() if p.is_dir())
        listing = ", ".join(present) if present else "no folders"
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
