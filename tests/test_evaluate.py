import json
import subprocess
import sys
from pathlib import Path

import pytest

from bert_pos.evaluation import read_predictions
from bert_pos.metrics import score_sequences
from tests.helpers import run_evaluate

ROOT = Path(__file__).resolve().parents[1]


def test_evaluate_reproduces_the_training_scores_and_writes_its_files(trained_run):
    run_dir, metrics = trained_run
    output = run_evaluate(f"run_dir={run_dir}", "split=validation")
    folder = run_dir / "eval" / "validation"
    scores = json.loads((folder / "metrics.json").read_text())
    best = next(row for row in metrics["epochs"] if row["step"] == metrics["best"]["step"])
    assert scores["f1"] == pytest.approx(best["val/f1"], abs=1e-9)
    assert scores["accuracy"] == pytest.approx(best["val/accuracy"], abs=1e-9)
    assert "| overall |" in output and "| PER |" in output
    assert (folder / "confusion_matrix.png").stat().st_size > 1000
    # the predictions file re-scores to the same numbers (what conlleval would read)
    gold, predicted = read_predictions(folder / "predictions.txt")
    assert score_sequences(gold, predicted, True)["f1"] == pytest.approx(scores["f1"])
    assert (folder / "predictions.txt").read_text().startswith("-DOCSTART- O O\n\n")


def test_evaluate_a_file_in_strict_mode(trained_run, tmp_path):
    run_dir, _ = trained_run
    conll = tmp_path / "extra.txt"
    conll.write_text("Police NNS O O\nin IN O O\nVifenport NNP O B-LOC\narrested VBD O O\n"
                     "Renmi NNP O B-PER\nTordun NNP O I-PER\n. . O O\n")  # fmt: skip
    run_evaluate(f"run_dir={run_dir}", f"file={conll}", "mode=strict", "checkpoint=last")
    scores = json.loads((run_dir / "eval" / "extra" / "metrics.json").read_text())
    assert scores["support"] == 2 and 0 <= scores["f1"] <= 1


def test_evaluate_names_a_missing_checkpoint(trained_run):
    result = subprocess.run([sys.executable, "-m", "bert_pos.evaluate", f"run_dir={trained_run[0]}",
                             "checkpoint=epoch9"], cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 1 and "checkpoint=epoch9" in result.stdout + result.stderr
