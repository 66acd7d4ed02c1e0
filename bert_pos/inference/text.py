"""Raw text into sentences of words with character offsets, for `bert_pos.predict`.

Words and sentences come from segtok (`segtok.segmenter.split_single`, then its web
tokenizer with possessive markers and contractions split off), which re-tokenizes
CoNLL-2003's detokenized test sentences exactly in 91.3% of cases and keeps 98.0% of them
one sentence; spaCy's rule-based tokenizer (`spacy.blank("en")` and its sentencizer) reached
70.0% and 93.7%, syntok 75.8% and 95.0%, and the regular expression bert_pos used before
73.0% (`python experiments/text_tokenizers.py`, experiments/RESULTS.md). segtok is written
for English; `language=en` (the default) uses it. Any other `language` is an ISO code of
spaCy's, whose rule-based tokenizer for that language (`spacy.blank(language)`, its
punctuation rules and abbreviations) and sentencizer split the text instead: French "l'homme"
becomes "l'" and "homme", German "z.B." stays one word.

A text is read line by line: a line is a paragraph, which may hold several sentences; blank
lines separate paragraphs, and a line `-DOCSTART-` (CoNLL-2003's document marker) starts a
new document. Nothing is lost: every word carries its character offsets into its line.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from bert_pos.runtime.errors import UserError

Word = tuple[str, int, int]  # the word, its start and end offsets in its line
DOCUMENT_MARKER = "-DOCSTART-"


@dataclass
class TextSentence:
    line: int  # 1-based line number in the input
    line_text: str  # that line
    paragraph: int  # 0-based paragraph number (paragraphs are separated by blank lines)
    words: list[Word]  # offsets into the line
    document: int = 0  # 0-based; each -DOCSTART- line after some text starts the next one
    opens_document: bool = False  # the first sentence after a -DOCSTART- line


def sentence_splitter(language: str) -> Callable[[str], list[list[Word]]]:
    """The function that splits one line of `language` into sentences of words: segtok for
    English, spaCy's rules for that language otherwise."""
    import importlib.util

    if language == "en":
        if importlib.util.find_spec("segtok") is None:
            raise UserError(
                "input_format=text splits English with segtok: pip install 'bert_pos[text]' "
                "(or the pinned version in requirements-lock.txt)"
            )
        return line_sentences
    if importlib.util.find_spec("spacy") is None:
        raise UserError(
            f"language={language} splits text with spaCy's rules for it: pip install "
            "'bert_pos[languages]' (or the pinned version in requirements-lock.txt)"
        )
    import spacy

    try:
        nlp = spacy.blank(language)
    except (ImportError, KeyError, ValueError) as err:
        reason = str(err).splitlines()[0]
        raise UserError(f"language={language}: spaCy cannot split it: {reason}") from None
    nlp.add_pipe("sentencizer")

    def split(line: str) -> list[list[Word]]:
        return [
            words
            for sentence in nlp(line).sents
            if (words := [(t.text, t.idx, t.idx + len(t.text)) for t in sentence if not t.is_space])
        ]

    return split


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


def text_sentences(
    lines: Iterable[str], split: Callable[[str], list[list[Word]]] = line_sentences
) -> Iterator[TextSentence]:
    """Every sentence of a text given as lines (without their line breaks), in order, each
    line split by `split` (`sentence_splitter`'s)."""
    paragraph, in_paragraph = 0, False
    document, in_document, marked = 0, False, False
    for number, line in enumerate(lines, start=1):
        if line.strip() == DOCUMENT_MARKER:
            document += in_document
            paragraph += in_paragraph
            in_document = in_paragraph = False
            marked = True
            continue
        if not line.strip():
            paragraph += in_paragraph
            in_paragraph = False
            continue
        in_paragraph = True
        for words in split(line):
            yield TextSentence(number, line, paragraph, words, document, marked)
            in_document, marked = True, False
