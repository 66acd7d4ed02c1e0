"""Tag paths over a sentence's words: which IOB2 transitions may occur, the score of a path,
the forward algorithm, and Viterbi. The CRF head learns over them; the linear head's
constrained decoding searches them with fixed penalties."""

import torch

FORBIDDEN = -1e4  # a transition score no path can afford (finite: no inf - inf in sums)


def allowed_transitions(label_names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, C) allowed[i, j]: may tag j follow tag i; (C,) may a sentence start with a tag.
    IOB2: I-X only after B-X or I-X. Tags without I- prefixes (POS, chunk-less sets) are free."""
    count = len(label_names)
    allowed = torch.ones(count, count, dtype=torch.bool)
    start = torch.ones(count, dtype=torch.bool)
    for j, label in enumerate(label_names):
        if label.startswith("I-"):
            kind = label[2:]
            start[j] = False
            for i, previous in enumerate(label_names):
                allowed[i, j] = previous in (f"B-{kind}", f"I-{kind}")
    return allowed, start


def transition_penalties(allowed: torch.Tensor, allowed_start: torch.Tensor):
    """The fixed scores added to transitions and starts: 0 where allowed, FORBIDDEN elsewhere."""
    return (~allowed).float() * FORBIDDEN, (~allowed_start).float() * FORBIDDEN


def path_score(emissions, tags, mask, transitions, start, end) -> torch.Tensor:
    """Score of the given tag paths (B,): emissions + start + transitions + end."""
    mask = mask.to(emissions.dtype)
    tags = tags.clamp(min=0)
    lengths = mask.sum(1).long()
    emitted = emissions.gather(2, tags[..., None]).squeeze(2)  # (B, W)
    score = (emitted * mask).sum(1) + start[tags[:, 0]] * mask[:, 0]
    if tags.shape[1] > 1:
        steps = transitions[tags[:, :-1], tags[:, 1:]] * mask[:, 1:]
        score = score + steps.sum(1)
    last = tags.gather(1, (lengths - 1).clamp(min=0)[:, None]).squeeze(1)
    return score + end[last] * (lengths > 0)


def log_partition(emissions, mask, transitions, start, end) -> torch.Tensor:
    """log of the sum over all tag paths of exp(score) (B,), by the forward algorithm."""
    alpha = start + emissions[:, 0]  # (B, C)
    for w in range(1, emissions.shape[1]):
        step = torch.logsumexp(alpha[:, :, None] + transitions + emissions[:, w, None, :], dim=1)
        alpha = torch.where(mask[:, w, None], step, alpha)
    return torch.logsumexp(alpha + end, dim=1) * (mask[:, 0] > 0)


def viterbi(emissions, mask, transitions, start, end) -> torch.Tensor:
    """The best tag path of each sequence (B, W); positions past a sequence's end get 0."""
    batch, words, _ = emissions.shape
    score = start + emissions[:, 0]
    backpointers = []
    for w in range(1, words):
        candidates = score[:, :, None] + transitions  # (B, previous, next)
        best, best_previous = candidates.max(dim=1)
        backpointers.append(best_previous)
        score = torch.where(mask[:, w, None], best + emissions[:, w], score)
    score = score + end
    lengths = mask.sum(1).long()
    paths = torch.zeros(batch, words, dtype=torch.long, device=emissions.device)
    current = score.argmax(1)
    for w in range(words - 1, -1, -1):
        inside = w < lengths  # position w belongs to the sequence
        paths[:, w] = torch.where(inside, current, paths[:, w])
        if w > 0:
            previous = backpointers[w - 1].gather(1, current[:, None]).squeeze(1)
            # only step back from inside the sequence; past its end keep the last tag
            current = torch.where(inside, previous, current)
    return paths
