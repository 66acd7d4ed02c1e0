"""Tables of sentences: the rows of a hub or saved dataset split, or of a JSON-lines file.

A row holds a word list and a tag list (tag names, or integer ids into a ClassLabel's names or
`data.labels`), and optionally a document id. `table_sentences` checks and converts the rows
to the same `Sentence`s the CoNLL reader gives; `held_out_rows` picks the validation rows of
a dataset that has no validation split.
"""

import itertools
import logging
import random
from dataclasses import dataclass

from datasets import ClassLabel, Dataset

from bert_pos.data.conll import DOCSTART, Sentence
from bert_pos.data.tags import DataFormatError, TagCheck

log = logging.getLogger(__name__)


@dataclass
class Table:
    """One split's rows, column by column, and what the messages call them."""

    source: str  # a file, or a dataset and split: "unimelb-nlp/wikiann (en) train"
    tags_column: str
    tokens: list[list[str]]
    tags: list[list]  # tag names, or ids into `class_label` (else `data_labels`)
    documents: list | None  # one document id per row (any value); None: from -DOCSTART- rows
    lines: list[int] | None  # each row's line in its file (JSON lines); None: rows of a dataset
    class_label: list[str] | None  # the dataset's ClassLabel names of the tags column
    data_labels: list[str] | None  # data.labels: names of integer tags without a ClassLabel
    surface_rows: list[list[bool]] | None = None  # per word: a multiword token's surface row
    surface_column: str | None = None
    mentions: list | None = None  # span data: each row's (start, end, type) mentions

    def where(self, row: int) -> str:
        return f"{self.source}:{self.lines[row]}" if self.lines else f"{self.source} row {row}"


def dataset_table(dataset: Dataset, source: str, columns, data_labels: list[str] | None) -> Table:
    """The rows of one `datasets` split; `columns` (tokens, tags, document: names) must exist,
    the tags column must be a list per row, and integer tags need names (a ClassLabel, or
    `data_labels`)."""
    keys = {
        "tokens": "data.tokens_column",
        "tags": "data.tags_column",
        "document": "data.document_column",
        "surface": "data.multiword_surface_column",
    }
    for field, key in keys.items():
        name = getattr(columns, field)
        if name is not None and name not in dataset.column_names:
            raise DataFormatError(
                f"{source}: no column {name!r} ({key}); the dataset's columns are "
                f"{', '.join(dataset.column_names)}. Set {key} to the one that holds the "
                f"{'document ids' if field == 'document' else field}"
            )
    words = getattr(dataset.features[columns.tokens], "feature", None)  # a list's item type
    if str(getattr(words, "dtype", "")) not in ("string", "large_string"):
        raise DataFormatError(
            f"{source}: column {columns.tokens!r} (data.tokens_column) holds "
            f"{dataset.features[columns.tokens]}; expected a list of words per row"
        )
    inner = getattr(dataset.features[columns.tags], "feature", None)
    dtype = str(getattr(inner, "dtype", ""))
    class_label = list(inner.names) if isinstance(inner, ClassLabel) else None
    plain_ids = class_label is None and dtype.startswith(("int", "uint"))
    tag_names = dtype in ("string", "large_string")
    if class_label is None and not plain_ids and not tag_names:
        raise DataFormatError(
            f"{source}: column {columns.tags!r} (data.tags_column) holds "
            f"{dataset.features[columns.tags]}; expected a list of tags per row (ClassLabel "
            "ids, integer ids or tag names)"
        )
    if plain_ids and data_labels is None:
        raise DataFormatError(
            f"{source}: column {columns.tags!r} holds integer ids without label names (it is "
            "no ClassLabel); set data.labels to the label names in id order"
        )
    return Table(
        source=source,
        tags_column=columns.tags,
        tokens=list(dataset[columns.tokens]),
        tags=list(dataset[columns.tags]),
        documents=None if columns.document is None else list(dataset[columns.document]),
        lines=None,
        class_label=class_label,
        data_labels=data_labels,
        surface_rows=surface_rows(dataset, columns.surface),
        surface_column=columns.surface,
    )


def surface_rows(dataset: Dataset, column: str | None) -> list[list[bool]] | None:
    """Per row, per word: whether the word is a multiword token's surface row (`_` in
    `column`, a ClassLabel's name or a string), as the hub's Universal Dependencies mark it."""
    if column is None:
        return None
    inner = getattr(dataset.features[column], "feature", None)
    names = list(inner.names) if isinstance(inner, ClassLabel) else None
    return [
        [(names[value] if names is not None else value) == "_" for value in values]
        for values in dataset[column]
    ]


