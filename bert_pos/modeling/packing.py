"""Padding-free (packed) batches: the encoder runs on a batch's real tokens only.

A padded batch (B, T) costs every layer B * T positions of projections, feed-forward and
attention, however few of them are real tokens. With `model.padding_free` the tagger packs
the real tokens of the batch into one sequence (1, N), N = the batch's real tokens, with the
position ids restarting at each sentence, runs the encoder on it with attention restricted to
each sentence (variable-length attention: the sentences' boundaries in `cu_seqlens`), and
scatters the hidden states back to (B, T, H); pooling, the head, the CRF, the loss and decoding
see the usual padded layout and are unchanged. Same loss, gradients and predictions as the
padded batch, within float rounding.

What it buys: on a GPU no FLOPs are spent on padding, a saving that grows with the batch size
and with the spread of lengths inside a batch (length-grouped batches already shrink it). On
the CPU it is a correctness fallback, not a speed-up: attention runs re-padded there (below),
only the projections and feed-forward layers skip the padding, and the packing adds copies.

How attention learns the boundaries: the encoder's attention implementation becomes
`bert_pos_varlen`, registered below in transformers' `AttentionInterface`. BERT-family layers
forward the encoder call's keyword arguments to the attention function, so the packed call
passes `cu_seq_lens_q/k` and `max_length_q/k` (transformers' names for variable-length
attention) and `attention_mask=None`. The mask builder registered for the implementation
(`varlen_mask`) builds no mask for such a call: the sentence boundaries travel as
`cu_seq_lens`. The attention function runs
- `torch.nn.attention.varlen.varlen_attn` (flash attention over the packed sequence) on CUDA
  GPUs of compute capability 8.0 or more, in fp16/bf16 (bf16 autocast included), for head
  dimensions flash attention takes (a multiple of 8, at most 256), without attention dropout
  (varlen_attn has none: in training with attention dropout the fallback runs);
- otherwise an exact fallback: queries, keys and values re-padded per sentence to
  (B, heads, max_seqlen, D) for scaled-dot-product attention with a key-padding mask, the
  padded model's attention itself (dropout included), between padding-free projections.
A call without those arguments is plain SDPA with SDPA's mask, so an encoder switched to this
implementation still runs padded batches correctly.

Why not transformers' own packed sequences: since 5.25, BERT-family encoders called with
`attention_mask=None` and position ids that restart build a block-diagonal mask over the
whole packed sequence (`masking_utils.find_packed_sequence_indices`). That is exact, but it is
one (N, N) mask for N = the batch's real tokens: attention then costs N^2 per head instead of
the sum of the sentences' squared lengths, and SDPA with an arbitrary mask cannot take the
flash kernel on a GPU (its own varlen path, `flash_attention_2`, needs the flash-attn
package). experiments/packed_attention.py measures both on CPU.

Families: BERT, RoBERTa, XLM-R, CamemBERT, ELECTRA and DistilBERT (absolute position
embeddings, attention through the registry). DeBERTa and ModernBERT are refused (see
`REFUSED`). Rows must be right-padded (masks are prefixes), as `PaddingCollator` makes them.
"""

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from bert_pos.modeling import encoders

try:  # torch >= 2.9 (flash attention over packed sequences, CUDA)
    from torch.nn.attention.varlen import varlen_attn
except ImportError:  # older torch: the exact fallback below runs everywhere
    varlen_attn = None

VARLEN_ATTENTION = "bert_pos_varlen"

# Families whose encoders pack exactly: absolute position embeddings taken from explicit
# position ids, and every attention layer dispatching through transformers' registry.
SUPPORTED = {"bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert"}
REFUSED = {
    "deberta-v2": "its disentangled relative-position attention runs eager, outside the "
    "attention registry, over the whole (packed) sequence",
    "modernbert": "its rotary positions and sliding-window local attention would span "
    "sentence boundaries in a packed sequence",
}


