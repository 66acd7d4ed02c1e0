"""Which library splits raw text into CoNLL-2003's words and sentences best.

CoNLL-2003's test sentences are detokenized with the Moses detokenizer (sacremoses), then
split back into words by each candidate; a sentence counts as re-tokenized exactly when the
words come back identical, and as kept whole when the splitter finds one sentence in it.

    python experiments/text_tokenizers.py ../shared/data/conll2003/test.txt

Needs `pip install sacremoses spacy syntok segtok` (bert_pos itself needs only the one it uses).
"""

import re
import sys
import time

from sacremoses import MosesDetokenizer

from bert_pos.data.conll import read_conll


def regex_words(text: str) -> list[list[str]]:  # bert_pos before: one sentence per line
    word = re.compile(r"\w+(?:[-'.]\w+)*|[^\w\s]")
    return [word.findall(text)]


def spacy_words():
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return lambda text: [[t.text for t in s if not t.is_space] for s in nlp(text).sents]


def syntok_words(text: str) -> list[list[str]]:
    import syntok.segmenter as segmenter

    return [
        [token.value for token in sentence]
        for paragraph in segmenter.process(text)
        for sentence in paragraph
    ]


def segtok_words(text: str) -> list[list[str]]:
    from segtok.segmenter import split_single
    from segtok.tokenizer import web_tokenizer

    return [web_tokenizer(sentence) for sentence in split_single(text) if sentence.strip()]


def bert_pos_words(text: str) -> list[list[str]]:  # segtok, possessives and contractions split
    from bert_pos.inference.text import line_sentences

    return [[word for word, _, _ in sentence] for sentence in line_sentences(text)]


def main(path: str) -> None:
    sentences = [s.words for s in read_conll(path, label_column=3, label_names=None)]
    detokenize = MosesDetokenizer(lang="en").detokenize
    texts = [detokenize(words) for words in sentences]
    candidates = {
        "regex (bert_pos 0.1)": regex_words,
        "spaCy blank('en') + sentencizer": spacy_words(),
        "syntok": syntok_words,
        "segtok": segtok_words,
        "segtok, 's and n't split (bert_pos)": bert_pos_words,
    }
    words = sum(map(len, sentences))
    print(f"{len(sentences)} sentences, {words} words")
    print("| splitter | words exact | one sentence | both | words/s |")
    print("|---|---|---|---|---|")
    for name, split in candidates.items():
        started = time.perf_counter()
        results = [split(text) for text in texts]
        seconds = time.perf_counter() - started
        exact = [sum(found, []) == gold for found, gold in zip(results, sentences)]
        whole = [len(found) == 1 for found in results]
        both = sum(e and w for e, w in zip(exact, whole))
        print(
            f"| {name} | {sum(exact) / len(texts):.4f} | {sum(whole) / len(texts):.4f} | "
            f"{both / len(texts):.4f} | {words / seconds:,.0f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1])