def table_sentences(table: Table, check: TagCheck) -> list[Sentence]:
    """The sentences of a table's rows, their tags as checked IOB2 names (see `TagCheck`).

    A row whose only word is `-DOCSTART-` is a document boundary and is dropped. Documents
    come from `table.documents` where given (a new one wherever the value changes), else
    from those rows (-1 before the first one, and in a table without them: unknown). Empty
    rows are dropped, with a count in the log: they hold nothing to train or score.
    """
    documents = None if table.documents is None else run_numbers(table.documents)
    id_names = table.class_label if table.class_label is not None else table.data_labels
    sentences, document, empty, surfaces = [], -1, 0, 0
    for row, (words, tags) in enumerate(zip(table.tokens, table.tags)):
        if table.surface_rows is not None and len(table.surface_rows[row]) != len(words):
            raise DataFormatError(
                f"{table.where(row)}: {len(words)} words but {len(table.surface_rows[row])} "
                f"values in {table.surface_column} (data.multiword_surface_column)"
            )
        if table.surface_rows is not None and any(table.surface_rows[row]):
            kept = [i for i, surface in enumerate(table.surface_rows[row]) if not surface]
            surfaces += len(words) - len(kept)
            words, tags = [words[i] for i in kept], [tags[i] for i in kept]
        if words == [DOCSTART]:
            document += 1
            continue
        if not words:
            empty += 1
            continue
        if len(tags) != len(words):
            raise DataFormatError(
                f"{table.where(row)}: {len(words)} words but {len(tags)} "
                f"tags ({table.tags_column}); expected one tag per word"
            )
        names = row_tag_names(table, row, tags, id_names)
        labels = check(names, lambda i, row=row: f"{table.where(row)}, word {i}")
        line = table.lines[row] if table.lines else -1
        document_id = document if documents is None else documents[row]
        mentions = None if table.mentions is None else table.mentions[row]
        sentences.append(Sentence(list(words), labels, document_id, line, mentions))
    if empty:
        log.info("%s: %d empty rows skipped", table.source, empty)
    if surfaces:
        log.info(
            "%s: %d multiword-token surface rows skipped (`_` in %s); their syntactic words "
            "are tagged, as UD scores them",
            table.source,
            surfaces,
            table.surface_column,
        )
    if not sentences:
        raise DataFormatError(f"{table.source}: no sentences found; expected rows with words")
    return sentences


def row_tag_names(table: Table, row: int, tags: list, id_names: list[str] | None) -> list[str]:
    """One row's tags as names: integer ids looked up in `id_names`, names as they are."""
    if all(isinstance(tag, str) for tag in tags):
        return tags
    origin = (
        f"the {table.tags_column} ClassLabel" if table.class_label is not None else "data.labels"
    )
    for i, tag in enumerate(tags):
        if id_names is None or not isinstance(tag, int) or isinstance(tag, bool):
            raise DataFormatError(
                f"{table.where(row)}, word {i}: tag {tag!r} ({table.tags_column}); expected "
                "tag names throughout, or integer ids throughout with data.labels naming them"
            )
        if not 0 <= tag < len(id_names):
            raise DataFormatError(
                f"{table.where(row)}, word {i}: {table.tags_column} id {tag} is outside "
                f"{origin} range 0..{len(id_names) - 1}"
            )
    return [id_names[tag] for tag in tags]


def run_numbers(values: list) -> list[int]:
    """0, 1, 2, ...: a new number wherever the value differs from the row before (a document
    is a run of rows with the same document id)."""
    numbers, number = [], -1
    for i, value in enumerate(values):
        if i == 0 or value != values[i - 1]:
            number += 1
        numbers.append(number)
    return numbers


def held_out_rows(document_ids: list[int], fraction: float, seed: int) -> list[int]:
    """The rows to hold out as validation, in order: `fraction` of the units, drawn with
    `seed`. A unit is a whole document where every row's document is known (so document
    context never crosses from train into validation), else one sentence."""
    if document_ids and all(document >= 0 for document in document_ids):
        grouped = itertools.groupby(range(len(document_ids)), key=lambda row: document_ids[row])
        units = [list(rows) for _, rows in grouped]
    else:
        units = [[row] for row in range(len(document_ids))]
    count = min(len(units) - 1, max(1, round(fraction * len(units))))
    if count < 1:
        raise DataFormatError(
            f"train has {len(units)} sentence(s) or document(s): too few to hold out a "
            "validation split (data.validation_fraction); give the dataset a validation split"
        )
    chosen = random.Random(seed).sample(range(len(units)), count)
    return sorted(row for unit in chosen for row in units[unit])
