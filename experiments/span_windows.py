"""The span head across window edges: on the synthetic nested corpus with a model window of
WINDOW subwords, how many test mentions cross a window's kept edge and how many of them the
span head finds whole (a tiny random BERT, the settings of tests/test_span_head.py's NESTED).

    PYTHONPATH=. python experiments/span_windows.py 12      # from the repository root
"""

import json
import shutil
import sys
import time
from pathlib import Path

from transformers import AutoTokenizer

from bert_pos.data.encoding import subword_counts, word_windows
from bert_pos.data.nested_demo import write_nested_demo
from bert_pos.train import train
from tests.helpers import compose_config
from tests.test_span_head import NESTED


def main(window: int) -> None:
    root = Path("/tmp/span_windows")
    shutil.rmtree(root, ignore_errors=True)
    corpus = write_nested_demo(root / "data", {"train": 800, "validation": 100, "test": 100}, 0)
    overrides = NESTED + [
        f"data.dir={corpus}",
        "model.head=span",
        "model.span_decode=nested",
        f"model.random_init.max_position_embeddings={window}",
    ]
    started = time.perf_counter()
    metrics = train(compose_config(overrides), root / "run")
    seconds = time.perf_counter() - started
    tokenizer = AutoTokenizer.from_pretrained(root / "run" / "tokenizer")
    predictions = root / "run" / "eval" / "test" / "predictions.jsonl"
    crossing = found = windowed = 0
    for record in map(json.loads, predictions.read_text().splitlines()):
        word_ids = tokenizer(record["tokens"], is_split_into_words=True).word_ids()
        if len(word_ids) <= window:
            continue
        windowed += 1
        counts = subword_counts(word_ids, len(record["tokens"]))
        cuts = [keep_start for _, _, keep_start, _ in word_windows(counts, window - 2)][1:]
        predicted = {tuple(mention) for mention in record["predicted"]}
        for start, end, kind in record["gold"]:
            if any(start < cut < end for cut in cuts):
                crossing += 1
                found += (start, end, kind) in predicted
    print(
        f"window {window}: test F1 {metrics['test']['f1']:.4f}, recall "
        f"{metrics['test']['recall']:.4f}; {windowed} of 100 test sentences windowed; "
        f"{found} of {crossing} mentions across a kept edge found; {seconds:.1f} s"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
