"""`model.head=crf`: a linear-chain CRF over each sentence's words, trained by its likelihood
and decoded by Viterbi, with IOB2 transitions that cannot occur (I-X after O or B-Y) forbidden.

Its export holds `crf.transitions`, `crf.start` and `crf.end` beside the classifier: a
checkpoint only bert_pos runs (the Hugging Face class would ignore them).
"""

import torch
from torch import nn

from bert_pos.modeling.heads.paths import (
    allowed_transitions,
    log_partition,
    path_score,
    transition_penalties,
    viterbi,
)
from bert_pos.modeling.words import at_word_starts, word_emissions


class LinearChainCRF(nn.Module):
    """A linear-chain CRF over word emissions (B, W, C) with a prefix mask (B, W): learned
    transition, start and end scores, plus a fixed penalty on forbidden transitions."""

    def __init__(self, num_labels: int, allowed: torch.Tensor, allowed_start: torch.Tensor):
        super().__init__()
        self.transitions = nn.Parameter(torch.zeros(num_labels, num_labels))
        self.start = nn.Parameter(torch.zeros(num_labels))
        self.end = nn.Parameter(torch.zeros(num_labels))
        transition_penalty, start_penalty = transition_penalties(allowed, allowed_start)
        self.register_buffer("transition_penalty", transition_penalty, persistent=False)
        self.register_buffer("start_penalty", start_penalty, persistent=False)

    def scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            self.transitions + self.transition_penalty,
            self.start + self.start_penalty,
            self.end,
        )

    def log_likelihood(self, emissions, tags, mask) -> torch.Tensor:
        """log p(tags | emissions) per sequence (B,); sequences of length 0 give 0."""
        return path_score(emissions, tags, mask, *self.scores()) - log_partition(
            emissions, mask, *self.scores()
        )

    def decode(self, emissions, mask) -> torch.Tensor:
        return viterbi(emissions, mask, *self.scores())


class CRFHead(LinearChainCRF):
    """The CRF as a tagger's head: the negative log-likelihood of each example's gold word
    tags as its loss; the best path as its decoding (`model.decode` does not apply)."""

    module_name = "crf"  # its parameters' prefix in checkpoints and exports

    def __init__(self, num_labels: int, label_names: list[str] | None, decode: str):
        if label_names is None:
            raise ValueError("head=crf needs the label names")
        super().__init__(num_labels, *allowed_transitions(label_names))

    def loss_sum(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        emissions, tags, mask = word_emissions(logits, batch["word_starts"], batch["word_labels"])
        return -self.log_likelihood(emissions, tags, mask).sum()

    @torch.no_grad()
    def decode_words(self, logits: torch.Tensor, word_starts: torch.Tensor) -> torch.Tensor:
        argmax = at_word_starts(logits, word_starts).argmax(-1)
        emissions, _, mask, positions = word_emissions(
            logits, word_starts, None, return_positions=True
        )
        paths = self.decode(emissions, mask)
        decoded = argmax.clone()
        decoded.scatter_(1, positions, torch.where(mask, paths, decoded.gather(1, positions)))
        return decoded
