"""The training loop end to end (bert_pos/training/) on tiny random models: gradient
accumulation and loss normalisation, weight decay groups, what a run writes, evaluations
during training, precision, and the command line's one-line errors.
"""

import json
import math
import os
import re
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from bert_pos.data.batching import PaddingCollator
from bert_pos.scoring.metrics import format_results_table
from bert_pos.train import train
from bert_pos.training.loop import accumulate_gradients
from bert_pos.training.optimization import build_optimizer
from tests.helpers import TINY_DEMO_OVERRIDES, compose_config

ROOT = Path(__file__).resolve().parents[1]


def random_examples(count, seed=0):
    generator = torch.Generator().manual_seed(seed)
    examples = []
    for _ in range(count):
        length = int(torch.randint(4, 14, (1,), generator=generator))
        ids = torch.randint(5, 100, (length,), generator=generator).tolist()
        labels = torch.randint(0, 9, (length,), generator=generator).tolist()
        labels[0] = labels[-1] = -100  # [CLS] and [SEP]
        labels[2] = -100  # a continuation subword under the `first` strategy
        examples.append({"input_ids": ids, "labels": labels, "word_starts": [1], "tags": [0]})
    return examples


def gradients_after(model, windows, divisor=None):
    model.zero_grad()
    for window in windows:
        accumulate_gradients(
            model,
            window,
            nullcontext(),
            torch.amp.GradScaler("cpu", enabled=False),
            torch.device("cpu"),
            divisor,
        )
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("micro_batches", [4, 3])  # 3: the last, shorter window of an epoch
def test_accumulated_micro_batches_equal_one_large_batch(tiny_model, micro_batches):
    collate = PaddingCollator(pad_token_id=0, pad_to_multiple_of=8)
    examples = random_examples(2 * micro_batches)
    small = [collate(examples[i : i + 2]) for i in range(0, len(examples), 2)]
    large = [collate(examples)]
    accumulated = gradients_after(tiny_model, [small])
    reference = gradients_after(tiny_model, [large])
    assert accumulated.keys() == reference.keys()
    for name, gradient in reference.items():
        torch.testing.assert_close(accumulated[name], gradient, atol=1e-6, rtol=1e-4)
    # a per-micro-batch mean (the common bug) would not match: the micro-batches differ in size
    counts = [int((b["labels"] != -100).sum()) for b in small]
    assert len(set(counts)) > 1


def test_average_normalization_weighs_every_token_the_same(tiny_model):
    """loss_normalization=average divides every step by one fixed count: accumulation stays
    exact, and a step's gradient is its batch-mean gradient scaled by its share of tokens."""
    collate = PaddingCollator(pad_token_id=0, pad_to_multiple_of=8)
    examples = random_examples(8)
    small = [collate(examples[i : i + 2]) for i in range(0, 8, 2)]
    large = [collate(examples)]
    fixed = gradients_after(tiny_model, [small], divisor=40.0)
    torch.testing.assert_close(fixed, gradients_after(tiny_model, [large], divisor=40.0))
    labelled = int((large[0]["labels"] != -100).sum())
    batch_mean = gradients_after(tiny_model, [large])
    for name, gradient in batch_mean.items():
        torch.testing.assert_close(fixed[name], gradient * labelled / 40.0, atol=1e-6, rtol=1e-4)


def test_no_weight_decay_on_biases_and_layer_norm(tiny_model):
    optimizer = build_optimizer(tiny_model, 1e-3, [0.9, 0.999], 1e-8, 0.01)
    decayed, plain = optimizer.param_groups
    names = {id(p): n for n, p in tiny_model.named_parameters()}
    assert decayed["weight_decay"] == 0.01 and plain["weight_decay"] == 0.0
    assert all(
        not names[id(p)].endswith(".bias") and "LayerNorm" not in names[id(p)]
        for p in decayed["params"]
    )
    assert all(
        names[id(p)].endswith(".bias") or "LayerNorm" in names[id(p)] for p in plain["params"]
    )
    assert len(decayed["params"]) + len(plain["params"]) == len(list(tiny_model.parameters()))


@pytest.mark.slow
def test_short_training_run_learns_and_writes_its_outputs(tmp_path):
    cfg = compose_config(TINY_DEMO_OVERRIDES)
    metrics = train(cfg, tmp_path)
    rows = metrics["epochs"]
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]
    assert rows[-1]["val/loss"] < rows[0]["val/loss"]
    assert rows[-1]["val/accuracy"] > 0.8  # beats all-O (about 0.68 on the demo corpus)
    assert rows[-1]["val/f1"] > rows[0]["val/f1"]

    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["epochs"] == rows and saved["selection_metric"] == "val/f1"
    assert saved["best"]["val/f1"] == max(row["val/f1"] for row in rows)

    best = load_file(tmp_path / "checkpoints" / "best" / "model.safetensors")
    last = load_file(tmp_path / "checkpoints" / "last" / "model.safetensors")
    assert "classifier.weight" in best and "bert.embeddings.word_embeddings.weight" in last

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {
        "train/loss",
        "train/lr",
        "train/grad_norm",
        "train/tokens_per_s",
        "val/loss",
        "val/precision",
        "val/recall",
        "val/f1",
        "val/accuracy",
        "val/PER/f1",
        "val/LOC/f1",
    }
    assert expected <= tags
    assert [e.step for e in events.Scalars("val/f1")] == [row["step"] for row in rows]


