import importlib.util
import json

import pytest
from hydra import compose, initialize_config_dir
from transformers import BertConfig

from bert_pos.bench import (
    FLOOR_STEPS,
    bench,
    configs_of_sides,
    format_report,
    training_flops_per_token,
)
from bert_pos.devices import cpu_description
from tests.helpers import CONF_DIR, TINY_DEMO_OVERRIDES


def test_bench_config_is_the_training_config_with_its_own_folder():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("bench", ["+experiment=baseline"], return_hydra_config=True)
    assert cfg.optim.lr == 2e-5 and cfg.data.batch_size == 8
    assert cfg.hydra.run.dir.startswith("experiments/bench/baseline/")


def test_trainer_side_can_run_the_cards_precision_and_eval_batch():
    overrides = ["+experiment=baseline", "precision=bf16", "eval.batch_size=64"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        same = configs_of_sides(compose("bench", overrides))
        card = configs_of_sides(compose("bench", overrides + [
            "trainer.precision=fp32", "trainer.eval_batch_size=8"]))  # fmt: skip
    assert same["trainer"] == same["bert_pos"]
    assert "trainer" not in same["bert_pos"]  # the recipe proper, as bert_pos.train reads it
    assert (card["bert_pos"].precision, card["bert_pos"].eval.batch_size) == ("bf16", 64)
    assert (card["trainer"].precision, card["trainer"].eval.batch_size) == ("fp32", 8)
    assert card["trainer"].optim == card["bert_pos"].optim  # the training recipe is shared


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None,
                    reason="the Trainer needs the bench extra (accelerate)")  # fmt: skip
def test_both_sides_run_the_same_recipe_and_report(tmp_path):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("bench", TINY_DEMO_OVERRIDES + [
            "epochs=1", "data.demo_sentences={train: 160, validation: 40, test: 40}",
            "eval.test_at_end=false", "device=cpu"])  # fmt: skip
    results = bench(cfg, tmp_path, ["bert_pos", "trainer", "floor"])
    ours, theirs, floor = results["bert_pos"], results["trainer"], results["floor"]
    assert "error" not in ours and "error" not in theirs and "error" not in floor
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
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["trainer"]["steps"] == 10
    table = (tmp_path / "bench.md").read_text()
    ratio = ours["train_tokens_per_s"] / theirs["train_tokens_per_s"]
    assert f"| training tokens/s (real, non-padding) | {ours['train_tokens_per_s']:.0f} |" in table
    assert f"{ratio:.2f}x |" in table
    assert f", {cpu_description()})" in table.splitlines()[0]  # the CPU's kernels, native bf16
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
