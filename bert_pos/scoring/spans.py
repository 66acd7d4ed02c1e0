"""Spans of a tag sequence, as conlleval finds them."""

import warnings

from seqeval.metrics.sequence_labeling import get_entities


def spans_of(tags: list[str]) -> set[tuple[str, int, int]]:
    """(type, first, last) of each entity span in one sentence, as seqeval's default mode
    (conlleval) finds them: an I-X after O or after another type opens a span."""
    with warnings.catch_warnings():  # seqeval warns about tags like `<none>`, and counts them
        warnings.simplefilter("ignore")
        return set(get_entities(list(tags)))
