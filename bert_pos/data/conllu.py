"""CoNLL-U, the format of every Universal Dependencies treebank: read, checked, written back.

Ten tab-separated columns per line (ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC), `#`
comment lines before a sentence (`# newdoc` opens a document), a blank line after each
sentence. A sentence's words are its syntactic words, as the CoNLL 2018 shared task scores
them: a multiword token's range line (`3-4 cannot`) is kept but not tagged, its words (`3
can`, `4 not`) are; an empty node (`8.1`) is kept for writing back and skipped. Every line
that breaks the format stops the reader with `file:line` and what was expected.

Written back (`write_conllu`), a file is the input with one column of the tagged words
replaced and every other byte as it was.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from bert_pos.data.conll import Sentence, read_utf8
from bert_pos.data.tags import DataFormatError, TagCheck

COLUMNS = ("ID", "FORM", "LEMMA", "UPOS", "XPOS", "FEATS", "HEAD", "DEPREL", "DEPS", "MISC")
FORM_COLUMN, FEATS_COLUMN = 1, 5
TASK_COLUMNS = {"upos": 3, "xpos": 4, "feats": FEATS_COLUMN}  # data.task of a CoNLL-U source

# The universal features of UD v2 as the CoNLL 2018 shared task compared them (UFeats): the
# official scorer keeps only these of a word's FEATS, so language-specific ones (English
# LinES's ExtPos) and later additions do not count.
SHARED_TASK_FEATURES = frozenset(
    "PronType NumType Poss Reflex Foreign Abbr Gender Animacy Number Case Definite Degree "
    "VerbForm Mood Tense Aspect Voice Evident Polarity Person Polite".split()
)

WORD_ID = re.compile(r"[1-9][0-9]*")
RANGE_ID = re.compile(r"([1-9][0-9]*)-([1-9][0-9]*)")
EMPTY_NODE_ID = re.compile(r"(0|[1-9][0-9]*)\.([1-9][0-9]*)")


class ConlluFormatError(DataFormatError):
    """A CoNLL-U file that cannot be read as it stands; the message names file and line."""


@dataclass
class ConlluSentence:
    """One sentence as it is in its file: `text` its lines (comments, ranges, words, empty
    nodes) and the blank lines after it, byte for byte; `word_lines` the 0-based index within
    `text.split("\\n")` of each syntactic word's line; `first_line` the 1-based file line of
    its first syntactic word; `document_id` counts `# newdoc` comments from 0."""

    text: str
    word_lines: list[int]
    first_line: int
    document_id: int

    def word_fields(self) -> list[list[str]]:
        lines = self.text.split("\n")
        return [lines[i].split("\t") for i in self.word_lines]


def parse_conllu(path: str | Path) -> list[ConlluSentence]:
    """Every sentence of a CoNLL-U file, each line checked. A sentence's text runs from its
    first line (a comment or a word) to the line before the next sentence's first, so the
    texts joined by newlines are the file again."""
    path = Path(path)
    lines = read_utf8(path, ConlluFormatError).split("\n")
    starts, parsers, documents = [], [], []
    parser, document_id = None, -1
    for index, line in enumerate(lines):
        number = index + 1
        if line.strip() == "":
            if parser is not None:
                parser.finish(number)
                parser = None
            continue
        if parser is None:
            parser = SentenceParser(path)
            starts.append(index)
            parsers.append(parser)
            documents.append(0)
        if line.startswith("#"):
            if parser.word_lines:
                raise ConlluFormatError(
                    f"{path}:{number}: a comment line inside a sentence; expected comments "
                    "only before its first word line"
                )
            document_id += bool(re.match(r"#\s*newdoc\b", line))
            continue
        documents[-1] = max(document_id, 0)
        parser.add(line, number)
    if parser is not None:
        parser.finish(len(lines))
    if not parsers:
        raise ConlluFormatError(
            f"{path}: no sentences found; expected CoNLL-U: ten tab-separated columns per word, "
            "a blank line after each sentence"
        )
    sentences = []
    for i, (parser, document) in enumerate(zip(parsers, documents, strict=True)):
        begin = 0 if i == 0 else starts[i]
        end = starts[i + 1] if i + 1 < len(starts) else len(lines)
        word_lines = [index - begin for index in parser.word_lines]
        text = "\n".join(lines[begin:end])
        sentences.append(ConlluSentence(text, word_lines, parser.word_lines[0] + 1, document))
    return sentences


class SentenceParser:
    """The checks of one sentence's lines, in order: 10 columns, IDs 1, 2, 3, ... with ranges
    announcing the words that follow them and empty nodes after the word they follow."""

    def __init__(self, path: Path):
        self.path = path
        self.word_lines: list[int] = []  # 0-based line indices of the syntactic words
        self.next_id = 1
        self.range_end = 0  # the last word of the open multiword token's range
        self.empty_next = 1  # the next empty node's number after the current word

    def add(self, line: str, number: int) -> None:
        where = f"{self.path}:{number}"
        fields = line.split("\t")
        if len(fields) != len(COLUMNS):
            spaces = " (the columns are split on tabs only)" if " " in line else ""
            raise ConlluFormatError(
                f"{where}: {len(fields)} tab-separated columns; expected 10 "
                f"({' '.join(COLUMNS)}){spaces}"
            )
        token_id, form = fields[0], fields[FORM_COLUMN]
        if form.strip() == "":
            raise ConlluFormatError(f"{where}: ID {token_id} has an empty FORM")
        if WORD_ID.fullmatch(token_id):
            if int(token_id) != self.next_id:
                raise ConlluFormatError(
                    f"{where}: word ID {token_id} out of sequence; expected {self.next_id}"
                )
            self.word_lines.append(number - 1)
            self.next_id += 1
            self.empty_next = 1
            return
        span = RANGE_ID.fullmatch(token_id)
        if span:
            first, last = int(span.group(1)), int(span.group(2))
            if first != self.next_id or last <= first:
                raise ConlluFormatError(
                    f"{where}: multiword token {token_id} must cover the next words, "
                    f"{self.next_id}-N with N > {self.next_id}"
                )
            self.check_range_closed(where)
            self.range_end = last
            return
        empty = EMPTY_NODE_ID.fullmatch(token_id)
        if empty:
            after, index = int(empty.group(1)), int(empty.group(2))
            if after != self.next_id - 1 or index != self.empty_next:
                raise ConlluFormatError(
                    f"{where}: empty node {token_id} out of sequence; expected "
                    f"{self.next_id - 1}.{self.empty_next}"
                )
            self.empty_next += 1
            return
        raise ConlluFormatError(
            f"{where}: ID {token_id!r}; expected a word (3), a multiword range (3-4) or an "
            "empty node (3.1)"
        )

    def check_range_closed(self, where: str) -> None:
        if self.range_end >= self.next_id:
            raise ConlluFormatError(
                f"{where}: a multiword token starts before the words of the previous one "
                f"(up to {self.range_end}) have all come"
            )

    def finish(self, number: int) -> None:
        """At the blank line (`number`) after the sentence."""
        where = f"{self.path}:{number}"
        if not self.word_lines:
            raise ConlluFormatError(
                f"{where}: comment lines with no word line after them; expected a sentence's "
                "words before the blank line"
            )
        self.check_range_closed(where)


def read_conllu(
    path: str | Path, label_column: int, label_names: list[str] | None, closed: bool = True
) -> list[Sentence]:
    """The syntactic words of a CoNLL-U file with the label of `label_column` (UPOS: 3),
    checked as every reader checks its tags (`TagCheck`)."""
    check = TagCheck(
        label_names, "iob2", f"column {COLUMNS[label_column]}", ConlluFormatError, closed
    )
    sentences = []
    for sentence in parse_conllu(path):
        fields = sentence.word_fields()
        where = word_location(Path(path), sentence)
        labels = [word[label_column] for word in fields]
        tags = check(labels, where)
        words = [word[FORM_COLUMN] for word in fields]
        sentences.append(Sentence(words, tags, sentence.document_id, sentence.first_line))
    return sentences


def word_location(path: Path, sentence: ConlluSentence):
    """`file:line` of word i of a sentence (range lines and empty nodes sit between words)."""
    start = sentence.first_line - sentence.word_lines[0]  # file line of the text's first line
    return lambda i: f"{path}:{start + sentence.word_lines[i]}"


def write_conllu(
    source: str | Path, out: str | Path, label_columns: int | list[int], predicted: dict
) -> int:
    """Write `out`: the sentences of the CoNLL-U file `source` whose first word's line is a key
    of `predicted`, with the label column of each syntactic word replaced by its predicted
    label and every other byte as in `source`; with every sentence predicted, `out` is `source`
    but that column. Several columns (`label_columns` a list, one per task): each sentence's
    value is a list of label lists, one per column. Returns the number of sentences written."""
    text, written = predicted_conllu(source, label_columns, predicted)
    Path(out).write_text(text)
    return written


def predicted_conllu(
    source: str | Path, label_columns: int | list[int], predicted: dict
) -> tuple[str, int]:
    """The text `write_conllu` writes, and its number of sentences."""
    several = isinstance(label_columns, list)
    columns = label_columns if several else [label_columns]
    pieces, written = [], 0
    for sentence in parse_conllu(source):
        labels = predicted.get(sentence.first_line)
        if labels is None:
            continue
        lines = sentence.text.split("\n")
        for column, column_labels in zip(columns, labels if several else [labels], strict=True):
            if len(column_labels) != len(sentence.word_lines):
                raise ValueError(
                    f"{source}:{sentence.first_line}: {len(column_labels)} predicted labels "
                    f"for {len(sentence.word_lines)} words"
                )
            for index, label in zip(sentence.word_lines, column_labels, strict=True):
                fields = lines[index].split("\t")
                fields[column] = label
                lines[index] = "\t".join(fields)
        pieces.append("\n".join(lines))
        written += 1
    text = "\n".join(pieces)
    if pieces and not text.endswith("\n\n"):  # a part of the file: end it as a file ends
        text = text.rstrip("\n") + "\n\n"
    return text, written


def new_conllu(
    lines: list[str],
    sentences: list[list[str]],
    label_columns: list[int],
    labels,
    comments: list[list[str]] | None = None,
) -> str:
    """CoNLL-U for words that came without it (raw text): `# text` and ID, FORM and the
    predicted columns of each word (`labels`: per sentence, a label list per column), `_` in
    the others; `comments` are a sentence's comment lines before its text (`# newpar`)."""
    out = []
    comments = comments or [[] for _ in lines]
    for line, words, tags, before in zip(lines, sentences, labels, comments, strict=True):
        out += before
        out.append(f"# text = {line}")
        for i, word in enumerate(words, start=1):
            fields = [str(i), word] + ["_"] * (len(COLUMNS) - 2)
            for column, column_tags in zip(label_columns, tags, strict=True):
                fields[column] = column_tags[i - 1]
            out.append("\t".join(fields))
        out.append("")
    return "\n".join(out) + "\n"


def universal_features(feats: str) -> str:
    """FEATS as the CoNLL 2018 scorer compares them (UFeats): the shared task's universal
    features only, sorted; `_` where none is left."""
    kept = sorted(f for f in feats.split("|") if f.split("=", 1)[0] in SHARED_TASK_FEATURES)
    return "|".join(kept) or "_"