def check_family(config) -> None:
    """Raise a one-line ValueError where packing cannot be exact for the config's family."""
    family = config.model_type
    if family in SUPPORTED:
        return
    reason = REFUSED.get(family, "packing is not implemented for it")
    raise ValueError(
        f"model.padding_free=true does not support {family} encoders: {reason}; "
        f"supported: {', '.join(sorted(SUPPORTED))}"
    )


def use_varlen_attention(encoder: nn.Module) -> None:
    """Switch the encoder (all its layers read this config) to `bert_pos_varlen`. The
    implementation is not saved with the config: an export loads and runs padded."""
    encoder.config._attn_implementation = VARLEN_ATTENTION


# ---------------------------------------------------------------- packing


@dataclass
class PackedBatch:
    """A padded batch's real tokens as one sequence, and how to put them back."""

    input_ids: torch.Tensor  # (1, N) the real tokens, sentence after sentence
    position_ids: torch.Tensor  # (1, N) each token's position in its sentence (+ the offset)
    cu_seqlens: torch.Tensor  # (B + 1,) int32: sentence b is tokens cu_seqlens[b]:[b + 1]
    max_seqlen: int  # the longest sentence
    flat_index: torch.Tensor  # (N,) each token's place in the flattened (B * T) batch
    batch_size: int
    length: int  # T, the padded length

    def attention_kwargs(self) -> dict:
        """What the encoder call forwards to `bert_pos_varlen` (transformers' kwarg names)."""
        return {
            "cu_seq_lens_q": self.cu_seqlens,
            "cu_seq_lens_k": self.cu_seqlens,
            "max_length_q": self.max_seqlen,
            "max_length_k": self.max_seqlen,
        }


def pack(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, position_offset: int = 0
) -> PackedBatch:
    """Pack the real tokens of right-padded rows (B, T). `position_offset`: the family's first
    position id (RoBERTa-style encoders count from padding_idx + 1)."""
    batch_size, length = input_ids.shape
    real = attention_mask.bool()
    if bool((real[:, 1:] & ~real[:, :-1]).any()):
        raise ValueError("padding-free batches need right-padded rows (prefix attention masks)")
    flat_index = real.flatten().nonzero().squeeze(1)  # row-major: sentences in order
    lengths = real.sum(1)
    cu_seqlens = F.pad(lengths.cumsum(0), (1, 0)).to(torch.int32)
    columns = torch.arange(length, device=input_ids.device) + position_offset
    return PackedBatch(
        input_ids=input_ids.flatten()[flat_index][None],
        position_ids=columns.expand(batch_size, length).flatten()[flat_index][None],
        cu_seqlens=cu_seqlens,
        max_seqlen=int(lengths.max()),
        flat_index=flat_index,
        batch_size=batch_size,
        length=length,
    )


def unpack(packed_states: torch.Tensor, packed: PackedBatch) -> torch.Tensor:
    """(1, N, H) -> (B, T, H), zeros at the padded positions."""
    width = packed_states.shape[-1]
    padded = packed_states.new_zeros(packed.batch_size * packed.length, width)
    padded = padded.index_copy(0, packed.flat_index, packed_states[0])
    return padded.view(packed.batch_size, packed.length, width)


def position_offset(config) -> int:
    """The position id of a sentence's first token: padding_idx + 1 for RoBERTa-style
    families (create_position_ids_from_input_ids), 0 for the others."""
    return config.pad_token_id + 1 if config.model_type in encoders.OFFSET_POSITIONS else 0


def takes_token_type_ids(encoder: nn.Module) -> bool:
    return "token_type_ids" in inspect.signature(encoder.forward).parameters


