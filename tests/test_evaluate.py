"""bert_pos.evaluate (a command) on a trained run folder: the training scores reproduced, a
file in strict mode, missing checkpoints and failed runs named, one folder per evaluation.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bert_pos.scoring.metrics import score_sequences
from bert_pos.scoring.predictions import read_predictions
from tests.helpers import run_evaluate

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_evaluate_reproduces_the_training_scores_and_writes_its_files(trained_run):
    run_dir, metrics = trained_run
    output = run_evaluate(f"run_dir={run_dir}", "split=validation")
    folder = run_dir / "eval" / "validation-best"
    scores = json.loads((folder / "metrics.json").read_text())
    best = next(row for row in metrics["epochs"] if row["step"] == metrics["best"]["step"])
    assert scores["f1"] == pytest.approx(best["val/f1"], abs=1e-9)
    assert scores["accuracy"] == pytest.approx(best["val/accuracy"], abs=1e-9)
    assert "| overall |" in output and "| PER |" in output
    assert (folder / "confusion_matrix.png").stat().st_size > 1000
    # the predictions file re-scores to the same numbers (what conlleval would read)
    read = read_predictions(folder / "predictions.txt")
    gold, predicted = read.gold, read.predicted
    assert score_sequences(gold, predicted, True)["f1"] == pytest.approx(scores["f1"])
    assert (folder / "predictions.txt").read_text().startswith("-DOCSTART- O O\n\n")


@pytest.mark.slow
def test_evaluate_a_file_in_strict_mode(trained_run, tmp_path):
    run_dir, _ = trained_run
    conll = tmp_path / "extra.txt"
    conll.write_text(
        "Police NNS O O\nin IN O O\nVifenport NNP O B-LOC\narrested VBD O O\n"
        "Renmi NNP O B-PER\nTordun NNP O I-PER\n. . O O\n"
    )
    run_evaluate(f"run_dir={run_dir}", f"file={conll}", "mode=strict", "checkpoint=last")
    folder = run_dir / "eval" / "file-extra-last-strict"
    scores = json.loads((folder / "metrics.json").read_text())
    assert scores["support"] == 2 and 0 <= scores["f1"] <= 1


@pytest.mark.slow
def test_evaluate_names_a_missing_checkpoint(trained_run):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bert_pos.evaluate",
            f"run_dir={trained_run[0]}",
            "checkpoint=epoch9",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "checkpoint=epoch9" in result.stdout + result.stderr


def evaluate_config(*overrides: str):
    from hydra import compose, initialize_config_dir

    import bert_pos.evaluate  # noqa: F401  registers the schema
    from tests.helpers import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="evaluate", overrides=list(overrides))


@pytest.mark.slow
@pytest.mark.parametrize("lost", [["model"], ["model", "checkpoints/config.json"]])
def test_a_run_killed_before_its_export_still_evaluates(trained_run, tmp_path, lost):
    """Without model/ (killed before the export), and without the tagger config written at
    the start (a run folder from before it existed), the best checkpoint scores what the run
    scored."""
    import shutil

    from bert_pos.inference.evaluate_run import evaluate_run
    from bert_pos.inference.loading import load_trained

    run_dir, metrics = trained_run
    killed = tmp_path / "killed"
    shutil.copytree(run_dir, killed, ignore=shutil.ignore_patterns("eval"))
    for name in lost:
        path = killed / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    trained = load_trained(killed, checkpoint="best")
    assert trained.step == metrics["best"]["step"]
    exported = load_trained(run_dir / "model")
    assert trained.label_names == exported.label_names
    for name, tensor in exported.model.state_dict().items():
        assert (trained.model.state_dict()[name] == tensor).all(), name
    scores = evaluate_run(evaluate_config(f"run_dir={killed}", "split=validation"))
    best = next(row for row in metrics["epochs"] if row["step"] == metrics["best"]["step"])
    assert scores["f1"] == pytest.approx(best["val/f1"], abs=1e-9)


@pytest.mark.slow
def test_each_evaluation_has_its_own_folder_and_records_its_settings(trained_run, tmp_path):
    import shutil

    from bert_pos.inference.evaluate_run import evaluate_run

    run_dir, metrics = trained_run
    run = tmp_path / "run"
    # the run as training left it: other tests evaluate the shared run folder too
    shutil.copytree(
        run_dir,
        run,
        ignore=lambda folder, names: [
            name
            for name in names
            if Path(folder).name == "eval" and name not in ("validation", "test")
        ],
    )
    own_test = (run / "eval" / "test" / "metrics.json").read_text()
    evaluate_run(evaluate_config(f"run_dir={run}", "split=test"))
    evaluate_run(
        evaluate_config(
            f"run_dir={run}", "split=test", "checkpoint=last", "mode=strict", "level=subword"
        )
    )
    validation_file = tmp_path / "validation.txt"
    shutil.copy(run / "demo_corpus" / "validation.txt", validation_file)
    evaluate_run(evaluate_config(f"run_dir={run}", f"file={validation_file}"))
    folders = {p.name for p in (run / "eval").iterdir()}
    assert folders == {
        "validation",
        "test",
        "test-best",
        "test-last-strict-subword",
        "file-validation-best",
    }
    assert (run / "eval" / "test" / "metrics.json").read_text() == own_test  # untouched
    strict = json.loads((run / "eval" / "test-last-strict-subword" / "metrics.json").read_text())
    assert strict["settings"] == {
        "split": "test",
        "file": None,
        "checkpoint": "last",
        "model_dir": None,
        "step": metrics["steps"],
        "mode": "strict",
        "level": "subword",
        "decode": "argmax",
    }
    best = json.loads((run / "eval" / "file-validation-best" / "metrics.json").read_text())
    assert best["settings"]["step"] == metrics["best"]["step"]
    assert best["settings"]["file"] == str(validation_file.resolve())


@pytest.mark.slow
def test_evaluating_a_failed_run_names_its_error(tmp_path, trained_run):
    import shutil

    from bert_pos.inference.evaluate_run import evaluate_run
    from bert_pos.inference.loading import TrainedModelError

    run = tmp_path / "failed"
    shutil.copytree(trained_run[0], run)
    shutil.rmtree(run / "checkpoints" / "best")
    (run / "error.txt").write_text("NonFiniteError: non-finite loss or gradient at step 3\n")
    with pytest.raises(TrainedModelError, match=r"the run failed .*error.txt.*step 3"):
        evaluate_run(evaluate_config(f"run_dir={run}", "split=test"))
