"""bert_pos.bench (a command): both sides run the same recipe, the floor, time to accuracy
over seeds, and a report that names a failed side. Tiny random models; `slow` for the runs.
"""

import importlib.util
import json

import pytest
from hydra import compose, initialize_config_dir
from transformers import BertConfig

from bert_pos.bench import (
    average_over_seeds,
    bench,
    configs_of_sides,
    format_report,
    training_flops_per_token,
)
from bert_pos.cli import accept_plus_groups
from bert_pos.runtime.devices import cpu_description
from bert_pos.scoring.time_to_accuracy import format_time_to_accuracy, time_to, times_to_targets
from bert_pos.training.floor import FLOOR_STEPS
from tests.helpers import CONF_DIR, TINY_DEMO_OVERRIDES


def test_bench_config_is_the_training_config_with_its_own_folder():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("bench", ["experiment=baseline"], return_hydra_config=True)
    assert cfg.optim.lr == 2e-5 and cfg.data.batch_size == 8
    assert cfg.hydra.run.dir.startswith("experiments/bench/baseline/")


def test_trainer_side_can_run_the_cards_precision_and_eval_batch():
    overrides = ["experiment=baseline", "precision=bf16", "eval.batch_size=64"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        same = configs_of_sides(compose("bench", overrides))
        card = configs_of_sides(
            compose("bench", overrides + ["trainer.precision=fp32", "trainer.eval_batch_size=8"])
        )
    assert same["trainer"] == same["bert_pos"]
    assert "trainer" not in same["bert_pos"]  # the recipe proper, as bert_pos.train reads it
    assert (card["bert_pos"].precision, card["bert_pos"].eval.batch_size) == ("bf16", 64)
    assert (card["trainer"].precision, card["trainer"].eval.batch_size) == ("fp32", 8)
    assert card["trainer"].optim == card["bert_pos"].optim  # the training recipe is shared


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("accelerate") is None,
    reason="the Trainer needs the bench extra (accelerate)",
)
def test_both_sides_run_the_same_recipe_and_report(tmp_path):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "bench",
            accept_plus_groups(TINY_DEMO_OVERRIDES)
            + [
                "epochs=1",
                "data.demo_sentences={train: 160, validation: 40, test: 40}",
                "eval.test_at_end=false",
                "device=cpu",
                "eval.every_n_steps=4",
                "seeds=[42,43]",
            ],
        )
    results = bench(cfg, tmp_path, ["bert_pos", "trainer", "floor"])
    ours, theirs, floor = results["bert_pos"], results["trainer"], results["floor"]
    assert "error" not in ours and "error" not in theirs and "error" not in floor
    # time to accuracy: both sides evaluate at the same steps (every 4, and the epoch's end)
    for side in (ours, theirs):
        assert sorted(side["curves"]) == [42, 43]
        for curve in side["curves"].values():
            assert [point["step"] for point in curve] == [4, 8, 10]
            seconds = [point["train_seconds"] for point in curve]
            assert 0 < seconds[0] < seconds[1] < seconds[2] < side["wall_seconds"]
        scores = [c[-1]["score"] for c in side["curves"].values()]
        assert side["final_score"] == pytest.approx(sum(scores) / 2)  # the mean of the seeds
    saved = json.loads((tmp_path / "bench.json").read_text())
    accuracy = saved["time_to_accuracy"]
    assert accuracy["reference_side"] == "trainer"
    assert accuracy["reference_score"] == pytest.approx(theirs["final_score"])
    assert [t["share"] for t in accuracy["targets"]] == [0.5, 0.9, 0.98]
    for target in accuracy["targets"]:
        for side_name, side in (("bert_pos", ours), ("trainer", theirs)):
            for seed, curve in side["curves"].items():
                assert target["seconds"][side_name][str(seed)] == time_to(curve, target["score"])
    table = (tmp_path / "bench.md").read_text()
    assert table.startswith("Time to accuracy: training seconds")  # the headline
    assert "| 98% |" in table
    assert (tmp_path / "seed-43" / "trainer").is_dir() and not (
        tmp_path / "seed-43" / "floor"
    ).exists()
    # the floor: the same model's own steps on unpadded batches of the run's training tokens
    assert floor["steps"] == FLOOR_STEPS and floor["train_tokens_per_s"] > 0
    for side in (ours, theirs):
        assert side["share_of_floor"] == side["train_tokens_per_s"] / floor["train_tokens_per_s"]
    assert ours["steps"] == theirs["steps"] == 10  # 160 sentences in batches of 16
    for side in (ours, theirs):
        assert side["train_tokens_per_s"] > 0 and side["eval_tokens_per_s"] > 0
        assert 0 < side["first_step_seconds"] < side["wall_seconds"]
        assert side["peak_memory_gib"] > 0.1  # a Python process with torch loaded
        assert side["score_name"] == "val/f1" and 0 <= side["final_score"] <= 1
    assert saved["trainer"]["steps"] == 10
    ratio = ours["train_tokens_per_s"] / theirs["train_tokens_per_s"]
    assert f"| training tokens/s (real, non-padding) | {ours['train_tokens_per_s']:.0f} |" in table
    assert f"{ratio:.2f}x |" in table
    device_line = next(line for line in table.splitlines() if " on cpu (" in line)
    assert device_line.endswith(f", {cpu_description()})")  # the CPU's kernels, native bf16
    assert f"| share of the model's floor | {ours['share_of_floor']:.0%} |" in table
    assert f"batches of the same tokens): {floor['train_tokens_per_s']:.0f} training" in table


