"""Span annotations (mentions): read, checked, and turned into the tags a tagging head learns.

A mention is (start, end, type) over a sentence's words, end exclusive, as nested-NER
releases write them; JSON lines give them as objects with configurable field names
(`data.span_fields`, e.g. `[start, end, entity_type]`) or as `[start, end, type]` lists. Nested
mentions cannot all be tags: `outermost_tags` keeps the outermost ones (longest first where
two start together), and the reader counts the others; the span head learns and is scored on
every mention.
"""

from pathlib import Path

from bert_pos.data.conll import Sentence, read_conll
from bert_pos.data.tags import DataFormatError

Mention = tuple[int, int, str]  # start, end (exclusive), type


def read_mentions(raw, num_words: int, fields: list[str], where: str) -> list[Mention]:
    """A row's mentions, each checked: a list (or object with `fields`) of an integer start
    and end with 0 <= start < end <= `num_words`, and a non-empty string type. `where`:
    `file:line` for the messages."""
    if not isinstance(raw, list):
        raise DataFormatError(f"{where}: the mentions are {raw!r}; expected a list")
    mentions = []
    for number, mention in enumerate(raw, start=1):
        if isinstance(mention, dict):
            missing = [field for field in fields if field not in mention]
            if missing:
                raise DataFormatError(
                    f"{where}: mention {number} has no {missing[0]!r} field (data.span_fields="
                    f"{list(fields)}); it has {', '.join(mention) or 'no fields'}"
                )
            mention = [mention[field] for field in fields]
        if not isinstance(mention, list | tuple) or len(mention) != 3:
            raise DataFormatError(
                f"{where}: mention {number} is {mention!r}; expected [start, end, type]"
            )
        start, end, kind = mention
        if not (isinstance(start, int) and isinstance(end, int)):
            raise DataFormatError(f"{where}: mention {number}: start and end must be integers")
        if not isinstance(kind, str) or not kind:
            raise DataFormatError(f"{where}: mention {number}: its type {kind!r} is not a name")
        if start >= end:
            raise DataFormatError(
                f"{where}: mention {number} [{start}, {end}) is empty or reversed (end is "
                "exclusive: a one-word mention at word i is [i, i+1))"
            )
        if start < 0 or end > num_words:
            raise DataFormatError(
                f"{where}: mention {number} [{start}, {end}) lies outside the sentence's "
                f"{num_words} words"
            )
        mentions.append((start, end, kind))
    return sorted(set(mentions))


def outermost_tags(mentions: list[Mention], num_words: int) -> tuple[list[str], int]:
    """IOB2 tags of the outermost mentions, and how many mentions they cannot hold (nested in
    or overlapping a kept one)."""
    tags, kept = ["O"] * num_words, []
    for start, end, kind in sorted(mentions, key=lambda m: (m[0], -(m[1] - m[0]))):
        if any(start < other_end and other_start < end for other_start, other_end in kept):
            continue
        kept.append((start, end))
        tags[start] = f"B-{kind}"
        tags[start + 1 : end] = [f"I-{kind}"] * (end - start - 1)
    return tags, len(mentions) - len(kept)


def tag_mentions(tags: list[str]) -> list[Mention]:
    """The mentions of an IOB2 tag sequence, read as conlleval reads spans (an I-X after O or
    after another type opens one)."""
    mentions, start, kind = [], None, None
    for position, tag in enumerate(list(tags) + ["O"]):
        prefix, _, entity = tag.partition("-")
        continues = prefix == "I" and entity == kind
        if start is not None and not continues:
            mentions.append((start, position, kind))
            start, kind = None, None
        if prefix == "B" or (prefix == "I" and not continues):
            start, kind = position, entity
    return mentions


def read_layered_conll(
    path: Path, columns: list[int], word_column: int, scheme: str
) -> list[Sentence]:
    """CoNLL files with one tag column per nesting level (as GermEval 2014 ships them): each
    column read and checked as a one-task run reads it, every level's spans the sentence's
    mentions, and its tags those of the outermost mentions."""
    levels = [read_conll(path, column, None, word_column, scheme) for column in columns]
    sentences = []
    for parts in zip(*levels, strict=True):
        mentions = sorted({mention for part in parts for mention in tag_mentions(part.labels)})
        tags, _ = outermost_tags(mentions, len(parts[0].words))
        first = parts[0]
        sentences.append(Sentence(first.words, tags, first.document_id, first.line, mentions))
    return sentences


def mention_columns(sentences: list[Sentence], label_names: list[str]) -> dict:
    """Span data's columns: `mentions`, each sentence's [start, end, type id] (end exclusive;
    the id 1-based among the label set's types, 0 for a type the model cannot predict), and
    `mention_types`, their type names (what scoring compares)."""
    types = [name[2:] for name in label_names if name.startswith("B-")]
    mentions, names = [], []
    for sentence in sentences:
        rows = sentence.mentions or []
        ids = [types.index(kind) + 1 if kind in types else 0 for _, _, kind in rows]
        mentions.append([[start, end, i] for (start, end, _), i in zip(rows, ids, strict=True)])
        names.append([kind for _, _, kind in rows])
    return {"mentions": mentions, "mention_types": names}


def gold_mentions(sentences, tags: list[list[str]] | None = None) -> list[list[tuple]] | None:
    """Every sentence's (start, end, type) mentions of a split (a `datasets.Dataset`) of span
    data; for other data the spans of `tags` (every sentence's gold IOB2 tags: a span head's
    flat runs are scored and written as mentions too), or None."""
    if "mentions" not in sentences.column_names:
        return None if tags is None else [tag_mentions(sentence) for sentence in tags]
    return [
        [(start, end, kind) for (start, end, _), kind in zip(rows, kinds, strict=True)]
        for rows, kinds in zip(sentences["mentions"], sentences["mention_types"], strict=True)
    ]
