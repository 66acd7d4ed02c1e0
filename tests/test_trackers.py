"""MLflow and Weights & Biases beside TensorBoard (`loggers=[...]`): real clients writing real
runs (a SQLite MLflow store, an offline W&B run), read back with their own readers."""

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from bert_pos.config import ConfigError, check_config
from bert_pos.train import train
from tests.helpers import ROOT, TINY_DEMO_OVERRIDES, compose_config

SHORT_RUN = [*TINY_DEMO_OVERRIDES, "epochs=2"]


def validation_curve(run_dir: Path) -> dict[int, float]:
    """step -> val/f1 of every evaluation, as metrics.json recorded them."""
    rows = json.loads((run_dir / "metrics.json").read_text())["epochs"]
    return {row["step"]: row["val/f1"] for row in rows}


@pytest.mark.slow
def test_mlflow_gets_the_curves_the_hyperparameters_and_the_scores(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = compose_config([*SHORT_RUN, "loggers=[tensorboard,mlflow]", f"mlflow.tracking_uri={uri}"])
    run_dir = tmp_path / "run"
    metrics = train(cfg, run_dir)

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["demo"], output_format="list")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["optim.lr"] == "0.003"
    assert run.data.tags["run_dir"] == str(run_dir.resolve())
    history = mlflow.MlflowClient(uri).get_metric_history(run.info.run_id, "val/f1")
    assert {m.step: pytest.approx(m.value) for m in history} == validation_curve(run_dir)
    assert run.data.metrics["test/f1"] == pytest.approx(metrics["test"]["f1"])
    assert (run_dir / "tensorboard").is_dir()  # TensorBoard still writes beside it
    assert json.loads((run_dir / "trackers.json").read_text()) == {"mlflow": run.info.run_id}
    artifacts = tmp_path / "mlflow-artifacts"  # beside the store, not ./mlruns where it ran
    assert [p.name for p in artifacts.rglob("epochs.json")] == ["epochs.json"]


def wandb_records(run_file: Path) -> list:
    """The records of an offline W&B run file (`run-<id>.wandb`): a 7-byte header, then
    LevelDB's log format (32 KiB blocks of checksummed chunks), each record one protobuf
    `Record` of wandb's own schema."""
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B"
    block, position, records, pending = 32768, 7, [], b""
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:  # a block's tail too short for a header is padding
            position += left
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[position : position + 7])
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind == 1:  # a whole record
            records.append(chunk)
        elif kind in (2, 3):  # its first and middle chunks
            pending += chunk
        elif kind == 4:  # its last chunk
            records.append(pending + chunk)
            pending = b""
    parsed = []
    for raw in records:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        parsed.append(record)
    return parsed


@pytest.mark.slow
def test_wandb_offline_writes_a_run_with_the_same_metrics(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")  # and no network: the run stays on disk
    cfg = compose_config([*SHORT_RUN, "loggers=[wandb]"])
    run_dir = tmp_path / "run"
    train(cfg, run_dir)

    (run_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    records = wandb_records(run_file)
    history = [  # a key with "/" is stored as its parts (nested_key)
        {
            item.key or "/".join(item.nested_key): json.loads(item.value_json)
            for item in r.history.item
        }
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]
    curve = {row["step"]: row["val/f1"] for row in history if "val/f1" in row}
    assert curve == pytest.approx(validation_curve(run_dir))
    (run_record,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    config = {item.key: json.loads(item.value_json) for item in run_record.config.update}
    assert config["optim.lr"] == 0.003
    assert not (run_dir / "tensorboard").exists()  # only what `loggers` names


def test_a_missing_tracker_package_stops_at_start_naming_the_extra(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "mlflow" else real_find_spec(name, *args),
    )
    cfg = compose_config(["+experiment=demo", "loggers=[tensorboard,mlflow]"])
    with pytest.raises(ConfigError, match=r'pip install "bert_pos\[mlflow\]"'):
        check_config(cfg)
    with pytest.raises(ConfigError, match="loggers=.*expected distinct names of tensorboard"):
        check_config(compose_config(["+experiment=demo", "loggers=[tensorbord]"]))


@pytest.mark.slow
def test_a_sweep_is_one_mlflow_experiment_with_a_run_per_job(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    sweep_dir = tmp_path / "sweep" / "2026-01-01_00-00-00"
    overrides = [o for o in SHORT_RUN if o != "epochs=2"] + ["max_steps=5", "epochs=1"]
    result = subprocess.run(
        [sys.executable, "-m", "bert_pos.train", "-m", *overrides, "seed=1,2"]
        + ["loggers=[mlflow]", f"mlflow.tracking_uri={uri}", f"hydra.sweep.dir={sweep_dir}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=[f"demo/{sweep_dir.name}"], output_format="list")
    names = sorted(run.info.run_name for run in runs)
    assert [name.rsplit("/", 1)[-1] for name in names] == ["seed-1", "seed-2"], names
    assert {run.data.tags["sweep"] for run in runs} == {sweep_dir.name}


@pytest.mark.slow  # MLflow migrates a new SQLite store: seconds
def test_a_resumed_run_continues_its_mlflow_run(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    from bert_pos.training.trackers import open_trackers

    uri = f"sqlite:///{tmp_path}/not/yet/mlflow.db"  # its folder is made
    cfg = compose_config(["+experiment=demo", "loggers=[mlflow]", f"mlflow.tracking_uri={uri}"])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    first = open_trackers(cfg, run_dir, step=0, resumed=False, is_main=True, sweep_dir=None)
    first.add_scalar("val/f1", 0.5, 10)
    first.close(failed=True)  # killed
    again = open_trackers(cfg, run_dir, step=10, resumed=True, is_main=True, sweep_dir=None)
    again.add_scalar("val/f1", 0.7, 20)
    again.close()

    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("demo").experiment_id])
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "val/f1")
    assert [(m.step, m.value) for m in history] == [(10, 0.5), (20, 0.7)]
    assert open_trackers(cfg, run_dir, 0, False, is_main=False, sweep_dir=None).trackers == {}
