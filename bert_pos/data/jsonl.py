"""Reading JSON-lines files: one sentence per line, as Hugging Face's `run_ner.py` reads them.

    {"tokens": ["EU", "rejects", "German", "call"], "ner_tags": ["B-ORG", "O", "B-MISC", "O"]}

The field names are `data.tokens_column` and `data.tags_column` (and `data.document_column`,
if set). Tags are names, or integer ids with `data.labels` naming them. Every problem stops
the reader with a `DataFormatError` naming `file:line`.
"""

import json
import logging
from pathlib import Path

from bert_pos.data.conll import read_utf8
from bert_pos.data.mentions import outermost_tags, read_mentions
from bert_pos.data.tables import Table
from bert_pos.data.tags import DataFormatError

log = logging.getLogger(__name__)
EXAMPLE = '{"tokens": ["Peter", "Blackburn"], "ner_tags": ["B-PER", "I-PER"]}'


def read_jsonl(path: str | Path, columns, data_labels: list[str] | None) -> Table:
    """The rows of one JSON-lines file; `columns` names the fields (tokens, tags, document).
    Blank lines are skipped."""
    path = Path(path)
    text = read_utf8(path, DataFormatError)
    table = Table(
        source=str(path),
        tags_column=columns.tags,
        tokens=[],
        tags=[],
        documents=[] if columns.document else None,
        lines=[],
        class_label=None,
        data_labels=data_labels,
        mentions=[] if columns.spans else None,
    )
    nested = 0  # mentions the outermost tags cannot hold
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        row = parse_object(path, number, line)
        check_fields(row, columns, f"{path}:{number}")
        words = row[columns.tokens]
        if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
            raise DataFormatError(
                f"{path}:{number}: {columns.tokens!r} is {words!r}; expected "
                "a list of strings, one per word"
            )
        if columns.spans:
            mentions = read_mentions(
                row[columns.spans], len(words), list(columns.span_fields), f"{path}:{number}"
            )
            check_types(mentions, data_labels, f"{path}:{number}")
            tags, held = outermost_tags(mentions, len(words))
            table.mentions.append(mentions)
            nested += held
        else:
            tags = row[columns.tags]
        if not isinstance(tags, list):
            raise DataFormatError(
                f"{path}:{number}: {columns.tags!r} is {tags!r}; expected a "
                "list of tags, one per word"
            )
        table.tokens.append(words)
        table.tags.append(tags)
        table.lines.append(number)
        if columns.document is not None:
            table.documents.append(row[columns.document])
    if nested:
        log.info(
            "%s: %d mentions lie inside (or overlap) another; the span head learns them, the "
            "tags of a tagging head hold only the outermost",
            path,
            nested,
        )
    if not table.tokens:
        raise DataFormatError(
            f"{path}: no sentences found (the file is empty); expected one "
            f"JSON object per line, e.g. {EXAMPLE}"
        )
    return table


def check_types(mentions: list, data_labels: list[str] | None, where: str) -> None:
    """With `data.labels` given, every mention's type is one of its types."""
    if data_labels is None:
        return
    types = {label.split("-", 1)[1] for label in data_labels if "-" in label}
    for number, (_, _, kind) in enumerate(mentions, start=1):
        if kind not in types:
            raise DataFormatError(
                f"{where}: mention {number} has the type {kind!r}, not among data.labels' "
                f"types ({', '.join(sorted(types))})"
            )


def check_fields(row: dict, columns, where: str) -> None:
    """The row has every field the columns name (span data: its mentions, not tags)."""
    tags_field = None if columns.spans else columns.tags  # span data: tags from mentions
    fields = {"tokens": columns.tokens, "tags": tags_field, "document": columns.document}
    fields["spans"] = columns.spans
    for field, name in fields.items():
        if name is not None and name not in row:
            present = ", ".join(row) if row else "no fields"
            raise DataFormatError(
                f"{where}: no {name!r} field (data.{field}_column); the object has "
                f"{present}. Set data.{field}_column to the field that holds the {field}"
            )


def parse_object(path: Path, number: int, line: str) -> dict:
    """The JSON object on line `number`."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        hint = (
            " (a JSON array is not JSON lines: write one object per line)"
            if number == 1 and line.lstrip().startswith("[")
            else ""
        )
        raise DataFormatError(
            f"{path}:{number}: not valid JSON ({err.msg} at column {err.colno}){hint}; expected "
            f"one JSON object per line, e.g. {EXAMPLE}"
        ) from None
    if not isinstance(row, dict):
        raise DataFormatError(
            f"{path}:{number}: a JSON {type(row).__name__}; expected one "
            f"object per line, e.g. {EXAMPLE}"
        )
    return row
