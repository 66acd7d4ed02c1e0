"""Raw text into sentences of words with character offsets, for `bert_pos.predict`.

Words and sentences come from segtok (`segtok.segmenter.split_single`, then its web
tokenizer with possessive markers and contractions split off), which re-tokenizes
CoNLL-2003's detokenized test sentences exactly in 91.3% of cases and keeps 98.0% of them
one sentence; spaCy's rule-based tokenizer (`spacy.blank("en")` and its sentencizer) reached
70.0% and 93.7%, syntok 75.8% and 95.0%, and the regular expression bert_pos used before
73.0% (`python experiments/text_tokenizers.py`, experiments/RESULTS.md). segtok is written
for English and the languages that write like it (`language` selects nothing else yet).

A text is read line by line: a line is a paragraph, which may hold several sentences; blank
lines separate paragraphs and nothing is lost: every word carries its character offsets
into its line.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from bert_pos.runtime.errors import UserError

Word = tuple[str, int, int]  # the word, its start and end offsets in its line
LANGUAGES = ("en",)


@dataclass
class TextSentence:
    line: int  # 1-based line number in the input
    line_text: str  # that line
    paragraph: int  # 0-based paragraph number (paragraphs are separated by blank lines)
    words: list[Word]  # offsets into the line


def require_segtok() -> None:
    import importlib.util

    if importlib.util.find_spec("segtok") is None:
        raise UserError(
            "input_format=text splits text with segtok: pip install 'bert_pos[text]' (or the "
            "pinned version in requirements-lock.txt)"
        )


def line_sentences(line: str) -> list[list[Word]]:
    """The sentences of one line, each a list of (word, start, end) with `line[start:end]`
    the word."""
    from segtok.segmenter import split_single
    from segtok.tokenizer import split_contractions, split_possessive_markers, web_tokenizer

    sentences, position = [], 0
    for sentence in split_single(line):
        tokens = split_contractions(split_possessive_markers(web_tokenizer(sentence)))
        words = []
        for token in tokens:
            if not token:
                continue
            start = line.find(token, position)
            if start < 0:  # segtok returns the text's own characters; never expected
                raise ValueError(f"the word {token!r} is not in the line {line!r}")
            position = start + len(token)
            words.append((token, start, position))
        if words:
            sentences.append(words)
    return sentences


def text_sentences(lines: Iterable[str]) -> Iterator[TextSentence]:
    """Every sentence of a text given as lines (without their line breaks), in order."""
    paragraph, in_paragraph = 0, False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            paragraph += in_paragraph
            in_paragraph = False
            continue
        in_paragraph = True
        for words in line_sentences(line):
            yield TextSentence(number, line, paragraph, words)
