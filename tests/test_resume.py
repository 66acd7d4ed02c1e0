"""Resuming: a run killed at any point and resumed ends exactly like the uninterrupted run."""

import json
import logging
import math
import multiprocessing
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import bert_pos.training.loop as loop_module
from bert_pos.cli import accept_plus_groups
from bert_pos.runtime.checkpoint import (
    CheckpointError,
    latest_good_checkpoint,
    load_training_checkpoint,
    resolve_resume,
    step_checkpoints,
)
from bert_pos.runtime.errors import NonFiniteError
from bert_pos.train import train
from tests.helpers import TINY_DEMO_OVERRIDES, compose_config

ROOT = Path(__file__).resolve().parents[1]
# 200 sentences in micro-batches of 16: 13 per epoch, 2 per optimizer step, so 7 steps per
# epoch, the 7th of a single micro-batch; a resumable checkpoint every 2 steps.
OVERRIDES = TINY_DEMO_OVERRIDES + [
    "data.demo_sentences={train: 200, validation: 40, test: 40}",
    "epochs=2",
    "grad_accum_steps=2",
    "checkpoint.every_n_steps=2",
    "checkpoint.keep_last=20",
    "eval.test_at_end=false",
]


def _train_until_killed(overrides: list[str], run_dir: str, kill_after_micro_batches: int):
    """Child process: train (resuming when the folder has checkpoints) and SIGKILL itself in
    the middle of its `kill_after_micro_batches`-th micro-batch: after that micro-batch's
    forward and backward, before the optimizer step or any checkpoint that follows."""
    done = 0
    accumulate = loop_module.accumulate_gradients

    def accumulate_then_die(model, window, *args):
        nonlocal done
        if done + len(window) < kill_after_micro_batches:
            done += len(window)
            return accumulate(model, window, *args)
        accumulate(model, window[: kill_after_micro_batches - done], *args)
        os.kill(os.getpid(), signal.SIGKILL)

    loop_module.accumulate_gradients = accumulate_then_die
    train(compose_config(overrides + ["resume=auto"]), run_dir)


def kill_at(run_dir: Path, micro_batches: int, overrides: list[str] = OVERRIDES) -> None:
    process = multiprocessing.get_context("spawn").Process(
        target=_train_until_killed, args=(overrides, str(run_dir), micro_batches)
    )
    process.start()
    process.join(timeout=300)
    assert process.exitcode == -signal.SIGKILL


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference")
    return run_dir, train(compose_config(OVERRIDES), run_dir)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill_points",
    [
        [5],  # in step 3 after its first micro-batch (mid-accumulation); resumes from step 2
        [10, 5],  # step 5 before its optimizer step; then, from step 4, in step 7, the
        #           epoch's short last window of one micro-batch
        [16, 1, 3],  # mid-accumulation in epoch 2 (from step 8), again at once, and again
    ],
)
def test_killed_and_resumed_run_equals_the_uninterrupted_run(tmp_path, reference, kill_points):
    reference_dir, expected = reference
    run_dir = tmp_path / "run"
    for micro_batches in kill_points:
        kill_at(run_dir, micro_batches)
    assert step_checkpoints(run_dir), "the killed runs left resumable checkpoints"
    resumed = train(compose_config(OVERRIDES + ["resume=auto"]), run_dir)

    assert resumed["epochs"] == expected["epochs"]  # losses and scores of every evaluation
    assert resumed["best"] == expected["best"] and resumed["steps"] == expected["steps"] == 14
    for name in ("last", "best"):
        ours = load_file(run_dir / "checkpoints" / name / "model.safetensors")
        theirs = load_file(reference_dir / "checkpoints" / name / "model.safetensors")
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[key], theirs[key]) for key in ours), f"{name} differs"
    # the curves continue without duplicates: one point per logged step, as uninterrupted
    for tag in ("train/loss", "val/f1"):
        assert scalars(run_dir, tag) == scalars(reference_dir, tag)


@pytest.mark.slow
def test_damaged_latest_checkpoint_is_reported_and_auto_falls_back(reference, caplog):
    run_dir, _ = reference
    newest, previous = step_checkpoints(run_dir)[-1], step_checkpoints(run_dir)[-2]
    damaged = run_dir.parent / "damaged"
    damaged.mkdir()
    for folder in (previous, newest):
        copy = damaged / "checkpoints" / folder.name
        copy.mkdir(parents=True)
        for file in folder.iterdir():
            (copy / file.name).write_bytes(file.read_bytes())
    model_file = damaged / "checkpoints" / newest.name / "model.safetensors"
    model_file.write_bytes(model_file.read_bytes()[:1000])  # a copy cut short
    with caplog.at_level(logging.WARNING):
        assert resolve_resume("auto", damaged) == damaged / "checkpoints" / previous.name
    assert "skipping a damaged checkpoint" in caplog.text and "model.safetensors" in caplog.text
    with pytest.raises(CheckpointError, match="bytes, the manifest says"):
        load_training_checkpoint(damaged / "checkpoints" / newest.name, torch.nn.Linear(1, 1))
    (damaged / "checkpoints" / previous.name / "manifest.json").unlink()  # half-written
    assert latest_good_checkpoint(damaged) is None


def test_resume_names_a_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="no such run folder or checkpoint"):
        resolve_resume(str(tmp_path / "nowhere"), tmp_path)


