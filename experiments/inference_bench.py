"""Tagging speed, memory and test F1 of one trained tagger run several ways, on CoNLL-2003's
test sentences: the Hugging Face pipeline (its best batch size of 1, 8, 32, 64), bert_pos in
fp32, bert_pos in fp32 with its encoder compiled (`compile=true`: torch.compile, weights
frozen), torch with dynamic int8 (`torch.ao.quantization.quantize_dynamic` on every nn.Linear, a
weight scale per output channel), ONNX Runtime fp32 and ONNX Runtime int8 (the folders
`python -m bert_pos.export format=onnx [quantize=int8]` writes, exported first, each in its
own process), and bert_pos under bf16 autocast on CPUs that compute bf16 natively.

    python experiments/inference_bench.py MODEL_DIR ../shared/data/conll2003/test.txt

MODEL_DIR is an exported tagger (`<run>/model`). Each way runs in its own process (peak
resident memory is that process's), after one warm-up pass over 256 sentences (timed: it holds
the compile); words/s
counts the test words over the tagging alone (the model loaded, the words given), bert_pos
ways in length-sorted batches of 64. Each way tags the test set three times and the fastest
pass counts (all three are printed): the machine's speed varies between passes. F1 is
seqeval's default (conlleval) over each word's tag; the pipeline is run on the words joined
by spaces, with `aggregation_strategy="first"` (each word's tag from its first subword, as
bert_pos tags), and each way's entities are compared with bert_pos fp32's character for
character ("identical sentences").
"""

import json
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

BATCH = 64
PASSES = 3  # timed passes over the test set per way; the fastest counts
WAYS = (
    "pipeline",
    "bert_pos fp32",
    "bert_pos fp32 compiled",
    "torch int8",
    "onnxruntime fp32",
    "onnxruntime int8",
)
if torch.ops.mkldnn._is_mkldnn_bf16_supported():  # elsewhere bf16 is emulated, 10-40x slower
    WAYS += ("bert_pos bf16",)


def test_sentences(path: str):
    from bert_pos.data.conll import read_conll

    sentences = read_conll(Path(path), label_column=3, label_names=None)
    return [s.words for s in sentences], [s.labels for s in sentences]


def f1(gold, predicted) -> float:
    from seqeval.metrics import f1_score

    return f1_score(gold, predicted)


def fastest_of(passes: int, work):
    """Seconds of each of `passes` runs of `work` (the machine's speed varies from run to
    run; the fastest pass is the least disturbed), and the last run's result."""
    seconds = []
    for _ in range(passes):
        started = time.perf_counter()
        result = work()
        seconds.append(time.perf_counter() - started)
    return seconds, result


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bert_pos_way(way: str, model_dir: str, words, gold) -> dict:
    from bert_pos.inference.loading import load_trained
    from bert_pos.inference.predict_run import compile_encoder
    from bert_pos.inference.tagging import entity_spans, tag_sentences

    trained = load_trained(model_dir)  # ONNX Runtime ways: the folder the export wrote
    if way == "torch int8":  # per-channel weight scales, as the ONNX int8 export
        trained.model = torch.ao.quantization.quantize_dynamic(
            trained.model,
            {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig},
            dtype=torch.qint8,
        )
    if way.endswith("compiled"):
        compile_encoder(trained.model)

    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16) if way.endswith("bf16") else nullcontext()
    )

    def tag(sentences):
        return tag_sentences(
            trained.model,
            trained.tokenizer,
            sentences,
            trained.label_names,
            BATCH,
            torch.device("cpu"),
            autocast,
        )

    warm_up, _ = fastest_of(1, lambda: tag(words[:256]))
    seconds, tagged = fastest_of(PASSES, lambda: tag(words))
    predicted = [[t for t, _ in sentence] for sentence in tagged]
    spans = []
    for sentence, sentence_tags in zip(words, tagged, strict=True):
        text, offsets, position = " ".join(sentence), [], 0
        for word in sentence:
            offsets.append((word, position, position + len(word)))
            position += len(word) + 1
        spans.append(
            [(e["type"], e["start"], e["end"]) for e in entity_spans(text, offsets, sentence_tags)]
        )
    return {
        "way": way,
        "warm_up_s": warm_up[0],
        "words_per_s": [sum(map(len, words)) / s for s in seconds],
        "f1": f1(gold, predicted),
        "peak_mb": peak_mb(),
        "spans": spans,
    }


