"""From subwords to words: each word's vector pooled from its subwords, the rows at each word's
first subword, and a word sequence compacted to a prefix (CRF emissions)."""

import torch

from bert_pos.data.labels import IGNORE_INDEX


def compact(
    values: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Move each row's masked-in entries to its front, keeping their order: CRF sequences
    must be prefixes, but a word without subwords (or an unlabelled one) can sit in between.
    Returns (values, prefix mask, positions) where positions[b, k] is the original index."""
    order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices
    index = order.view(*order.shape, *([1] * (values.dim() - 2))).expand_as(values)
    return values.gather(1, index), mask.gather(1, order), order


def pool_words(hidden: torch.Tensor, word_index: torch.Tensor, pooling: str) -> torch.Tensor:
    """Each subword of a word gets the word's pooled vector: the mean of its subwords, or its
    first and last subwords concatenated; subwords of no word keep their own (doubled for
    first_last, so every position has the head's width)."""
    batch, length, width = hidden.shape
    valid = word_index >= 0
    words = int(word_index.max().clamp(min=0)) + 1
    flat = torch.arange(batch, device=hidden.device)[:, None] * words + word_index.clamp(
        min=0
    )  # (B, T) row-wise word slot
    if pooling == "mean":
        sums = hidden.new_zeros(batch * words, width).index_add_(0, flat[valid], hidden[valid])
        counts = hidden.new_zeros(batch * words).index_add_(
            0, flat[valid], hidden.new_ones(int(valid.sum()))
        )
        pooled = sums / counts.clamp(min=1)[:, None]
        return torch.where(valid[..., None], pooled[flat], hidden)
    positions = torch.arange(length, device=hidden.device).expand(batch, length)
    first = torch.full((batch * words,), length, device=hidden.device, dtype=torch.long)
    last = torch.full((batch * words,), -1, device=hidden.device, dtype=torch.long)
    first = first.scatter_reduce(0, flat[valid], positions[valid], "amin")
    last = last.scatter_reduce(0, flat[valid], positions[valid], "amax")
    first_of = torch.where(valid, first[flat], positions)  # (B, T)
    last_of = torch.where(valid, last[flat], positions)

    def at(index):
        return hidden.gather(1, index[..., None].expand(-1, -1, width))

    return torch.cat([at(first_of), at(last_of)], dim=-1)


def at_word_starts(values: torch.Tensor, word_starts: torch.Tensor) -> torch.Tensor:
    """The rows of `values` (B, T, C) at each word's first subword (B, W): (B, W, C). Padding
    words and words without subwords (start -1) read position 0; callers mask them."""
    index = word_starts.clamp(min=0)[..., None].expand(-1, -1, values.shape[-1])
    return values.gather(1, index)


def word_emissions(logits, word_starts, word_labels=None, return_positions=False):
    """The logits at each word's first subword as CRF emissions (B, W, C), float32, with the
    words that have a subword (and a label, when labels are given) moved to the front."""
    valid = word_starts >= 0
    if word_labels is not None:
        valid &= word_labels != IGNORE_INDEX
    emissions = at_word_starts(logits.float(), word_starts)
    emissions, mask, positions = compact(emissions, valid)
    tags = None if word_labels is None else word_labels.gather(1, positions)
    if return_positions:
        return emissions, tags, mask, positions
    return emissions, tags, mask