@pytest.mark.slow
def test_evaluations_during_training_score_and_the_last_writes_its_details(tmp_path, monkeypatch):
    """Every evaluation scores (selection, curves); the details (predictions, bootstrap
    interval, error tables, confusion matrix) are written once, for the last evaluation."""
    import bert_pos.training.loop

    written = []
    write_evaluation = bert_pos.training.loop.write_evaluation

    def counting_write_evaluation(out_dir, *args, **kwargs):
        written.append(out_dir)
        return write_evaluation(out_dir, *args, **kwargs)

    monkeypatch.setattr(bert_pos.training.loop, "write_evaluation", counting_write_evaluation)
    cfg = compose_config(
        TINY_DEMO_OVERRIDES + ["epochs=1", "eval.every_n_steps=10", "eval.test_at_end=false"]
    )
    metrics = train(cfg, tmp_path)
    assert [row["step"] for row in metrics["epochs"]] == [10, 20, 30, 38]
    assert [point["step"] for point in metrics["curve"]] == [10, 20, 30, 38]
    assert [point["score"] for point in metrics["curve"]] == [
        row["val/f1"] for row in metrics["epochs"]
    ]
    assert written == [tmp_path / "eval" / "validation"]
    details = json.loads((tmp_path / "eval" / "validation" / "metrics.json").read_text())
    assert details["f1"] == metrics["epochs"][-1]["val/f1"]  # the last evaluation's
    assert "bootstrap" in details and (tmp_path / "eval" / "validation" / "errors.md").is_file()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Images("val/confusion_matrix")] == [38]


@pytest.mark.slow
def test_subword_level_evaluation_and_pos_task(tmp_path):
    cfg = compose_config(
        TINY_DEMO_OVERRIDES
        + ["eval.level=subword", "data.task=pos", "data.label_strategy=all", "epochs=1"]
    )
    metrics = train(cfg, tmp_path)
    assert metrics["selection_metric"] == "val/accuracy"
    assert "val/f1" not in metrics["final"] and 0 < metrics["final"]["val/accuracy"] <= 1
    assert "| - | - | - |" in format_results_table(metrics["epochs"])


@pytest.mark.slow
def test_gradient_accumulation_keeps_the_step_count_right(tmp_path):
    cfg = compose_config(TINY_DEMO_OVERRIDES + ["grad_accum_steps=3", "epochs=1"])
    metrics = train(cfg, tmp_path)
    batches = -(-600 // cfg.data.batch_size)  # 38 micro-batches of 16
    assert metrics["steps"] == -(-batches // 3)  # 13 optimizer steps, the last one shorter


@pytest.mark.slow
def test_cli_demo_run(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bert_pos.train",
            *TINY_DEMO_OVERRIDES,
            "epochs=1",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| Training Loss | Epoch | Step | Validation Loss |" in result.stdout + result.stderr
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / ".hydra" / "config.yaml").is_file()


@pytest.mark.slow
def test_cli_without_network_stops_fast_and_names_the_override(tmp_path):
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bert_pos.train",
            "+experiment=baseline",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "cannot be reached" in output
    assert "model 'bert-base-cased'" in output and "model.name_or_path=" in output
    assert "dataset 'eriktks/conll2003'" in output and "data.dir=" in output
    assert "Traceback" not in output


@pytest.mark.slow
def test_cli_rejects_a_misspelt_key(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bert_pos.train",
            "+experiment=demo",
            "optim.learning_rate=1",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    # the Hugging Face Trainer's name for it, answered with bert_pos's
    assert "optim.learning_rate: not a setting of bert_pos.train; did you mean optim.lr?" in (
        result.stderr
    )


@pytest.mark.slow
def test_cpu_bf16_autocast_trains(tmp_path):
    cfg = compose_config(TINY_DEMO_OVERRIDES + ["precision=bf16", "epochs=2", "device=cpu"])
    rows = train(cfg, tmp_path)["epochs"]
    assert all(math.isfinite(row["val/loss"]) for row in rows)
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]


@pytest.mark.slow
def test_fp16_needs_cuda(tmp_path):
    cfg = compose_config(TINY_DEMO_OVERRIDES + ["precision=fp16", "device=cpu"])
    with pytest.raises(ValueError, match="precision=fp16 needs CUDA"):
        train(cfg, tmp_path)


@pytest.mark.slow
def test_a_log_file_gets_a_progress_line_with_the_eta(tmp_path, caplog):
    """Without a terminal (nohup, SLURM) the progress bar is off: a line every
    `progress_every_s` seconds says where the run is (here: every step)."""
    import logging

    cfg = compose_config(TINY_DEMO_OVERRIDES + ["epochs=1", "progress_every_s=0"])
    with caplog.at_level(logging.INFO, logger="bert_pos.training"):
        metrics = train(cfg, tmp_path)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    progress = [line for line in lines if "ETA" in line]
    assert len(progress) == metrics["steps"]
    assert re.fullmatch(
        r"step 1/38, epoch 0\.03, loss \d+\.\d{4}, \d+ tokens/s, "
        r"elapsed \d:\d\d:\d\d, ETA \d:\d\d:\d\d",
        progress[0],
    )
