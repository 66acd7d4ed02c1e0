"""Exact span matching, nested mentions included: a predicted mention counts when its start,
end and type equal a gold mention's (the measure nested-NER papers report). On flat data it
equals conlleval's entity scores of the same spans written as IOB2 tags. Also the span head's
mentions as evaluation decodes them: per sentence, from the candidates of all its windows.
"""

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from bert_pos.data.mentions import outermost_tags
from bert_pos.modeling.heads.span import resolve_spans
from bert_pos.scoring.spans import spans_of


def span_scores(gold: list[list[tuple]], predicted: list[list[tuple]]) -> dict:
    """Precision, recall, F1 and support (gold mentions), overall and per type, of
    per-sentence mention lists of (start, end, type)."""
    right, guessed, wanted = Counter(), Counter(), Counter()
    for gold_mentions, predicted_mentions in zip(gold, predicted, strict=True):
        gold_set, predicted_set = (
            set(map(tuple, gold_mentions)),
            set(map(tuple, predicted_mentions)),
        )
        for mention in gold_set:
            wanted[mention[2]] += 1
        for mention in predicted_set:
            guessed[mention[2]] += 1
            right[mention[2]] += mention in gold_set
    scores = prf(sum(right.values()), sum(guessed.values()), sum(wanted.values()))
    scores["per_type"] = {
        kind: prf(right[kind], guessed[kind], wanted[kind]) for kind in sorted(wanted | guessed)
    }
    return scores


def prf(right: int, guessed: int, wanted: int) -> dict:
    precision = right / guessed if guessed else 0.0
    recall = right / wanted if wanted else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": wanted}


def write_span_predictions(path: Path, tokens: list[list[str]], gold, predicted) -> None:
    """`predictions.jsonl`: per sentence its `tokens`, and its `gold` and `predicted`
    mentions as [start, end, type] (end exclusive)."""
    lines = [
        json.dumps(
            {"tokens": words, "gold": sorted(map(list, g)), "predicted": sorted(map(list, p))},
            ensure_ascii=False,
        )
        for words, g, p in zip(tokens, gold, predicted, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Mentions:
    """Span data's mentions of a run's first task, scored by exact match, nested ones too:
    `gold` per sentence (start, end exclusive, type); `predicted` is filled by
    `evaluate_tasks`: the span head's decoded mentions, or a tagging head's spans (which can
    never hold a nested mention: what a flat tagger can reach)."""

    gold: list[list[tuple]]
    predicted: list[list[tuple]] | None = None


def sentence_mentions(head, candidates: list[tuple]) -> dict[int, list[tuple]]:
    """Each sentence's decoded mentions (start, end exclusive, type) from the candidates of
    all its examples (the windows of a long sentence together)."""
    per_sentence = defaultdict(list)
    for sentence, spans in candidates:
        per_sentence[sentence] += spans
    return {
        sentence: [
            (a, b + 1, head.types[kind - 1]) for a, b, kind, _ in resolve_spans(spans, head.nested)
        ]
        for sentence, spans in per_sentence.items()
    }


def windows_tagged_from_mentions(pieces: list[tuple], decoded: dict) -> list[tuple]:
    """The pieces with the predicted word tags of every windowed sentence made from its
    sentence-level mentions (outermost ones; see `sentence_mentions`): a window's own tags
    cannot hold a mention that the window before it decoded across their edge."""
    windowed = {piece[0] for piece in pieces if piece[1] > 0}
    if not windowed:
        return pieces
    lengths = Counter()
    for sentence, _, gold_words, *_ in pieces:
        lengths[sentence] += len(gold_words)
    tags = {s: outermost_tags(decoded.get(s, []), lengths[s])[0] for s in windowed}
    return [
        (sentence, first, gold, tags[sentence][first : first + len(predicted)], *rest)
        if sentence in windowed
        else (sentence, first, gold, predicted, *rest)
        for sentence, first, gold, predicted, *rest in pieces
    ]


def predicted_mentions(decoded: dict | None, predicted_tags: list[list[str]]) -> list[list]:
    """Per sentence, the predicted mentions: the span head's (`decoded`), or (a tagging head,
    `decoded` None) the spans of the predicted tags."""
    if decoded is None:
        return [
            sorted((first, last + 1, kind) for kind, first, last in spans_of(tags))
            for tags in predicted_tags
        ]
    return [sorted(decoded.get(sentence, [])) for sentence in range(len(predicted_tags))]
