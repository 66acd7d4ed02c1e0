"""Sweeps and their report (bert_pos.report, conf/sweep, conf/launcher): seeds grouped, the
best last, failed runs listed, the Optuna and SLURM configs, best vs runner-up over seeds.
"""

import csv
import importlib.util
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from bert_pos.config import register_configs
from bert_pos.report import find_runs, report, summarise
from tests.helpers import CONF_DIR, TINY_DEMO_OVERRIDES

ROOT = Path(__file__).resolve().parents[1]
register_configs()


def fake_run(
    folder: Path,
    overrides: list[str],
    best: float | None,
    test: float | None = None,
    error: str | None = None,
    curve=(0.5, 0.7),
):
    (folder / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), folder / ".hydra" / "overrides.yaml")
    if error is not None:
        (folder / "error.txt").write_text(f"Traceback ...\nValueError: {error}\n")
    if best is None:
        return
    epochs = [{"epoch": i + 1, "step": 10 * (i + 1), "val/f1": v} for i, v in enumerate(curve)]
    metrics = {
        "selection_metric": "val/f1",
        "epochs": epochs,
        "best": {"epoch": 2, "step": 20, "val/f1": best},
    }
    if test is not None:
        metrics["test"] = {"f1": test, "accuracy": 0.9}
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_report_groups_seeds_orders_best_last_and_lists_unfinished_runs(tmp_path):
    sweep = tmp_path / "sweep"
    fake_run(sweep / "a1", ["+experiment=demo", "optim.lr=1e-3", "seed=1"], 0.80, 0.70)
    fake_run(sweep / "a2", ["+experiment=demo", "optim.lr=1e-3", "seed=2"], 0.84, 0.74)
    fake_run(sweep / "b1", ["+experiment=demo", "optim.lr=3e-3", "seed=1"], 0.60, 0.50)
    fake_run(sweep / "b2", ["+experiment=demo", "optim.lr=3e-3", "seed=2"], None, error="boom")
    fake_run(sweep / "b3", ["+experiment=demo", "optim.lr=3e-3", "seed=3"], None)

    runs = find_runs(sweep)
    assert [run.status for run in runs] == ["done", "done", "done", "failed", "unfinished"]
    keys, rows = summarise(runs)
    assert keys == ["optim.lr"]  # +experiment is the same everywhere, seed is never a key
    assert [row["optim.lr"] for row in rows] == ["3e-3", "1e-3"]  # best last
    best = rows[-1]
    assert best["seeds"] == 2 and best["seed_values"] == ["1", "2"]
    assert best["val_mean"] == pytest.approx(0.82)
    assert best["val_std"] == pytest.approx(statistics.stdev([0.80, 0.84]))
    assert best["test_mean"] == pytest.approx(0.72)
    assert rows[0]["seeds"] == 1 and math.isnan(rows[0]["val_std"])  # failed runs not averaged

    table = report(sweep, tmp_path / "out")
    header = (
        "| optim.lr | val f1 | test f1 | seeds | best epoch per seed | test f1 95% CI over seeds |"
    )
    assert header in table
    half = 12.706 * statistics.stdev([0.70, 0.74]) / math.sqrt(2)  # t(0.975, 1 df)
    assert (
        "| 1e-3 | 82.00 ± 2.83 | 72.00 ± 2.83 | 2 | 2, 2 | "  # points, as bert_pos.compare
        f"[{100 * (0.72 - half):.2f}, {100 * (0.72 + half):.2f}] |" in table
    )
    assert "`b2` (experiment=demo optim.lr=3e-3 seed=2): failed: ValueError: boom" in table
    assert "`b3`" in table and "no metrics.json yet" in table
    with (tmp_path / "out" / "report.csv").open() as handle:
        rows_csv = list(csv.DictReader(handle))
    assert [row["status"] for row in rows_csv] == ["done", "done", "failed", "unfinished"]
    assert float(rows_csv[1]["val_mean"]) == pytest.approx(0.82)
    assert (tmp_path / "out" / "report.png").stat().st_size > 1000
    assert (tmp_path / "out" / "report.md").read_text().endswith(table + "\n")


def hparams_of(run_dir: Path) -> dict:
    """The hyperparameters recorded for TensorBoard's HParams tab in a run's event file."""
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    assert set(content) == {
        "_hparams_/experiment",
        "_hparams_/session_start_info",
        "_hparams_/session_end_info",
    }
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    metric_tags = {info.name.tag for info in experiment.experiment.metric_infos}
    assert metric_tags <= set(events.Tags()["scalars"])  # every metric has its scalar
    values = {}
    for name, value in start.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        values[name] = getattr(value, kind)
    return values | {"metrics": metric_tags}


