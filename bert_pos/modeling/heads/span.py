"""`model.head=span`: every span of up to `max_span_words` words is classified into an entity
type or none, instead of tagging words.

A span is represented by its boundaries and its width, as the span-based taggers do (Lee et
al. 2017's span representation, used for NER by PURE, Zhong and Chen 2021, and SpanMarker):
the first-subword vectors of its first and last words (the tagger's classifier projects the
encoder output to `SPAN_WIDTH` dimensions first) and a learned embedding of its width in
words, concatenated, go through a two-layer feed-forward network to one score per type, and
"none". Training: cross-entropy over every span of the sentence (the gold spans come from the
word tags, IOB2), summed and divided by `max_span_words`, so a sentence weighs about as much as
under the tagging heads. Decoding (`model.span_decode`): `flat`, the highest-scoring spans that
do not overlap, in turn (written back as IOB2 tags: on flat data conlleval scores them as
it scores any tagger); `nested`, spans may nest but never cross (see `decode_spans`).

A long sentence is read in overlapping windows (data/encoding.py); each window scores the
spans that start at the words it keeps and end anywhere in the window (`span_starts` and
`kept_words` of the batch), so a mention across the kept edge is seen whole, and evaluation
and predict decode each sentence from the candidates of all its windows together
(`candidates`, `resolve_spans`). On tag data, the spans that end past the kept words carry
no loss (their gold lies in the next window's tags).
"""

import torch
import torch.nn.functional as F
from torch import nn

from bert_pos.data.labels import IGNORE_INDEX
from bert_pos.modeling.words import at_word_starts

SPAN_WIDTH = 150  # the projected word vector of a span's boundary
WIDTH_EMBEDDING = 25
HIDDEN = 150