def test_report_names_a_failed_side():
    table = format_report(
        {"bert_pos": {"train_tokens_per_s": 100.0}, "trainer": {"error": "ImportError: x"}},
        "cpu",
        "recipe",
    )
    assert "| training tokens/s (real, non-padding) | 100 | - | - |" in table
    assert "trainer failed: ImportError: x" in table


def test_flops_per_token_of_bert_base():
    config = BertConfig()  # bert-base: 12 layers, 768 wide, 3072 intermediate
    # 85M non-embedding weights x 6, plus attention over 128 tokens
    expected = 6 * 12 * (4 * 768 * 768 + 2 * 768 * 3072) + 12 * 12 * 768 * 128
    assert training_flops_per_token(config, 128) == expected
    assert 5.0e8 < expected < 5.3e8


def test_report_gives_each_side_as_a_share_of_the_floor():
    results = {
        "bert_pos": {"train_tokens_per_s": 900.0, "share_of_floor": 0.9},
        "trainer": {"train_tokens_per_s": 500.0, "share_of_floor": 0.5},
        "floor": {"train_tokens_per_s": 1000.0, "ms_per_step": 150.0},
    }
    table = format_report(results, "cpu", "recipe")
    assert "same tokens): 1000 training tokens/s, 150.0 ms per step" in table
    assert "| share of the model's floor | 90% | 50% | - |" in table
    assert "| training tokens/s (real, non-padding) | 900 | 500 | 1.80x |" in table


def test_time_to_a_target_is_the_first_evaluation_reaching_it():
    curve = [
        {"step": 25, "train_seconds": 10.0, "score": 0.2},
        {"step": 50, "train_seconds": 20.0, "score": 0.6},
        {"step": 75, "train_seconds": 30.0, "score": 0.5},
    ]
    assert time_to(curve, 0.1) == 10.0
    assert time_to(curve, 0.5) == 20.0  # not 30: the first evaluation at or above
    assert time_to(curve, 0.6) == 20.0
    assert time_to(curve, 0.61) is None


def test_seeds_average_and_targets_come_from_the_trainers_final_score():
    def side(final, curve, steps=10):
        return {
            "final_score": final,
            "steps": steps,
            "score_name": "val/f1",
            "curve": curve,
            "train_tokens_per_s": 100.0 * final,
        }

    fast = [
        {"step": 5, "train_seconds": 1.0, "score": 0.5},
        {"step": 10, "train_seconds": 2.0, "score": 0.8},
    ]
    slow = [
        {"step": 5, "train_seconds": 3.0, "score": 0.3},
        {"step": 10, "train_seconds": 6.0, "score": 0.6},
    ]
    results = average_over_seeds(
        {
            1: {"bert_pos": side(0.8, fast), "trainer": side(0.6, slow)},
            2: {"bert_pos": side(0.6, slow), "trainer": side(0.8, fast)},
        }
    )
    assert results["trainer"]["final_score"] == pytest.approx(0.7)
    assert results["trainer"]["steps"] == 10 and isinstance(results["trainer"]["steps"], int)
    assert results["bert_pos"]["curves"] == {1: fast, 2: slow}
    accuracy = times_to_targets(results, [0.5, 1.0])
    assert accuracy["reference_score"] == pytest.approx(0.7)
    half, whole = accuracy["targets"]
    assert half["score"] == pytest.approx(0.35)
    assert half["seconds"]["bert_pos"] == {1: 1.0, 2: 6.0}
    assert whole["seconds"]["trainer"] == {1: None, 2: 2.0}  # 0.7: only seed 2's 0.8 reaches it
    table = format_time_to_accuracy(accuracy, [1, 2])
    assert "| 50% | 0.3500 | 3.5 (1.0-6.0) | 3.5 (1.0-6.0) | 1.00x |" in table
    assert "| 100% | 0.7000 | 2.0, 1/2 seeds | 2.0, 1/2 seeds | - |" in table


def test_a_failed_seed_fails_its_side():
    results = average_over_seeds(
        {1: {"trainer": {"final_score": 0.5}}, 2: {"trainer": {"error": "OSError: x"}}}
    )
    assert results["trainer"] == {"error": "seed 2: OSError: x"}