@pytest.mark.slow
def test_sigterm_finishes_the_step_saves_and_exits_with_a_message(tmp_path):
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "bert_pos.train",
        *TINY_DEMO_OVERRIDES,
        "epochs=30",
        "checkpoint.every_n_steps=5",
        f"hydra.run.dir={run_dir}",
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 120
    while not step_checkpoints(run_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, output[-2000:]
    assert "SIGTERM received: stopped after step" in output and "resume=auto" in output
    # the command line as Hydra received it: `+experiment=demo` is read as `experiment=demo`
    continuing = shlex.join(
        [
            "python",
            "-m",
            "bert_pos.train",
            *accept_plus_groups(TINY_DEMO_OVERRIDES),
            "epochs=30",
            "checkpoint.every_n_steps=5",
            "resume=auto",
            f"hydra.run.dir={run_dir}",
        ]
    )
    assert continuing in output  # the whole command line that continues the run
    saved = latest_good_checkpoint(run_dir)  # verified against its manifest
    state = torch.load(saved / "training_state.pt", weights_only=True)
    assert saved.name == f"step-{state['loop']['step']:07d}" and state["loop"]["step"] > 5
    assert f"stopped after step {state['loop']['step']} and saved" in output
    assert not (run_dir / "metrics.json").exists()


@pytest.mark.slow
def test_early_stopping_after_patience_evaluations_without_gain(tmp_path):
    cfg = compose_config(
        TINY_DEMO_OVERRIDES
        + ["optim.lr=1e-12", "eval.every_n_steps=5", "early_stopping.patience=2", "epochs=3"]
    )
    metrics = train(cfg, tmp_path)
    assert len(metrics["epochs"]) == 3  # the first sets the best; two more without gain stop it
    assert metrics["steps"] == 15 < 3 * math.ceil(600 / 16)
    assert (tmp_path / "checkpoints" / "last" / "model.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("action", ["stop", "skip"])
def test_non_finite_loss_stops_naming_the_step_or_is_skipped(tmp_path, monkeypatch, action):
    accumulate = loop_module.accumulate_gradients
    calls = 0

    def nan_on_third_step(model, window, *args):
        nonlocal calls
        calls += 1
        loss_sum, labelled = accumulate(model, window, *args)
        if calls == 3:
            next(model.parameters()).grad.fill_(math.nan)
            return math.nan, labelled
        return loss_sum, labelled

    monkeypatch.setattr(loop_module, "accumulate_gradients", nan_on_third_step)
    cfg = compose_config(TINY_DEMO_OVERRIDES + [f"nonfinite.action={action}", "epochs=1"])
    if action == "stop":
        with pytest.raises(NonFiniteError, match=r"at step 3 \(epoch 1\).*step-0000002"):
            train(cfg, tmp_path)
        weights = load_file(tmp_path / "checkpoints" / "step-0000002" / "model.safetensors")
        assert all(torch.isfinite(tensor).all() for tensor in weights.values())
    else:
        metrics = train(cfg, tmp_path)
        assert metrics["steps"] == math.ceil(600 / 16)
        state = torch.load(
            tmp_path / "checkpoints" / f"step-{metrics['steps']:07d}" / "training_state.pt",
            weights_only=True,
        )
        assert state["scheduler"]["last_epoch"] == metrics["steps"]  # the skip moved it too
        assert all(math.isfinite(row["train/loss"]) for row in metrics["epochs"])
        last = load_file(tmp_path / "checkpoints" / "last" / "model.safetensors")
        assert all(torch.isfinite(tensor).all() for tensor in last.values())


@pytest.mark.slow
def test_checkpoints_keep_the_last_k(reference):
    run_dir, metrics = reference
    steps = [int(p.name.split("-")[1]) for p in step_checkpoints(run_dir)]
    assert steps == [2, 4, 6, 7, 8, 10, 12, 14]  # every 2 steps and each epoch end (7, 14)
    state = json.loads((step_checkpoints(run_dir)[-1] / "manifest.json").read_text())
    assert set(state) == {"model.safetensors", "training_state.pt"}


@pytest.mark.slow
def test_resuming_with_another_recipe_is_refused(reference, tmp_path):
    run_dir, _ = reference
    changed = compose_config(OVERRIDES + ["resume=auto", "optim.lr=1e-2", "data.batch_size=8"])
    with pytest.raises(
        CheckpointError,
        match=r"another recipe \(data.batch_size: 16 -> 8, "
        r"optim.lr: 0.003 -> 0.01\)",
    ):
        train(changed, run_dir)


@pytest.mark.slow
def test_auto_resume_without_a_run_folder_stops_with_the_command_that_continues(tmp_path):
    """Without hydra.run.dir, resume=auto would get a fresh timestamped folder and silently
    start from scratch: it stops and names the experiment's latest run."""
    earlier = tmp_path / "experiments" / "runs" / "demo" / "2026-01-01_00-00-00"
    (earlier / "checkpoints").mkdir(parents=True)
    result = subprocess.run(
        [sys.executable, "-m", "bert_pos.train", "+experiment=demo", "resume=auto"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output
    assert "resume=auto continues the run in hydra.run.dir" in output
    assert (
        shlex.join(
            [
                "python",
                "-m",
                "bert_pos.train",
                "experiment=demo",  # as Hydra received it
                "resume=auto",
                f"hydra.run.dir={earlier}",
            ]
        )
        in output
    )
    assert sorted(p.name for p in earlier.parent.iterdir()) == [earlier.name]  # no new folder