def pipeline_way(model_dir: str, words, gold) -> dict:
    from transformers import pipeline

    tagger = pipeline(
        "token-classification", model=model_dir, aggregation_strategy="first", device="cpu"
    )
    texts = [" ".join(sentence) for sentence in words]
    warm_up, _ = fastest_of(1, lambda: tagger(texts[:256], batch_size=8))
    best = None
    for batch_size in (1, 8, 32, 64):
        started = time.perf_counter()
        tagger(texts, batch_size=batch_size)
        seconds = time.perf_counter() - started
        if best is None or seconds < best[1]:
            best = (batch_size, seconds)
    batch_size = best[0]
    seconds, found = fastest_of(PASSES, lambda: tagger(texts, batch_size=batch_size))
    spans = [[(e["entity_group"], e["start"], e["end"]) for e in entities] for entities in found]
    predicted = []
    for sentence, sentence_spans in zip(words, spans, strict=True):
        # the word of each character (the pipeline groups some words differently: an entity
        # may start or end inside one of ours, e.g. in "2-1"; it covers the words it touches)
        word_at = [i for i, word in enumerate(sentence) for _ in range(len(word) + 1)]
        tags = ["O"] * len(sentence)
        for kind, start, end in sentence_spans:
            first, last = word_at[start], word_at[end - 1]
            tags[first : last + 1] = [f"B-{kind}"] + [f"I-{kind}"] * (last - first)
        predicted.append(tags)
    return {
        "way": f"pipeline (batch {batch_size})",
        "warm_up_s": warm_up[0],
        "words_per_s": [sum(map(len, words)) / s for s in seconds],
        "f1": f1(gold, predicted),
        "peak_mb": peak_mb(),
        "spans": spans,
    }


def one_way(way: str, model_dir: str, test_file: str) -> None:
    torch.set_num_threads(torch.get_num_threads())
    words, gold = test_sentences(test_file)
    if way == "pipeline":
        result = pipeline_way(model_dir, words, gold)
    else:
        result = bert_pos_way(way, model_dir, words, gold)
    print(json.dumps(result))


def main(model_dir: str, test_file: str) -> None:
    print(
        f"CPU capability: {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads"
    )
    scratch = Path(tempfile.mkdtemp())
    folders = {"onnxruntime fp32": scratch / "fp32", "onnxruntime int8": scratch / "int8"}
    for way, folder in folders.items():  # exported apart: their runs load the folder alone
        quantize = "int8" if way.endswith("int8") else "none"
        subprocess.run(
            [sys.executable, "-m", "bert_pos.export", f"run_dir={model_dir}", "format=onnx"]
            + [f"quantize={quantize}", f"output={folder}"],
            capture_output=True,
            check=True,
        )
    results = []
    for way in WAYS:
        done = subprocess.run(
            [sys.executable, __file__, "--way", way, str(folders.get(way, model_dir)), test_file],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"{way} failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    reference = results[1]["spans"]
    fp32 = max(results[1]["words_per_s"])
    print(
        "| way | words/s, fastest pass (all passes) | × bert_pos fp32 | test F1 (word tags) "
        "| identical sentences | peak RSS (MB) | warm-up (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for result in results:
        same = sum(a == b for a, b in zip(result["spans"], reference, strict=True))
        speeds = result["words_per_s"]
        print(
            f"| {result['way']} | {max(speeds):,.0f} ({', '.join(f'{v:,.0f}' for v in speeds)}) "
            f"| {max(speeds) / fp32:.2f} | {result['f1']:.4f} | {same}/{len(reference)} "
            f"| {result['peak_mb']:,.0f} | {result['warm_up_s']:.1f} |"
        )


if __name__ == "__main__":
    if sys.argv[1] == "--way":
        one_way(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main(sys.argv[1], sys.argv[2])
