"""Side by side: the same recipe through bert_pos's loop and through the Hugging Face Trainer.

    python -m bert_pos.bench +experiment=baseline model=minilm data.dir=../shared/data/conll2003 epochs=1
    python -m bert_pos.bench +experiment=baseline model=minilm data.dir=... max_steps=300   # minutes
    make bench-gpu        # CUDA: the card's 3 epochs with a bert-base-shaped model

The recipe is the training config (same keys as `bert_pos.train`). Both sides label every
subword (`data.label_strategy=all`, the card's recipe) and score over labelled subwords
(`eval.level=subword`, as the card's `compute_metrics` did), so their F1 compare like for like.
The Trainer side is the card's script as its users run it: `AutoModelForTokenClassification`,
`DataCollatorForTokenClassification`, Trainer defaults, evaluation and a checkpoint every epoch.

Each side runs in its own child process, one after the other, so each has its own peak memory.
A third child times the model's floor (`run_floor`): bert_pos's own model and optimizer alone
on unpadded batches of the same tokens, what no training loop can beat; each side's throughput
is also given as a share of it.

The headline is time to accuracy: both sides evaluate at the same steps (`eval.every_n_steps`
and each epoch's end) and record the validation score against training time, evaluations
excluded from the clock. With `seeds=[42,43]` each side runs once per seed. Printed: the
training seconds each side needs to reach `targets` (shares of the Trainer's final validation
score, mean over seeds), mean and range over the seeds.

Then, averaged over the seeds: real (non-padding) training tokens/s and their share of the
floor, evaluation tokens/s, time to first step, ms per optimizer step, peak memory, validation
F1 (or accuracy), and the ratios; on CUDA also model FLOPs utilisation. The device line names
the CPU's kernels and native bf16 (or the GPU). All of it goes to `<run>/bench.md`, and to
`<run>/bench.json` with every seed's values and curves.

    python -m bert_pos.bench +experiment=baseline model=minilm data.dir=... max_steps=150 \
        data.max_train_sentences=1500 data.max_eval_sentences=500 eval.every_n_steps=25 seeds=[42,43]
"""

import json
import logging
import multiprocessing
import platform
import resource
import time
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from bert_pos.cli import command, run_command
from bert_pos.config import BenchConfig, check_config, register_configs
from bert_pos.scoring.time_to_accuracy import format_time_to_accuracy, times_to_targets

log = logging.getLogger(__name__)
register_configs()
ConfigStore.instance().store(name="bench_schema", node=BenchConfig)

# Dense bf16/fp16 tensor-core peaks (FLOP/s), for model FLOPs utilisation on known GPUs.
GPU_PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


