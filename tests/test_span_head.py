"""The span head (bert_pos/modeling/heads/span.py): enumeration, gold spans from IOB2 tags,
flat and nested decoding, and a span tagger trained, scored, resumed and exported as the
tagging heads are."""

import itertools

import pytest
import torch

from bert_pos.data.labels import NER_LABELS
from bert_pos.modeling.heads.span import (
    SpanHead,
    compatible,
    decode_spans,
    enumerate_spans,
    gold_spans,
    span_types,
)
from bert_pos.scoring.spans import spans_of

ID = {label: i for i, label in enumerate(NER_LABELS)}


def test_every_span_up_to_the_width_is_enumerated_once():
    first, last = enumerate_spans(5, 3)
    spans = list(zip(first.tolist(), last.tolist()))
    expected = [(a, b) for a in range(5) for b in range(a, min(a + 3, 5))]
    assert spans == expected and len(set(spans)) == len(spans) == 12


def test_gold_spans_read_iob2_as_conlleval_does():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "B-ORG", "B-ORG", "I-MISC", "I-MISC"]
    spans = gold_spans([ID[t] for t in tags], NER_LABELS)
    types = span_types(NER_LABELS)  # 1-based ids in the order of the B- labels
    named = {(types[kind - 1], a, b) for (a, b), kind in spans.items()}
    assert named == spans_of(tags)
    assert ("LOC", 3, 3) in named and ("MISC", 6, 7) in named  # I- after O opens a span


def random_scores(n: int, types: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, types + 1, generator=generator).softmax(-1)


@pytest.mark.parametrize("seed", range(20))
def test_flat_decoding_never_overlaps_and_nested_never_crosses(seed):
    first, last = enumerate_spans(9, 4)
    scores = random_scores(len(first), 3, seed)
    scores[:, 0] *= 0.2  # most spans are candidates
    flat = decode_spans(scores, first, last, nested=False)
    nested = decode_spans(scores, first, last, nested=True)
    assert flat, "something was decoded"
    for (a, b, _), (c, d, _) in itertools.combinations(flat, 2):
        assert b < c or d < a, (a, b, c, d)
    for (a, b, _), (c, d, _) in itertools.combinations(nested, 2):
        assert b < c or d < a or (a <= c and d <= b) or (c <= a and b <= d), (a, b, c, d)
    assert set(flat) <= set(nested) or len(nested) >= len(flat)


def test_decoding_takes_the_best_span_first():
    first, last = enumerate_spans(3, 3)  # (0,0) (0,1) (0,2) (1,1) (1,2) (2,2)
    scores = torch.zeros(6, 2)
    scores[:, 0] = 1.0
    scores[1] = torch.tensor([0.1, 0.9])  # [0, 1] best
    scores[4] = torch.tensor([0.2, 0.8])  # [1, 2] overlaps it
    scores[5] = torch.tensor([0.3, 0.7])  # [2, 2] does not
    assert decode_spans(scores, first, last, nested=False) == [(0, 1, 1), (2, 2, 1)]
    scores[3] = torch.tensor([0.0, 0.95])  # [1, 1] inside [0, 1]: nests, and is best
    assert decode_spans(scores, first, last, nested=True) == [(0, 1, 1), (1, 1, 1), (2, 2, 1)]
    assert not compatible(0, 1, 1, 2, nested=True)  # crossing never stands


def test_the_head_learns_spans_and_writes_them_as_tags():
    torch.manual_seed(0)
    head = SpanHead(len(NER_LABELS), NER_LABELS, "argmax", max_span_words=4)
    tags = ["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "I-ORG", "I-ORG"]
    batch = {
        "word_starts": torch.arange(1, 9)[None],
        "word_labels": torch.tensor([[ID[t] for t in tags]]),
    }
    features = torch.nn.Parameter(torch.randn(1, 10, head.input_width))
    optimizer = torch.optim.Adam([features, *head.parameters()], lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        head.loss_sum(features, batch).backward()
        optimizer.step()
    decoded = head.decode_words(features.detach(), batch["word_starts"])
    assert [NER_LABELS[i] for i in decoded[0].tolist()] == tags