def enumerate_spans(num_words: int, max_span_words: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, last) word of every span of 1 to `max_span_words` words within `num_words`,
    ordered by first word, then width."""
    first, last = [], []
    for start in range(num_words):
        for end in range(start, min(start + max_span_words, num_words)):
            first.append(start)
            last.append(end)
    return torch.tensor(first, dtype=torch.long), torch.tensor(last, dtype=torch.long)


def gold_spans(tags: list[int], label_names: list[str]) -> dict[tuple[int, int], int]:
    """(first, last) word -> type id (1-based; 0 is none) of each IOB2 span of a word-tag
    sequence (ids into `label_names`), as conlleval reads spans."""
    spans, start, kind = {}, None, None
    types = span_types(label_names)
    names = [label_names[t] if t != IGNORE_INDEX else "O" for t in tags] + ["O"]
    for position, name in enumerate(names):
        prefix, _, entity = name.partition("-")
        continues = prefix == "I" and entity == kind and start is not None
        if start is not None and not continues:
            spans[(start, position - 1)] = types.index(kind) + 1
            start, kind = None, None
        if prefix == "B" or (prefix == "I" and not continues):
            start, kind = position, entity
    return spans


def span_types(label_names: list[str]) -> list[str]:
    """The entity types of an IOB2 label list, in the order their B- labels come."""
    return [name[2:] for name in label_names if name.startswith("B-")]


def decode_spans(
    scores: torch.Tensor, first: torch.Tensor, last: torch.Tensor, nested: bool
) -> list[tuple[int, int, int]]:
    """The spans kept of one sentence from (N, types + 1) probabilities, as (first, last,
    type id) triples by first word (see `resolve_spans`)."""
    kept = resolve_spans(span_candidates(scores, first, last), nested)
    return [(a, b, kind) for a, b, kind, _ in kept]


def span_candidates(scores: torch.Tensor, first: torch.Tensor, last: torch.Tensor) -> list:
    """(first, last, type id, probability) of each span whose best class among (N, types + 1)
    probabilities is a type."""
    best, kind = scores[:, 1:].max(-1)
    chosen = (scores.argmax(-1) > 0).nonzero(as_tuple=True)[0].tolist()
    return [(int(first[i]), int(last[i]), int(kind[i]) + 1, float(best[i])) for i in chosen]


def resolve_spans(candidates: list, nested: bool) -> list[tuple[int, int, int, float]]:
    """The candidates (first, last, type, probability) kept: taken best first, one that
    overlaps a kept span (`flat`), or crosses one (`nested`: overlapping without either
    holding the other), is dropped. Sorted by first word."""
    kept = []
    for a, b, kind, probability in sorted(candidates, key=lambda c: (-c[3], c[:3])):
        if all(compatible(a, b, c, d, nested) for c, d, _, _ in kept):
            kept.append((a, b, kind, probability))
    return sorted(kept)


def outermost(spans: list[tuple]) -> list[tuple]:
    """The spans (first, last, ...) inside no other of them: those IOB2 tags can hold, as
    flat decoding keeps them all and nested decoding never lets two cross."""
    return [
        span
        for span in spans
        if not any(c <= span[0] and span[1] <= d and (c, d) != span[:2] for c, d, *_ in spans)
    ]


def compatible(a: int, b: int, c: int, d: int, nested: bool) -> bool:
    """Whether spans [a, b] and [c, d] may both stand: disjoint, or (nested) one inside the
    other."""
    if b < c or d < a:
        return True
    return nested and ((a <= c and d <= b) or (c <= a and b <= d))


class SpanHead(nn.Module):
    module_name = "span_head"  # its parameters' prefix in checkpoints and exports
    input_width = SPAN_WIDTH  # what the tagger's classifier projects each subword to

    def __init__(
        self,
        num_labels: int,
        label_names: list[str] | None,
        decode: str,
        max_span_words: int = 8,
        nested: bool = False,
    ):
        super().__init__()
        if label_names is None or not span_types(label_names):
            raise ValueError("head=span needs span labels (IOB2: O, B-X, I-X)")
        self.label_names, self.types = label_names, span_types(label_names)
        self.max_span_words, self.nested = max_span_words, nested
        self.width_embedding = nn.Embedding(max_span_words, WIDTH_EMBEDDING)
        self.scorer = nn.Sequential(
            nn.Linear(2 * SPAN_WIDTH + WIDTH_EMBEDDING, HIDDEN),
            nn.ReLU(),
            nn.Linear(HIDDEN, len(self.types) + 1),
        )
        begin = {name[2:]: i for i, name in enumerate(label_names) if name.startswith("B-")}
        inside = {name[2:]: i for i, name in enumerate(label_names) if name.startswith("I-")}
        self.begin_ids = [begin[t] for t in self.types]
        self.inside_ids = [inside.get(t, begin[t]) for t in self.types]
        self.outside_id = label_names.index("O") if "O" in label_names else 0

    def span_scores(self, logits: torch.Tensor, word_starts: torch.Tensor, kept_words=None):
        """Scores (B, N, types + 1) of every span of up to `max_span_words` words of each
        example's words, the spans' (first, last) words (N,), and which spans are real (B, N):
        both ends are words of the example that have a subword, and (`kept_words` (B,), for
        windows: see the module's docstring) the first is a kept word."""
        words = at_word_starts(logits.float(), word_starts)  # (B, W, SPAN_WIDTH)
        first, last = enumerate_spans(words.shape[1], self.max_span_words)
        first, last = first.to(words.device), last.to(words.device)
        represented = torch.cat(
            [
                words[:, first],
                words[:, last],
                self.width_embedding(last - first)[None].expand(words.shape[0], -1, -1),
            ],
            dim=-1,
        )
        real = (word_starts[:, first] >= 0) & (word_starts[:, last] >= 0)  # (B, N)
        if kept_words is not None:
            real &= first[None] < kept_words[:, None]
        return self.scorer(represented), first, last, real

    def loss_sum(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """Cross-entropy of every span between labelled words: its gold type, or none. Gold
        spans: span data's `mentions` (nested ones too), else the IOB2 spans of the word tags."""
        starts, kept_words = span_inputs(batch)
        scores, first, last, real = self.span_scores(logits, starts, kept_words)
        # blanks and unpredictable gold: no loss; past the kept words, only span data's
        # mentions say what is gold
        labelled = torch.zeros(starts.shape, dtype=torch.bool, device=starts.device)
        width = batch["word_labels"].shape[1]
        labelled[:, :width] = batch["word_labels"] != IGNORE_INDEX
        if kept_words is not None and "mentions" in batch:
            reach = torch.arange(starts.shape[1], device=starts.device)[None] >= kept_words[:, None]
            labelled |= reach & (starts >= 0)
        real &= labelled[:, first] & labelled[:, last]
        targets = torch.zeros(real.shape, dtype=torch.long, device=scores.device)
        index = {(a, b): n for n, (a, b) in enumerate(zip(first.tolist(), last.tolist()))}
        for row, spans in enumerate(self.batch_gold(batch)):
            for (a, b), kind in spans.items():
                if (a, b) in index and kind > 0:  # longer than max_span_words: never predicted
                    targets[row, index[(a, b)]] = kind
        targets[~real] = IGNORE_INDEX
        loss = F.cross_entropy(
            scores.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
        )
        return loss / self.max_span_words

    def batch_gold(self, batch: dict) -> list[dict[tuple[int, int], int]]:
        """Per example: (first, last) word -> type id of its gold spans."""
        if "mentions" in batch:
            return [
                {(a, b): kind for a, b, kind in rows if a >= 0}
                for rows in batch["mentions"].tolist()
            ]
        return [gold_spans(tags, self.label_names) for tags in batch["word_labels"].tolist()]

    @torch.no_grad()
    def decode_words(self, logits: torch.Tensor, word_starts: torch.Tensor) -> torch.Tensor:
        """IOB2 tag ids (B, W) of the spans `resolve_spans` keeps of each example's words."""
        return self.tags_of(self.candidates(logits, {"word_starts": word_starts}), word_starts)

    def tags_of(self, read: list[tuple[list, list]], word_starts: torch.Tensor) -> torch.Tensor:
        """IOB2 tag ids (B, W) of the spans `resolve_spans` keeps of each example's
        `candidates` (flat decoding: every kept span; nested: the outermost ones, the only
        ones tags can hold), where the candidates lie within the words of `word_starts`."""
        tags = torch.full(word_starts.shape, self.outside_id, dtype=torch.long)
        for row, (spans, _) in enumerate(read):
            kept = [(a, b, kind) for a, b, kind, _ in resolve_spans(spans, self.nested)]
            for a, b, kind in outermost(kept):
                tags[row, a] = self.begin_ids[kind - 1]
                tags[row, a + 1 : b + 1] = self.inside_ids[kind - 1]
        return tags.to(word_starts.device)

    @torch.no_grad()
    def candidates(self, logits: torch.Tensor, batch: dict) -> list[tuple[list, list]]:
        """Per example, its candidate spans (first, last, type id, probability; counted from
        its first kept word), those of windows ending past the kept words too, and each kept
        word's probability that its one-word span is none: what a sentence is decoded from
        (`resolve_spans`) once every window of it has been read."""
        starts, kept_words = span_inputs(batch)
        scores, first, last, real = self.span_scores(logits, starts, kept_words)
        probabilities = scores.softmax(-1).masked_fill(~real[..., None], 0.0).cpu()
        first, last = first.cpu(), last.cpu()
        one_word = (first == last).nonzero(as_tuple=True)[0]  # ordered by word
        kept = batch["word_starts"].shape[1]
        return [
            (span_candidates(rows, first, last), rows[one_word[:kept], 0].tolist())
            for rows in probabilities
        ]


def span_inputs(batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The words a span head reads in a batch: with windows of long sentences, each example's
    kept words and the window's later ones (`span_starts`) and how many are kept; else the
    kept words alone (`word_starts`, None)."""
    if "span_starts" in batch:
        return batch["span_starts"], batch["kept_words"]
    return batch["word_starts"], None
