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
    """The spans kept of one sentence from (N, types + 1) probabilities: each span whose best
    class is a type is a candidate; candidates are taken best first, and one that overlaps a
    kept span (`flat`), or crosses one (`nested`: overlapping without either holding the
    other), is dropped. Returns (first, last, type id) triples, by first word."""
    best, kind = scores[:, 1:].max(-1)
    candidates = (scores.argmax(-1) > 0).nonzero(as_tuple=True)[0].tolist()
    candidates.sort(key=lambda i: -float(best[i]))
    kept = []
    for i in candidates:
        a, b = int(first[i]), int(last[i])
        if all(compatible(a, b, c, d, nested) for c, d, _ in kept):
            kept.append((a, b, int(kind[i]) + 1))
    return sorted(kept)


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

    def span_scores(self, logits: torch.Tensor, word_starts: torch.Tensor):
        """Scores (B, N, types + 1) of every span of up to `max_span_words` words of each
        example's words, the spans' (first, last) words (N,), and which spans are real (B, N):
        both ends are words of the example that have a subword."""
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
        return self.scorer(represented), first, last, real

    def loss_sum(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """Cross-entropy of every span between labelled words: its gold type, or none. Gold
        spans: span data's `mentions` (nested ones too), else the IOB2 spans of the word tags."""
        scores, first, last, real = self.span_scores(logits, batch["word_starts"])
        labelled = batch["word_labels"] != IGNORE_INDEX  # blanks and unpredictable gold: no loss
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
        """IOB2 tag ids (B, W) of the spans `decode_spans` keeps (flat decoding: every kept
        span; nested: the outermost ones, the only ones tags can hold)."""
        tags = torch.full(word_starts.shape, self.outside_id, dtype=torch.long)
        for row, spans in enumerate(self.decode_mentions(logits, word_starts)):
            for a, b, kind in spans:
                if any(c <= a and b <= d and (c, d) != (a, b) for c, d, _ in spans):
                    continue  # nested inside a kept span: no tag for it
                tags[row, a] = self.begin_ids[kind - 1]
                tags[row, a + 1 : b + 1] = self.inside_ids[kind - 1]
        return tags.to(word_starts.device)

    @torch.no_grad()
    def word_probabilities(self, logits: torch.Tensor, word_starts: torch.Tensor):
        """Each word's probability (B, W) as predict reports it: a tagged word's is its kept
        span's, an O word's that its one-word span is none."""
        probabilities, index, decoded = self.scored_mentions(logits, word_starts)
        result = torch.zeros(word_starts.shape, dtype=torch.float)
        for row, spans in enumerate(decoded):
            for w in range(word_starts.shape[1]):
                if (w, w) in index:
                    result[row, w] = probabilities[row, index[(w, w)], 0]
            for a, b, kind in spans:
                result[row, a : b + 1] = probabilities[row, index[(a, b)], kind]
        return result.to(word_starts.device)

    @torch.no_grad()
    def decode_mentions(self, logits: torch.Tensor, word_starts: torch.Tensor) -> list[list]:
        """Per example, the (first, last, type id) spans `decode_spans` keeps."""
        return self.scored_mentions(logits, word_starts)[2]

    @torch.no_grad()
    def scored_mentions(self, logits: torch.Tensor, word_starts: torch.Tensor):
        """Every span's probabilities (B, N, types + 1; 0 for spans that are not real), the
        index of each (first, last) span among them, and per example the kept spans."""
        scores, first, last, real = self.span_scores(logits, word_starts)
        probabilities = scores.softmax(-1).masked_fill(~real[..., None], 0.0).cpu()
        first, last = first.cpu(), last.cpu()
        index = {(a, b): n for n, (a, b) in enumerate(zip(first.tolist(), last.tolist()))}
        decoded = [
            decode_spans(probabilities[row], first, last, self.nested)
            for row in range(word_starts.shape[0])
        ]
        return probabilities, index, decoded