@pytest.mark.slow
def test_multirun_grid_through_the_cli_goes_past_a_failed_run_and_reports(tmp_path):
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bert_pos.train",
            "-m",
            *TINY_DEMO_OVERRIDES,
            "epochs=1",
            "data.demo_sentences={train: 200, validation: 40, test: 40}",
            "optim.lr=1e-3,3e-3,-1",
            "seed=1,2",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (result.stdout + result.stderr).count("failed, the sweep goes on") == 2
    # Each job's folder: its command-line overrides (the constant ones too), then the seed;
    # nothing a shell or a Hydra override would need quoted.
    constant = (
        "data.batch_size-16+data.demo_sentences-_train_200_validation_40_test_40_+"
        "epochs-1+model.random_init.hidden_size-64+model.random_init.intermediate_size-128"
    )
    folders = sorted(str(p.parent.parent.relative_to(sweep)) for p in sweep.rglob("overrides.yaml"))
    assert folders == [
        f"{constant}+optim.lr-{lr}/seed-{seed}"
        for lr in ("-1", "0.001", "0.003")
        for seed in (1, 2)
    ]
    failed = sweep / f"{constant}+optim.lr--1" / "seed-1" / "error.txt"
    assert "optim.lr=-1.0: must be > 0" in failed.read_text()

    table = report(sweep)
    keys, rows = summarise(find_runs(sweep))
    assert keys == ["optim.lr"] and len(rows) == 2 and all(row["seeds"] == 2 for row in rows)
    for row in rows:
        folder = sweep / f"{constant}+optim.lr-{row['optim.lr']}"
        bests = [
            json.loads((folder / f"seed-{seed}" / "metrics.json").read_text())["best"]["val/f1"]
            for seed in (1, 2)
        ]
        assert row["val_mean"] == pytest.approx(statistics.fmean(bests))
    assert rows[-1]["val_mean"] >= rows[0]["val_mean"]  # best last
    assert table.count("failed: ConfigError: invalid config: optim.lr=-1.0: must be > 0") == 2
    assert {p.name for p in sweep.iterdir()} >= {"report.md", "report.csv", "report.png"}

    # Every run carries its hyperparameters and final metrics for the HParams tab.
    recorded = hparams_of(sweep / f"{constant}+optim.lr-0.003" / "seed-2")
    assert recorded["optim.lr"] == pytest.approx(0.003) and recorded["seed"] == 2
    assert recorded["data.label_strategy"] == "first" and recorded["model.name_or_path"] == "null"
    assert recorded["model.random_init.hidden_size"] == 64  # the shape of the random model
    assert "data.cache_dir" not in recorded and "device" not in recorded  # not the recipe
    assert recorded["metrics"] == {"hparams/best_val_f1", "hparams/test_f1"}


def test_slurm_launcher_config_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", ["experiment=baseline", "+launcher=slurm"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.hydra.launcher.timeout_min == 120
    import bert_pos.predict  # noqa: F401  (registers predict's schema)

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(  # the sharded predict job conf/launcher/slurm.yaml shows
            "predict",
            ["+launcher=slurm", "hydra.launcher.tasks_per_node=4", "model_dir=run"],
            return_hydra_config=True,
        )
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.tasks_per_node == 4 and cfg.model_dir == "run"


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None,
    reason="the sweep extra (hydra-optuna-sweeper) is not installed",
)
def test_optuna_search_maximises_the_returned_metric(tmp_path):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", ["experiment=baseline", "+sweep=optuna"], return_hydra_config=True)
    assert cfg.hydra.sweeper.direction == "maximize"
    assert set(cfg.hydra.sweeper.params) == {
        "optim.lr",
        "optim.warmup_ratio",
        "optim.weight_decay",
        "data.batch_size",
    }

    sweep = tmp_path / "optuna"
    fixed = [o for o in TINY_DEMO_OVERRIDES if not o.startswith(("optim.lr", "data.batch_size"))]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bert_pos.train",
            "-m",
            *fixed,
            "+sweep=optuna",
            "epochs=2",
            "data.demo_sentences={train: 400, validation: 40, test: 40}",
            "hydra.sweeper.n_trials=2",
            "optim.lr=tag(log, interval(3e-3, 1e-2))",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    trials = [json.loads(p.read_text())["best"]["val/f1"] for p in sweep.glob("*/*/metrics.json")]
    assert len(trials) == 2 and max(trials) > 0
    assert best.best_value == pytest.approx(max(trials))  # Optuna saw what main() returned
    assert set(best.best_params) == {
        "optim.lr",
        "optim.warmup_ratio",
        "optim.weight_decay",
        "data.batch_size",
    }


def test_sweep_config_lists_a_learning_rate_seed_grid():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", ["experiment=baseline", "+sweep=lr_seed"], return_hydra_config=True)
    assert cfg.hydra.sweeper.params == {"optim.lr": "1e-5,2e-5,3e-5,5e-5", "seed": "1,2,3"}
    assert cfg.optim.lr == 2e-5  # the sweep only adds sweeper params; the recipe is unchanged


def predictions(path: Path, sentences: int, correct: int) -> None:
    """A test predictions file: `sentences` one-entity sentences in documents of 10, the first
    `correct` right."""
    lines = []
    for i in range(sentences):
        if i % 10 == 0:
            lines += ["-DOCSTART- O O", ""]
        lines += [f"Peter B-PER {'B-PER' if i < correct else 'O'}", "said O O", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "best_correct, verdict", [(190, "distinguishable"), (101, "not distinguishable")]
)
def test_the_best_is_tested_against_the_runner_up_over_pooled_seeds(
    tmp_path, best_correct, verdict
):
    sweep = tmp_path / "sweep"
    for name, lr, val, correct in [("a", "1e-3", 0.80, best_correct), ("b", "3e-3", 0.60, 100)]:
        for seed in (1, 2):
            folder = sweep / f"{name}{seed}"
            fake_run(folder, ["+experiment=demo", f"optim.lr={lr}", f"seed={seed}"], val, 0.5)
            predictions(folder / "eval" / "test" / "predictions.txt", 200, correct)
    table = report(sweep, tmp_path / "out")
    # documents where the files mark them, as bert_pos.compare resamples; points as compare's
    assert (
        "Best vs runner-up on test, paired over the same sentences (2 seeds pooled, "
        "resampled by document, 20 units)" in table
    )

    def f1(correct):  # every prediction right, `correct` of the 200 entities found
        return 2 * correct / (200 + correct)

    difference = 100 * (f1(best_correct) - f1(100))
    assert f"difference +{difference:.2f} points, 95% CI [" in table
    assert table.rstrip().endswith(f": {verdict} at 5%.")
    by_sentence = report(sweep, tmp_path / "out", unit="sentence")
    assert "resampled by sentence, 200 units" in by_sentence