def peak_memory_bytes(device_type: str) -> int:
    """Peak resident memory of this process (CPU), or peak allocated CUDA memory."""
    import torch

    if device_type == "cuda":
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def training_flops_per_token(config, sequence_length: float) -> float:
    """Forward + backward FLOPs per token of a BERT encoder: 6 x (non-embedding parameters)
    for the matrix multiplies, plus 12 x layers x hidden x length for attention scores and
    their weighted sums (the usual accounting of the PaLM paper's appendix)."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    per_layer = 4 * hidden * hidden + 2 * hidden * config.intermediate_size
    return 6 * layers * per_layer + 12 * layers * hidden * sequence_length


# ---------------------------------------------------------------- the two sides


def run_bert_pos(cfg: DictConfig, out_dir: Path) -> dict:
    from bert_pos.training.recipe import run_recipe

    metrics = run_recipe(cfg, out_dir)
    metric = metrics["selection_metric"]
    # Measured as on the Trainer side: the training loop's wall time less its evaluations.
    train_seconds = metrics["loop_seconds"] - metrics["eval_seconds"]
    return {
        "train_tokens_per_s": metrics["train_tokens"] / train_seconds,
        "eval_tokens_per_s": metrics["eval_tokens_per_s"],
        "first_step_seconds": metrics["first_step_seconds"],
        "train_seconds": train_seconds,
        "eval_seconds": metrics["eval_seconds"],
        "steps": metrics["steps"],
        "final_score": metrics["final"][metric],
        "best_score": metrics["best"][metric],
        "score_name": metric,
        "mean_train_length": metrics["mean_train_length"],
        "curve": metrics["curve"],
    }


def run_trainer(cfg: DictConfig, out_dir: Path) -> dict:
    from bert_pos.training.reference_trainer import run_trainer as run_reference_trainer

    return run_reference_trainer(cfg, out_dir)


def run_floor(cfg: DictConfig, out_dir: Path) -> dict:
    from bert_pos.training.floor import run_floor as run_model_floor

    return run_model_floor(cfg, out_dir)


SIDES = {"bert_pos": run_bert_pos, "trainer": run_trainer, "floor": run_floor}


def _child(side: str, cfg_yaml: str, out_dir: str, results) -> None:
    """One side in a fresh process: its own peak memory, nothing shared with the other."""
    import torch

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    cfg = OmegaConf.create(cfg_yaml)
    device_type = "cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu"
    try:
        started = time.perf_counter()
        measured = SIDES[side](cfg, Path(out_dir))
        measured["wall_seconds"] = time.perf_counter() - started
        measured["peak_memory_bytes"] = peak_memory_bytes(device_type)
        results.put((side, measured))
    except BaseException as err:  # reported by the parent, which goes on with the other side
        results.put((side, {"error": f"{type(err).__name__}: {err}"}))
        raise


def format_report(results: dict, device: str, recipe: str) -> str:
    """A Markdown table of both sides and the bert_pos / Trainer ratio, and each side's training
    throughput as a share of the model's floor (`run_floor`) where it was measured."""
    ours, theirs = results.get("bert_pos", {}), results.get("trainer", {})
    floor = results.get("floor", {})
    # (title, key, format, whether a bert_pos / Trainer ratio means something)
    rows = [
        ("training tokens/s (real, non-padding)", "train_tokens_per_s", "{:.0f}", True),
        ("share of the model's floor", "share_of_floor", "{:.0%}", False),
        ("evaluation tokens/s", "eval_tokens_per_s", "{:.0f}", True),
        ("time to first step (s)", "first_step_seconds", "{:.1f}", True),
        ("training time (s)", "train_seconds", "{:.1f}", True),
        ("evaluation time (s)", "eval_seconds", "{:.1f}", True),
        ("wall time (s)", "wall_seconds", "{:.1f}", True),
        ("optimizer steps", "steps", "{:d}", False),
        ("peak memory (GiB)", "peak_memory_gib", "{:.2f}", True),
        ("ms per optimizer step", "ms_per_step", "{:.1f}", True),
        ("model FLOPs utilisation", "mfu", "{:.1%}", True),
        ("final validation score", "final_score", "{:.4f}", False),
        ("best validation score", "best_score", "{:.4f}", False),
    ]
    lines = [f"{recipe} on {device}", ""]
    if "train_tokens_per_s" in floor:
        mfu = f", model FLOPs utilisation {floor['mfu']:.1%}" if "mfu" in floor else ""
        lines += [
            f"The model's floor (forward + backward + optimizer step alone, on unpadded "
            f"batches of the same tokens): {floor['train_tokens_per_s']:.0f} training "
            f"tokens/s, {floor['ms_per_step']:.1f} ms per step{mfu}",
            "",
        ]
    lines += ["| | bert_pos | Trainer | bert_pos / Trainer |", "|---|---|---|---|"]
    for title, key, form, with_ratio in rows:
        if key not in ours and key not in theirs:
            continue
        cells = [form.format(side[key]) if key in side else "-" for side in (ours, theirs)]
        ratio = "-"
        if with_ratio and key in ours and key in theirs and theirs[key]:
            ratio = f"{ours[key] / theirs[key]:.2f}x"
        lines.append(f"| {title} | {cells[0]} | {cells[1]} | {ratio} |")
    for side, values in results.items():
        if "error" in values:
            lines.append(f"\n{side} failed: {values['error']}")
    return "\n".join(lines)


def configs_of_sides(cfg: DictConfig) -> dict[str, DictConfig]:
    """The recipe each side runs: the training config, with the `trainer` keys applied to
    the Trainer side (its precision and eval batch may be the card's, not bert_pos's)."""
    recipe = OmegaConf.to_container(cfg, resolve=True)
    reference = recipe.pop("trainer", None) or {}
    for bench_only in ("seeds", "targets"):
        recipe.pop(bench_only, None)
    trainer_recipe = OmegaConf.create(recipe)
    if reference.get("precision") is not None:
        trainer_recipe.precision = reference["precision"]
    if reference.get("eval_batch_size") is not None:
        trainer_recipe.eval.batch_size = reference["eval_batch_size"]
    return {"bert_pos": OmegaConf.create(recipe), "trainer": trainer_recipe}


