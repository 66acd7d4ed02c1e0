"""`model.head=linear`: the classifier's logits are the tags' scores, trained by cross-entropy
over the labelled subwords, as `*ForTokenClassification` trains.

Decoding (`model.decode`): `argmax` per word, or `constrained`: Viterbi over the words'
log-probabilities with the IOB2 transitions that cannot occur forbidden (a CRF's decoding
without its training). It holds no parameters: with argmax decoding the export is the family's
`*ForTokenClassification` exactly.
"""

import torch
import torch.nn.functional as F
from torch import nn

from bert_pos.data.labels import IGNORE_INDEX
from bert_pos.modeling.heads.paths import allowed_transitions, transition_penalties, viterbi
from bert_pos.modeling.words import at_word_starts, word_emissions


class LinearHead(nn.Module):
    module_name = "linear_head"  # no parameters: nothing of it in checkpoints

    def __init__(self, num_labels: int, label_names: list[str] | None, decode: str):
        super().__init__()
        self.decoding = decode
        if decode == "constrained":
            if label_names is None:
                raise ValueError("decode=constrained needs the label names")
            allowed, allowed_start = allowed_transitions(label_names)
            transition_penalty, start_penalty = transition_penalties(allowed, allowed_start)
            self.register_buffer("transition_penalty", transition_penalty, persistent=False)
            self.register_buffer("start_penalty", start_penalty, persistent=False)

    def loss_sum(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        return F.cross_entropy(
            logits.float().flatten(0, 1),
            batch["labels"].flatten(),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        )

    @torch.no_grad()
    def decode_words(self, logits: torch.Tensor, word_starts: torch.Tensor) -> torch.Tensor:
        argmax = at_word_starts(logits, word_starts).argmax(-1)
        if self.decoding == "argmax":
            return argmax
        emissions, _, mask, positions = word_emissions(
            logits, word_starts, None, return_positions=True
        )
        paths = viterbi(
            emissions.log_softmax(-1),
            mask,
            self.transition_penalty,
            self.start_penalty,
            torch.zeros_like(self.start_penalty),
        )
        decoded = argmax.clone()
        decoded.scatter_(1, positions, torch.where(mask, paths, decoded.gather(1, positions)))
        return decoded
