"""How much faster can one fp32 tagger be than another running the same model on this CPU?

The floating-point operations the encoder spends on a file's sentences in length-sorted
batches (bert_pos's evaluation and predict) and in file-order batches padded to their longest
sentence (the Hugging Face Trainer's evaluation, the `pipeline`), the encoder's measured speed
on each, and the CPU's own fp32 matrix-multiply speed. Sorting removes padding, so it divides
the work by the ratio of the two FLOP counts; beyond that, one side is only faster if it runs
more FLOP/s, and no side runs more than the matrix multiplies do.

    python experiments/flop_ceiling.py MODEL_DIR ../shared/data/conll2003/validation.txt --batch 8
    python experiments/flop_ceiling.py MODEL_DIR ../shared/data/conll2003/test.txt --batch 64 \
        --file-order-batch 8

MODEL_DIR: a model folder `AutoModel` loads (an exported tagger, `<run>/model`: its encoder).
FLOPs are counted by `torch.utils.flop_counter` (the matrix multiplies: projections,
feed-forward layers, the attention products and the pooler) over the real batches; each
timing is the fastest of three passes (all printed), fp32, inference mode. The
matrix-multiply peak is `torch.mm` at 4096^3 and at the encoder's own shapes.
"""

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bert_pos.data.batching import length_sorted_batches  # noqa: E402
from bert_pos.data.conll import read_conll  # noqa: E402
from bert_pos.runtime.devices import cpu_description  # noqa: E402


def fastest_of(passes: int, function) -> list[float]:
    seconds = []
    for _ in range(passes):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return seconds


def matmul_speeds(hidden: int, intermediate: int) -> dict[str, float]:
    """GFLOP/s of fp32 `a @ b` for (rows, inner, outer) shapes: a large square one, and the
    encoder's projections and feed-forward layers at 160 rows (a batch of 8 short sentences)
    and 2,048 rows."""
    shapes = [(4096, 4096, 4096)]
    for rows in (160, 2048):
        shapes += [
            (rows, hidden, hidden),
            (rows, hidden, intermediate),
            (rows, intermediate, hidden),
        ]
    speeds = {}
    for rows, inner, outer in shapes:
        left, right = torch.randn(rows, inner), torch.randn(inner, outer)
        repeats = max(1, int(2e10 / (2 * rows * inner * outer)))  # about 20 GFLOP per pass

        def multiply(left=left, right=right, repeats=repeats):
            for _ in range(repeats):
                left @ right

        multiply()
        best = min(fastest_of(5, multiply)) / repeats
        speeds[f"{rows}x{inner}x{outer}"] = 2 * rows * inner * outer / best / 1e9
    return speeds


def padded_batches(token_ids: list[list[int]], groups: list[list[int]]):
    """(input_ids, attention_mask) of each group of sentences, padded to its longest."""
    batches = []
    for group in groups:
        rows = [token_ids[i] for i in group]
        input_ids = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for row, ids in enumerate(rows):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
        batches.append((input_ids, attention_mask))
    return batches


def file_order_batches(count: int, batch_size: int) -> list[list[int]]:
    return [
        list(range(start, min(start + batch_size, count))) for start in range(0, count, batch_size)
    ]


def measure(encoder, batches) -> tuple[float, list[float]]:
    """The batches' GFLOP and the seconds of three passes over them. The FLOPs are counted
    with eager attention (its products are matrix multiplies the counter sees; the CPU's fused
    attention kernel it does not count), the time with the encoder's own attention."""

    def run_all():
        for input_ids, attention_mask in batches:
            encoder(input_ids=input_ids, attention_mask=attention_mask)

    attention = encoder.config._attn_implementation
    with torch.inference_mode():
        encoder.set_attn_implementation("eager")
        counter = FlopCounterMode(display=False)
        with counter:
            run_all()
        encoder.set_attn_implementation(attention)
        return counter.get_total_flops() / 1e9, fastest_of(3, run_all)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("conll_file")
    parser.add_argument("--batch", type=int, default=8, help="length-sorted batches of this size")
    parser.add_argument("--file-order-batch", type=int, default=None, help="default: --batch")
    args = parser.parse_args()
    from transformers import AutoModel, AutoTokenizer

    print(f"CPU: {cpu_description()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    encoder = AutoModel.from_pretrained(args.model_dir).eval()
    for shape, speed in matmul_speeds(
        encoder.config.hidden_size, encoder.config.intermediate_size
    ).items():
        print(f"torch.mm {shape}: {speed:.0f} GFLOP/s")

    sentences = read_conll(args.conll_file, label_column=-1, label_names=None)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    token_ids = [
        tokenizer(sentence.words, is_split_into_words=True)["input_ids"] for sentence in sentences
    ]
    tokens, words = sum(map(len, token_ids)), sum(len(sentence.words) for sentence in sentences)
    print(
        f"{Path(args.conll_file).name}: {len(sentences)} sentences, {words} words, {tokens} tokens"
    )
    lengths, file_order_batch = list(map(len, token_ids)), args.file_order_batch or args.batch
    ways = [  # bert_pos's evaluation and predict group sentences as length_sorted_batches does
        (f"length-sorted batches of {args.batch}", length_sorted_batches(lengths, args.batch)),
        (
            f"file-order batches of {file_order_batch}",
            file_order_batches(len(token_ids), file_order_batch),
        ),
    ]
    for name, groups in ways:
        gflop, seconds = measure(encoder, padded_batches(token_ids, groups))
        best = min(seconds)
        print(
            f"{name}: {gflop:.1f} GFLOP; passes {', '.join(f'{s:.2f}' for s in seconds)} s; "
            f"{gflop / best:.0f} GFLOP/s, {tokens / best:.0f} tokens/s, {words / best:.0f} words/s"
        )


if __name__ == "__main__":
    main()