def bench(cfg: DictConfig, run_dir: Path, sides: list[str]) -> dict:
    """Run each side (and the floor) once per seed; returns each side's values averaged over
    the seeds, with every seed's curve under `curves`."""
    check_config(cfg, BenchConfig)
    import torch  # once the config is known to be good

    from bert_pos.runtime.devices import cpu_description

    if cfg.data.label_strategy != "all" or cfg.eval.level != "subword":
        log.info("both sides label every subword and score over subwords (the card's recipe)")
        cfg.data.label_strategy, cfg.eval.level = "all", "subword"
    side_configs = configs_of_sides(cfg)
    seeds = list(cfg.seeds or [cfg.seed])
    per_seed = {}
    for seed in seeds:
        seed_dir = run_dir if len(seeds) == 1 else run_dir / f"seed-{seed}"
        per_seed[seed] = {}
        for side in sides:
            if side == "floor" and seed != seeds[0]:
                continue  # the model's own speed: it learns nothing, one measurement will do
            side_cfg = side_configs.get(side, side_configs["bert_pos"]).copy()
            side_cfg.seed = seed
            per_seed[seed][side] = run_side(side, side_cfg, seed_dir / side)
            log.info("%s, seed %d: %s", side, seed, per_seed[seed][side])
    results = average_over_seeds(per_seed)

    device = "cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu"
    floor = results.get("floor", {}).get("train_tokens_per_s")
    for side, values in results.items():
        if floor and side != "floor" and "train_tokens_per_s" in values:
            values["share_of_floor"] = values["train_tokens_per_s"] / floor
        if "peak_memory_bytes" in values:
            values["peak_memory_gib"] = values["peak_memory_bytes"] / 2**30
        if "steps" in values:
            values["ms_per_step"] = 1000 * values["train_seconds"] / values["steps"]
    if device == "cuda":
        add_model_flops_utilisation(cfg, results)
    if device == "cuda":
        name = torch.cuda.get_device_name()
    else:  # the instruction set decides CPU speed, bf16 above all (AVX512-BF16, AMX)
        name = f"{platform.processor() or 'CPU'}, {cpu_description()}"
    recipe = (
        f"{cfg.model.name_or_path or cfg.model.package or 'random BERT'}, "
        f"batch {cfg.data.batch_size} x {cfg.grad_accum_steps}, lr {cfg.optim.lr:g}, "
        f"{cfg.max_steps or cfg.epochs} {'steps' if cfg.max_steps else 'epochs'}, "
        f"{precisions_and_eval_batches(side_configs)}, {torch.get_num_threads()} threads, "
        f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
    )
    accuracy = times_to_targets(results, list(cfg.targets))
    table = (
        format_time_to_accuracy(accuracy, seeds)
        + "\n\n"
        + format_report(results, f"{device} ({name})", recipe)
    )
    (run_dir / "bench.json").write_text(
        json.dumps({**results, "time_to_accuracy": accuracy, "per_seed": per_seed}, indent=2) + "\n"
    )
    (run_dir / "bench.md").write_text(table + "\n")
    print(table)
    return results


def run_side(side: str, side_cfg: DictConfig, out_dir: Path) -> dict:
    """One side in a child process of its own; what it measured, or {"error": ...}."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(
        target=_child, args=(side, OmegaConf.to_yaml(side_cfg), str(out_dir), queue)
    )
    process.start()
    process.join()
    if queue.empty():
        return {"error": f"exited with code {process.exitcode}"}
    return queue.get()[1]


def average_over_seeds(per_seed: dict[int, dict[str, dict]]) -> dict[str, dict]:
    """Each side's values over the seeds: a number is their mean (a count that is the same in
    every seed stays an int), anything else the first seed's; the curves by seed; an error
    if any seed failed."""
    results = {}
    for side in dict.fromkeys(side for sides in per_seed.values() for side in sides):
        runs = {seed: sides[side] for seed, sides in per_seed.items() if side in sides}
        failed = [
            f"seed {seed}: {values['error']}" for seed, values in runs.items() if "error" in values
        ]
        if failed:
            results[side] = {"error": "; ".join(failed)}
            continue
        first = next(iter(runs.values()))
        averaged = {}
        for key, value in first.items():
            values = [run[key] for run in runs.values()]
            if key == "curve":
                averaged["curves"] = {seed: run["curve"] for seed, run in runs.items()}
            elif isinstance(value, bool) or not isinstance(value, int | float) or None in values:
                averaged[key] = value
            elif all(isinstance(v, int) for v in values) and len(set(values)) == 1:
                averaged[key] = value
            else:
                averaged[key] = sum(values) / len(values)
        results[side] = averaged
    return results


def precisions_and_eval_batches(side_configs: dict[str, DictConfig]) -> str:
    """`bf16, eval batch 64` when both sides agree, else each side's."""
    described = {
        side: f"{c.precision}, eval batch {c.eval.batch_size}" for side, c in side_configs.items()
    }
    if len(set(described.values())) == 1:
        return described["bert_pos"]
    return "; ".join(f"{side}: {text}" for side, text in described.items())


def add_model_flops_utilisation(cfg: DictConfig, results: dict) -> None:
    """Model FLOPs per second over the GPU's dense peak, from tokens/s and the model's shape."""
    import torch
    from transformers import AutoConfig

    from bert_pos.modeling.encoders import random_config
    from bert_pos.runtime.hub import resolve_model_source

    source = resolve_model_source(cfg.model)
    if source:
        config = AutoConfig.from_pretrained(source)
    else:
        random_init = OmegaConf.to_container(cfg.model.random_init)
        config = random_config(random_init, random_init.get("vocab_size", 30522))
    peak = next((v for k, v in GPU_PEAK_FLOPS.items() if k in torch.cuda.get_device_name()), None)
    length = results.get("bert_pos", {}).get("mean_train_length", 32.0)
    for values in results.values():
        if peak and "train_tokens_per_s" in values:
            flops = training_flops_per_token(config, length) * values["train_tokens_per_s"]
            values["mfu"] = flops / peak


@hydra.main(version_base="1.3", config_path="../conf", config_name="bench")
@command("bert_pos.bench", BenchConfig, check=lambda cfg: check_config(cfg, BenchConfig))
def main(cfg: DictConfig) -> None:
    bench(cfg, Path(HydraConfig.get().runtime.output_dir), list(SIDES))


if __name__ == "__main__":
    run_command(main)
