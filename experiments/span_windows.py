"""The span head across window edges: on the synthetic nested corpus with a model window of
WINDOW subwords, how many test mentions cross a window's kept edge and how many of them the
span head finds whole (a tiny random BERT, the run tests/test_span_runs.py trains).

    PYTHONPATH=. python experiments/span_windows.py 12      # from the repository root
"""

import json
import shutil
import sys
import time
from pathlib import Path

from transformers import AutoTokenizer

from tests.test_span_runs import edge_mentions, train_windowed_span_run


def main(window: int) -> None:
    root = Path("/tmp/span_windows")
    shutil.rmtree(root, ignore_errors=True)
    started = time.perf_counter()
    metrics = train_windowed_span_run(root, window)
    seconds = time.perf_counter() - started
    predictions = root / "run" / "eval" / "test" / "predictions.jsonl"
    records = [json.loads(line) for line in predictions.read_text().splitlines()]
    tokenizer = AutoTokenizer.from_pretrained(root / "run" / "tokenizer")
    windowed, crossing, found = edge_mentions(records, tokenizer, window)
    print(
        f"window {window}: test F1 {metrics['test']['f1']:.4f}, recall "
        f"{metrics['test']['recall']:.4f}; {windowed} of 100 test sentences windowed; "
        f"{found} of {crossing} mentions across a kept edge found; {seconds:.1f} s"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
