"""Tagging speed, memory and test F1 of one trained tagger run five ways, on CoNLL-2003's test
sentences: the Hugging Face pipeline (its best batch size), bert_pos predict in fp32, torch
with dynamic int8, ONNX Runtime fp32 and ONNX Runtime int8.

    python experiments/inference_bench.py MODEL_DIR ../shared/data/conll2003/test.txt

MODEL_DIR is an exported tagger (`<run>/model`). Each way runs in its own process (peak
resident memory is that process's), after one warm-up pass over 256 sentences; words/s
counts the test words over the tagging alone (the model loaded, the words given). F1 is
seqeval's default (conlleval) over each word's tag; the pipeline is run on the words joined
by spaces, with `aggregation_strategy="first"` (each word's tag from its first subword, as
bert_pos tags), and its entities are compared with bert_pos's character for character.
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
WAYS = ("pipeline", "bert_pos fp32", "torch int8", "onnxruntime fp32", "onnxruntime int8")


def test_sentences(path: str):
    from bert_pos.data.conll import read_conll

    sentences = read_conll(Path(path), label_column=3, label_names=None)
    return [s.words for s in sentences], [s.labels for s in sentences]


def f1(gold, predicted) -> float:
    from seqeval.metrics import f1_score

    return f1_score(gold, predicted)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bert_pos_way(way: str, model_dir: str, words, gold) -> dict:
    from bert_pos.inference.loading import load_trained
    from bert_pos.inference.onnx_model import export_onnx
    from bert_pos.inference.tagging import entity_spans, tag_sentences

    scratch = tempfile.mkdtemp()
    if way.startswith("onnxruntime"):
        quantize = "int8" if way.endswith("int8") else "none"
        exported = export_onnx(load_trained(model_dir), Path(scratch) / "onnx", quantize)
        trained = load_trained(exported)
    else:
        trained = load_trained(model_dir)
        if way == "torch int8":
            trained.model = torch.ao.quantization.quantize_dynamic(
                trained.model, {torch.nn.Linear}, dtype=torch.qint8
            )

    def tag(sentences):
        return tag_sentences(
            trained.model,
            trained.tokenizer,
            sentences,
            trained.label_names,
            BATCH,
            torch.device("cpu"),
            nullcontext(),
        )

    tag(words[:256])  # warm-up
    started = time.perf_counter()
    tagged = tag(words)
    seconds = time.perf_counter() - started
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
        "words_per_s": sum(map(len, words)) / seconds,
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
    tagger(texts[:256], batch_size=8)  # warm-up
    best = None
    for batch_size in (1, 8, 32, 64):
        started = time.perf_counter()
        found = tagger(texts, batch_size=batch_size)
        seconds = time.perf_counter() - started
        if best is None or seconds < best[1]:
            best = (batch_size, seconds, found)
    batch_size, seconds, found = best
    spans = [[(e["entity_group"], e["start"], e["end"]) for e in entities] for entities in found]
    predicted = []
    for sentence, sentence_spans in zip(words, spans, strict=True):
        starts, position = {}, 0
        for i, word in enumerate(sentence):
            starts[position] = i
            position += len(word) + 1
        ends = {start + len(sentence[i]): i for start, i in starts.items()}
        tags = ["O"] * len(sentence)
        for kind, start, end in sentence_spans:
            first, last = starts[start], ends[end]
            tags[first : last + 1] = [f"B-{kind}"] + [f"I-{kind}"] * (last - first)
        predicted.append(tags)
    return {
        "way": f"pipeline (batch {batch_size})",
        "words_per_s": sum(map(len, words)) / seconds,
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
    results = []
    for way in WAYS:
        done = subprocess.run(
            [sys.executable, __file__, "--way", way, model_dir, test_file],
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    reference = results[1]["spans"]
    print(
        "| way | words/s | × bert_pos fp32 | test F1 (word tags) | identical sentences | peak RSS (MB) |"
    )
    print("|---|---|---|---|---|---|")
    for result in results:
        same = sum(a == b for a, b in zip(result["spans"], reference, strict=True))
        print(
            f"| {result['way']} | {result['words_per_s']:,.0f} | "
            f"{result['words_per_s'] / results[1]['words_per_s']:.2f} | {result['f1']:.4f} | "
            f"{same}/{len(reference)} | {result['peak_mb']:,.0f} |"
        )


if __name__ == "__main__":
    if sys.argv[1] == "--way":
        one_way(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main(sys.argv[1], sys.argv[2])
