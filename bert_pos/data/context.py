"""Document context: each sentence's example filled with its neighbours from the same
document as unlabelled context (`add_document_context`, data.context=document).
"""

import logging
from collections import Counter

from datasets import Dataset

from bert_pos.data.labels import IGNORE_INDEX

log = logging.getLogger(__name__)


def same_document_neighbours(sentence: int, step: int, document_ids: list[int], inner: dict):
    """Subwords of the sentences before (step -1, nearest first) or after (+1) `sentence`
    in its document."""
    other = sentence + step
    while 0 <= other < len(document_ids) and document_ids[other] == document_ids[sentence]:
        yield inner.get(other, [])
        other += step


def add_document_context(
    examples: Dataset,
    document_ids: list[int],
    budget: int,
    split: str = "split",
    specials: tuple[int, int] = (1, 1),
) -> Dataset:
    """Each sentence's example with the subwords of its neighbours in the same document
    around it, up to `budget` subwords in all (the `specials` before and after included):
    half the room before, half after, and the room one side cannot fill goes to the other. Context
    subwords carry no labels, no word starts and no word index, so only the sentence's own
    words are trained on and scored, once each. Sentences that needed windows (longer than
    the model's window) stay as they are. Documents come from the `-DOCSTART-` lines; where
    they are unknown (document id -1, e.g. a hub copy without those lines) the split's
    sentence order is one stream, with a warning.
    """
    columns = examples.to_dict()
    sentences = columns["sentence"]
    leading, trailing = specials
    if any(document < 0 for document in document_ids):
        log.warning(
            "%s: document boundaries unknown; context comes from the neighbouring "
            "sentences in file order, across documents",
            split,
        )
    per_sentence = Counter(sentences)
    label_columns = [column for column in columns if column.split(".")[0] == "labels"]
    # the subwords of each whole sentence, without its special tokens
    inner = {
        s: ids[leading : len(ids) - trailing]
        for s, ids in zip(sentences, columns["input_ids"])
        if per_sentence[s] == 1
    }
    for row, sentence in enumerate(sentences):
        if per_sentence[sentence] > 1:
            continue
        room = budget - len(columns["input_ids"][row])
        if room <= 0:
            continue
        before, after = [], []
        for ids in same_document_neighbours(sentence, -1, document_ids, inner):
            if len(before) >= room:
                break
            before = ids + before
        for ids in same_document_neighbours(sentence, +1, document_ids, inner):
            if len(after) >= room:
                break
            after = after + ids
        left = min(len(before), max(room // 2, room - len(after)))
        right = min(len(after), room - left)
        left_ids, right_ids = before[len(before) - left :], after[:right]
        ids = columns["input_ids"][row]
        columns["input_ids"][row] = around(ids, left_ids, right_ids, leading, trailing)
        none_left, none_right = [IGNORE_INDEX] * left, [IGNORE_INDEX] * right
        for column in label_columns:  # every task's subword labels
            columns[column][row] = around(columns[column][row], none_left, none_right, *specials)
        index = columns["word_index"][row]
        columns["word_index"][row] = around(index, [-1] * left, [-1] * right, leading, trailing)
        columns["word_starts"][row] = [
            start + left if start >= 0 else start for start in columns["word_starts"][row]
        ]
    return Dataset.from_dict(columns)


def around(sequence: list, left: list, right: list, leading: int, trailing: int) -> list:
    """`sequence` with `left` inserted after its `leading` special tokens and `right` before
    its `trailing` ones."""
    end = len(sequence) - trailing
    return sequence[:leading] + left + sequence[leading:end] + right + sequence[end:]
