"""Reading and writing CoNLL column files.

One token per line (`word col1 col2 ...`, fields split on spaces or tabs), a blank line between
sentences, and `-DOCSTART-` lines between documents. The reader validates as it goes: every
problem stops it with a `ConllFormatError` that names the file, the line and what was expected,
so a broken file never trains a model silently.
"""

from dataclasses import dataclass
from pathlib import Path

DOCSTART = "-DOCSTART-"


class ConllFormatError(ValueError):
    """A CoNLL file that cannot be read as it stands; the message names file and line."""


@dataclass
class Sentence:
    words: list[str]
    labels: list[str]
    document_id: int  # index of the `-DOCSTART-` document within the file, from 0
    line: int  # 1-based line of the first word, for messages that point back into the file


def read_conll(
    path: str | Path,
    label_column: int,
    label_names: list[str] | None,
    word_column: int = 0,
) -> list[Sentence]:
    """Read the sentences of one CoNLL file, with the label of `label_column` for each word.

    Every label must be in `label_names` (None: any label, for reading a label set). Lines must all have the same number of fields as the
    first token line of the file. A UTF-8 byte-order mark and CRLF line endings are accepted.
    """
    path = Path(path)
    if not path.is_file():
        raise ConllFormatError(f"{path}: no such file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConllFormatError(
            f"{path}:{line}: bytes {raw[err.start : err.end]!r} are not UTF-8; "
            "re-encode the file as UTF-8"
        ) from None
    text = text.removeprefix("\ufeff")

    known_labels = None if label_names is None else set(label_names)
    sentences: list[Sentence] = []
    words: list[str] = []
    labels: list[str] = []
    first_line = 0
    num_fields = None
    document_id = -1

    def end_sentence():
        nonlocal words, labels
        if words:
            sentences.append(Sentence(words, labels, max(document_id, 0), first_line))
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
            num_fields = len(fields)
            needed = max(word_column, label_column) + 1
            if num_fields < needed:
                raise ConllFormatError(
                    f"{path}:{line_number}: {num_fields} fields, but the word column is "
                    f"{word_column} and the label column is {label_column} (0-based), so at "
                    f"least {needed} are needed"
                )
        elif len(fields) != num_fields:
            raise ConllFormatError(
                f"{path}:{line_number}: expected {num_fields} fields like the first token line, "
                f"found {len(fields)}: {line.strip()!r}"
            )
        label = fields[label_column]
        if known_labels is not None and label not in known_labels:
            raise ConllFormatError(
                f"{path}:{line_number}: label {label!r} in column {label_column} is not in the "
                f"label set ({len(label_names)} labels: {' '.join(label_names)})"
            )
        if not words:
            first_line = line_number
        words.append(fields[word_column])
        labels.append(label)
    end_sentence()

    if not sentences:
        raise ConllFormatError(
            f"{path}: no sentences found (is it empty or only -DOCSTART- lines?)"
        )
    return sentences


def write_conll(path: str | Path, documents: list[list[list[tuple[str, ...]]]]) -> None:
    """Write documents (lists of sentences of per-word field tuples) with `-DOCSTART-` lines."""
    lines = []
    for document in documents:
        num_fields = len(document[0][0])
        lines += [" ".join([DOCSTART] + ["-X-"] * (num_fields - 2) + ["O"]), ""]
        for sentence in document:
            lines += [" ".join(fields) for fields in sentence]
            lines.append("")
    Path(path).write_text("\n".join(lines) + "\n")