def encode_packed(
    encoder: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """The encoder's last hidden states (B, T, H) of a padded batch, computed packed. The
    position ids are explicit (the defaults count up to N, which may exceed
    max_position_embeddings), and so are the token type ids, all 0 as in the padded call
    (transformers 4 sliced its buffered default to N; 5 gathers it at the position ids)."""
    packed = pack(input_ids, attention_mask, position_offset(encoder.config))
    inputs = {
        "input_ids": packed.input_ids,
        "attention_mask": None,
        "position_ids": packed.position_ids,
    }
    if takes_token_type_ids(encoder):
        inputs["token_type_ids"] = torch.zeros_like(packed.input_ids)
    hidden = encoder(**inputs, **packed.attention_kwargs()).last_hidden_state
    return unpack(hidden, packed)


# ---------------------------------------------------------------- attention


def varlen_kernel_runs(query: torch.Tensor, dropout: float) -> bool:
    """Can torch's varlen_attn (flash attention) compute this call exactly?"""
    head_dim = query.shape[-1]
    return (
        varlen_attn is not None
        and query.is_cuda
        and dropout == 0.0
        and query.dtype in (torch.float16, torch.bfloat16)
        and head_dim % 8 == 0
        and head_dim <= 256
        and torch.cuda.get_device_capability(query.device) >= (8, 0)
    )


def repadded_attention(query, key, value, cu_seqlens, max_seqlen, dropout, scaling):
    """Attention within each sentence of a packed (1, heads, N, D) call, by re-padding the
    sentences to (B, heads, max_seqlen, D) for SDPA with a key-padding mask: exact wherever
    it runs, dropout included. Returns (1, N, heads, D)."""
    _, heads, total, dim = query.shape
    batch_size = cu_seqlens.numel() - 1
    lengths = cu_seqlens.diff().long()
    sentence = torch.repeat_interleave(
        torch.arange(batch_size, device=query.device), lengths, output_size=total
    )
    position = torch.arange(total, device=query.device) - cu_seqlens.long()[sentence]
    slot = sentence * max_seqlen + position  # each token's row in the re-padded layout

    def repad(packed):  # (1, heads, N, D) -> (B, heads, max_seqlen, D)
        rows = packed.new_zeros(batch_size * max_seqlen, heads, dim)
        rows = rows.index_copy(0, slot, packed[0].transpose(0, 1))
        return rows.view(batch_size, max_seqlen, heads, dim).transpose(1, 2)

    keys_inside = torch.arange(max_seqlen, device=query.device) < lengths[:, None]
    output = F.scaled_dot_product_attention(
        repad(query),
        repad(key),
        repad(value),
        attn_mask=keys_inside[:, None, None, :],
        dropout_p=dropout,
        scale=scaling,
    )
    output = output.transpose(1, 2).reshape(batch_size * max_seqlen, heads, dim)
    return output[slot][None]


def varlen_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
):
    """transformers' attention-function interface: query, key, value (B, heads, T, D) in,
    ((B, T, heads, D), no weights) out. Packed calls bring `cu_seq_lens_q` and `max_length_q`."""
    cu_seqlens = kwargs.get("cu_seq_lens_q")
    if cu_seqlens is None:  # an ordinary padded call
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if attention_mask is not None or query.shape[0] != 1:
        raise ValueError("a packed attention call takes one sequence (1, heads, N, D) and no mask")
    max_seqlen = kwargs["max_length_q"]
    if varlen_kernel_runs(query, dropout):
        # (1, heads, N, D) -> (N, heads, D): the projections' own layout, so no copy
        packed = [tensor[0].transpose(0, 1).contiguous() for tensor in (query, key, value)]
        output = varlen_attn(*packed, cu_seqlens, cu_seqlens, max_seqlen, max_seqlen, scale=scaling)
        return output[None], None
    return repadded_attention(query, key, value, cu_seqlens, max_seqlen, dropout, scaling), None


def varlen_mask(*, attention_mask: torch.Tensor | None = None, **kwargs) -> torch.Tensor | None:
    """transformers' mask-builder interface for `bert_pos_varlen`: SDPA's mask for a padded
    call, none for a call without a padding mask. A packed call has none, and transformers
    >= 5.25 would otherwise build its (N, N) block-diagonal mask from the restarting position
    ids; an unpadded call without a mask needs none either (SDPA's builder returns None there)."""
    if attention_mask is None:
        return None
    return sdpa_mask(attention_mask=attention_mask, **kwargs)


AttentionInterface.register(VARLEN_ATTENTION, varlen_attention_forward)
AttentionMaskInterface.register(VARLEN_ATTENTION, varlen_mask)
