"""The one-shot GPU measurement (experiments/gpu_bench.py), in its CPU dry run: every run and
side it measures on a GPU, on a tiny model, so the script cannot rot between GPU sessions."""

import importlib.util
import json

import pytest

from tests.helpers import ROOT


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_bench", ROOT / "experiments/gpu_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("accelerate") is None,
    reason="the Trainer needs the bench extra (accelerate)",
)
def test_the_gpu_bench_dry_run_measures_every_row(tmp_path):
    gpu_bench = load_script()
    out_dir = gpu_bench.main(["--dry-run", "--out", str(tmp_path)])
    rows = json.loads((out_dir / "gpu_bench.json").read_text())
    runs = [row["run"] for row in rows]
    assert runs == [
        "bert_pos, padded, compiled",
        "Hugging Face Trainer",
        "the model's floor",
        "bert_pos, padding-free",
    ]
    for row in rows:
        assert "error" not in row, row
        assert row["train_tokens_per_s"] > 0 and row["ms_per_step"] > 0
    padded, trainer, floor, padding_free = rows
    assert padded["steps"] == trainer["steps"] == padding_free["steps"] == 5  # 160 / batch 32
    for row in (padded, trainer, padding_free):  # one floor for all: same model, same precision
        assert row["share_of_floor"] == row["train_tokens_per_s"] / floor["train_tokens_per_s"]
        assert 0 <= row["final_score"] <= 1
    table = (out_dir / "gpu_bench.md").read_text()
    assert f"| bert_pos, padding-free | {padding_free['wall_seconds']:.0f} |" in table
    assert "cpu (dry run)" in table.splitlines()[0]
