"""Fine-tune BERT for token classification (NER, POS, chunking) with a handwritten loop.

    python -m bert_pos.train +experiment=demo        # offline quick start, about a minute on CPU
    python -m bert_pos.train +experiment=baseline    # the bert-finetuned-pos card's recipe
    python -m bert_pos.train +experiment=baseline model=minilm data.dir=../shared/data/conll2003
    python -m bert_pos.train -m +experiment=baseline optim.lr=1e-5,2e-5 seed=1,2   # a sweep

Hydra owns the run folder; everything a run writes goes there: `tensorboard/`,
`checkpoints/{best,last}/model.safetensors`, `tokenizer/`, `metrics.json`, `train.log`.
"""

import itertools
import json
import logging
import math
import random
import statistics
import time
import traceback
from contextlib import nullcontext
from pathlib import Path

import datasets
import hydra
import numpy as np
import torch
import torch.nn.functional as F
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file, save_file
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm
from transformers import AutoTokenizer, get_linear_schedule_with_warmup

from bert_pos.config import FAILED_MARKER, ConfigError, check_config, register_configs
from bert_pos.conll import ConllFormatError
from bert_pos.data import (
    IGNORE_INDEX,
    build_dataloaders,
    build_wordpiece_tokenizer,
    load_splits,
    resolve_label_names,
    subset,
    tokenize_splits_cached,
)
from bert_pos.evaluation import evaluate_split
from bert_pos.export import export_model, model_card
from bert_pos.hub import HubUnavailableError, check_hub_access, resolve_model_source
from bert_pos.labels import begin_to_inside_map, is_span_label_set
from bert_pos.metrics import format_per_type_table, format_results_table
from bert_pos.model import build_model

log = logging.getLogger(__name__)
register_configs()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but no CUDA device is available; use device=auto or cpu")
    return torch.device(device)


def autocast_for(device: torch.device, precision: str):
    """The mixed-precision context for forward passes; fp32 runs without autocast."""
    if precision == "fp32":
        return nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision=fp16 needs CUDA (on CPU use precision=bf16 or fp32)")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def build_optimizer(model: torch.nn.Module, lr, betas, eps, weight_decay):
    """AdamW; biases and LayerNorm weights get no weight decay (as in BERT's own recipe)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if name.endswith(".bias") or "LayerNorm" in name else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # The fused kernel updates all parameters in one pass: on a 2-core CPU it cuts MiniLM's
    # optimizer step from ~160 ms to ~25 ms, and it is the fast path on CUDA too.
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, fused=True)


def hyperparameters(cfg: DictConfig) -> dict[str, float | int | str | bool]:
    """The recipe's knobs as flat scalars, for TensorBoard's HParams tab (one row per run)."""
    model = cfg.model.name_or_path or cfg.model.package or "random_init"
    return {
        "model": str(model), "task": cfg.data.task, "label_strategy": cfg.data.label_strategy,
        "lr": cfg.optim.lr, "batch_size": cfg.data.batch_size,
        "grad_accum_steps": cfg.grad_accum_steps, "epochs": cfg.epochs, "seed": cfg.seed,
        "weight_decay": cfg.optim.weight_decay, "warmup_ratio": cfg.optim.warmup_ratio,
        "warmup_steps": cfg.optim.warmup_steps, "dropout": cfg.model.dropout,
        "precision": cfg.precision,
        "max_train_sentences": cfg.data.max_train_sentences or 0,  # 0: the whole split
    }  # fmt: skip


def write_hparams(writer: SummaryWriter, hparams: dict, final_metrics: dict[str, float]) -> None:
    """Record this run in the HParams plugin inside the run's own event file.

    `SummaryWriter.add_hparams` would write into a new timestamped subfolder, splitting one
    run into two in TensorBoard; writing the plugin's summaries here keeps it one run, so
    `tensorboard --logdir <sweep folder>` lists every run of a sweep in the HParams tab.
    """
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    experiment, session_start, session_end = hparams_summaries(hparams, final_metrics)
    for summary in (experiment, session_start, session_end):
        writer.file_writer.add_summary(summary)
    for name, value in final_metrics.items():
        writer.add_scalar(name, value)


def save_checkpoint(model: torch.nn.Module, directory: Path, **metadata) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(
        state, directory / "model.safetensors", metadata={k: str(v) for k, v in metadata.items()}
    )


def accumulate_gradients(model, window: list[dict], autocast, scaler, device) -> tuple[float, int]:
    """Forward and backward over the micro-batches of one optimizer step.

    Each micro-batch's summed loss is divided by the labelled tokens of the whole window, so the
    accumulated gradient equals that of one batch holding all of them: k micro-batches of b
    give the gradient of one batch of k*b, the last, shorter window of an epoch included.
    Returns (summed loss, labelled tokens) of the window.
    """
    window_labelled = sum(int((batch["labels"] != IGNORE_INDEX).sum()) for batch in window)
    window_loss_sum = 0.0
    for batch in window:
        batch = {key: tensor.to(device, non_blocking=True) for key, tensor in batch.items()}
        with autocast:
            logits = model(batch["input_ids"], batch["attention_mask"])  # (B, T, C)
        loss_sum = F.cross_entropy(
            logits.float().flatten(0, 1), batch["labels"].flatten(),
            ignore_index=IGNORE_INDEX, reduction="sum",
        )  # fmt: skip
        scaler.scale(loss_sum / max(window_labelled, 1)).backward()
        window_loss_sum += loss_sum.item()
    return window_loss_sum, window_labelled


def train(cfg: DictConfig, run_dir: str | Path) -> dict:
    """Train as `cfg` says, writing into `run_dir`; returns the contents of metrics.json."""
    check_config(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    autocast = autocast_for(device, cfg.precision)

    # ---- where weights and data come from; fail fast when they would need an absent network
    model_source = resolve_model_source(cfg.model)
    from_hub = cfg.data.dir is None and not cfg.data.demo_corpus
    check_hub_access(
        model_name=model_source if cfg.model.package is None else None,
        dataset_name=cfg.data.hub_name if from_hub else None,
    )

    # ---- data
    demo_corpus_dir = run_dir / "demo_corpus"
    label_names = resolve_label_names(cfg.data, demo_corpus_dir)
    span_task = is_span_label_set(label_names)
    selection_metric = "f1" if span_task else "accuracy"
    datasets.disable_progress_bars()
    splits = load_splits(cfg.data, label_names, demo_corpus_dir)
    splits = subset(splits, cfg.data.max_train_sentences, cfg.data.max_eval_sentences)
    log.info("sentences: %s", {split: len(dataset) for split, dataset in splits.items()})

    if cfg.model.tokenizer is not None or model_source is not None:
        tokenizer = AutoTokenizer.from_pretrained(cfg.model.tokenizer or model_source)
    else:
        tokenizer = build_wordpiece_tokenizer(splits["train"]["tokens"], run_dir / "tokenizer")
    if not tokenizer.is_fast:
        raise ValueError("a fast tokenizer is needed (word_ids() maps subwords to words)")
    tokenizer.save_pretrained(run_dir / "tokenizer")

    model = build_model(
        num_labels=len(label_names), dropout=cfg.model.dropout, pretrained_path=model_source,
        random_init=OmegaConf.to_container(cfg.model.random_init) if cfg.model.random_init else None,
        vocab_size=len(tokenizer),
    ).to(device)  # fmt: skip
    log.info("model: %.1fM parameters", sum(p.numel() for p in model.parameters()) / 1e6)
    step_model = model  # what training steps call; evaluation always runs the eager model
    if cfg.compile:
        # One compiled graph per (batch, length) shape; buckets keep the count small, and the
        # cache must hold them all or every new shape would evict an old one and recompile.
        torch._dynamo.config.cache_size_limit = 64
        step_model = torch.compile(model, mode=cfg.compile_mode, dynamic=False)

    max_length = min(tokenizer.model_max_length, model.config.max_position_embeddings)
    tokenized = tokenize_splits_cached(
        splits, tokenizer, cfg.data.label_strategy, begin_to_inside_map(label_names), max_length,
        cfg.data.cache_dir,
    )  # fmt: skip
    loaders = build_dataloaders(
        tokenized, batch_size=cfg.data.batch_size, eval_batch_size=cfg.eval.batch_size,
        group_by_length=cfg.data.group_by_length, pad_token_id=tokenizer.pad_token_id,
        pad_to_multiple_of=cfg.data.pad_to_multiple_of, num_workers=cfg.data.num_workers,
        seed=cfg.seed, pin_memory=device.type == "cuda",
    )  # fmt: skip
    train_loader = loaders["train"]

    # ---- optimisation: one optimizer step per `grad_accum_steps` micro-batches
    accum = cfg.grad_accum_steps
    steps_per_epoch = math.ceil(len(train_loader) / accum)  # the last window may be shorter
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    warmup_steps = cfg.optim.warmup_steps or math.ceil(cfg.optim.warmup_ratio * total_steps)
    optimizer = build_optimizer(
        model, cfg.optim.lr, cfg.optim.betas, cfg.optim.eps, cfg.optim.weight_decay
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    max_grad_norm = cfg.optim.max_grad_norm or math.inf
    log.info(
        "%d optimizer steps (%d per epoch, batch %d x %d accumulation), %d warmup",
        total_steps, steps_per_epoch, cfg.data.batch_size, accum, warmup_steps,
    )  # fmt: skip

    writer = SummaryWriter(str(run_dir / "tensorboard"))
    writer.add_text("config", "```\n" + OmegaConf.to_yaml(cfg) + "\n```")
    epoch_rows: list[dict] = []
    best = {"value": -math.inf}
    step = 0
    train_seconds = 0.0
    train_tokens = 0
    first_step_seconds = None  # from the start of train() to the end of the first step
    # real (non-padding) tokens of one pass over the validation split, for eval tokens/s
    validation_tokens = sum(len(ids) for ids in tokenized["validation"]["input_ids"])
    eval_seconds = 0.0
    eval_tokens = 0

    def run_evaluation(epoch: float, train_loss: float) -> dict:
        """Validation scores at this point, logged, kept, and saved as `best` when best."""
        nonlocal eval_seconds, eval_tokens
        eval_started = time.perf_counter()
        scores, figure = evaluate_split(
            model, loaders["validation"], splits["validation"], label_names, span_task,
            cfg.eval.level, cfg.eval.mode, device, autocast, run_dir / "eval" / "validation",
            title=f"validation, step {step}",
        )  # fmt: skip
        writer.add_figure("val/confusion_matrix", figure, step)
        eval_seconds += time.perf_counter() - eval_started
        eval_tokens += validation_tokens
        row = {"epoch": round(epoch, 4), "step": step, "train/loss": train_loss}
        row.update({f"val/{k}": v for k, v in scores.items() if k != "per_type"})
        for entity_type, values in scores.get("per_type", {}).items():
            row[f"val/{entity_type}/f1"] = values["f1"]
        for key, value in row.items():
            if key.startswith("val/"):
                writer.add_scalar(key, value, step)
        log.info(
            "step %d epoch %.2f: %s", step, epoch, {k: round(float(v), 4) for k, v in row.items()}
        )
        if scores[selection_metric] > best["value"]:
            best.update(value=scores[selection_metric], epoch=row["epoch"], step=step)
            save_checkpoint(model, run_dir / "checkpoints" / "best", step=step, epoch=row["epoch"])
        epoch_rows.append(row)
        return row

    # ---- the loop
    loop_started = time.perf_counter()
    model.train()
    done = False
    for epoch in range(cfg.epochs):
        train_loader.batch_sampler.set_epoch(epoch)
        micro_batches = iter(train_loader)
        epoch_loss_sum, epoch_labelled = 0.0, 0
        progress = tqdm(  # disable=None: only on a terminal, so log files stay readable
            total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=None
        )
        for step_in_epoch in range(steps_per_epoch):
            step_started = time.perf_counter()
            window = list(itertools.islice(micro_batches, accum))
            window_loss_sum, window_labelled = accumulate_gradients(
                step_model, window, autocast, scaler, device
            )
            scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if first_step_seconds is None:
                first_step_seconds = time.perf_counter() - started

            # ---- bookkeeping: real (non-padding) tokens only
            seconds = time.perf_counter() - step_started
            tokens = sum(int(b["attention_mask"].sum()) for b in window)
            train_seconds += seconds
            train_tokens += tokens
            epoch_loss_sum += window_loss_sum
            epoch_labelled += window_labelled
            loss = window_loss_sum / max(window_labelled, 1)
            progress.update()
            progress.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens / seconds:.0f}")
            if step % cfg.log_every_n_steps == 0:
                if progress.disable and step % (cfg.log_every_n_steps * 20) == 0:
                    log.info(
                        "step %d/%d loss %.4f, %.0f tokens/s",
                        step,
                        total_steps,
                        loss,
                        tokens / seconds,
                    )
                writer.add_scalar("train/loss", loss, step)
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
                writer.add_scalar("train/grad_norm", float(grad_norm), step)
                writer.add_scalar("train/tokens_per_s", tokens / seconds, step)
            if cfg.eval.every_n_steps and step % cfg.eval.every_n_steps == 0:
                run_evaluation(epoch + (step_in_epoch + 1) / steps_per_epoch,
                               epoch_loss_sum / max(epoch_labelled, 1))  # fmt: skip
            if step >= total_steps:
                done = True
                break
        progress.close()
        fraction = (step_in_epoch + 1) / steps_per_epoch
        if not (cfg.eval.every_n_steps and step % cfg.eval.every_n_steps == 0):
            run_evaluation(epoch + fraction, epoch_loss_sum / max(epoch_labelled, 1))
        save_checkpoint(model, run_dir / "checkpoints" / "last", step=step, epoch=epoch + fraction)
        if done:
            break

    loop_seconds = time.perf_counter() - loop_started  # steps, evaluations, checkpoints

    # ---- summary: the card's table on the console, everything in metrics.json
    metrics = {
        "experiment": cfg.experiment_name,
        "task": cfg.data.task,
        "eval_level": cfg.eval.level,
        "selection_metric": f"val/{selection_metric}",
        "best": {
            "epoch": best["epoch"],
            "step": best["step"],
            f"val/{selection_metric}": best["value"],
        },
        "epochs": epoch_rows,
        "final": epoch_rows[-1],
        "steps": step,
        "train_seconds": train_seconds,  # optimizer steps only, batch collation included
        "train_tokens": train_tokens,
        "train_tokens_per_s": train_tokens / train_seconds,
        "loop_seconds": loop_seconds,
        "mean_train_length": statistics.fmean(len(ids) for ids in tokenized["train"]["input_ids"]),
        "first_step_seconds": first_step_seconds,
        "eval_seconds": eval_seconds,
        "eval_tokens_per_s": eval_tokens / eval_seconds,
        "label_names": label_names,
    }
    log.info("results:\n%s", format_results_table(epoch_rows))

    # ---- the best checkpoint: scored on test, exported with its model card
    model.load_state_dict(load_file(run_dir / "checkpoints" / "best" / "model.safetensors"))
    if cfg.eval.test_at_end and "test" in loaders:
        test_scores, figure = evaluate_split(
            model, loaders["test"], splits["test"], label_names, span_task, cfg.eval.level,
            cfg.eval.mode, device, autocast, run_dir / "eval" / "test",
            title=f"test, best checkpoint (step {best['step']})",
        )  # fmt: skip
        writer.add_figure("test/confusion_matrix", figure, step)
        for key, value in test_scores.items():
            if key != "per_type":
                writer.add_scalar(f"test/{key}", value, step)
        metrics["test"] = test_scores
        log.info("test, best checkpoint:\n%s", format_per_type_table(test_scores))
    final_metrics = {f"hparams/best_val_{selection_metric}": best["value"]}
    if "test" in metrics:
        final_metrics[f"hparams/test_{selection_metric}"] = metrics["test"][selection_metric]
    write_hparams(writer, hyperparameters(cfg), final_metrics)
    writer.close()
    base_model = cfg.model.name_or_path or cfg.model.package or "a randomly initialised BERT"
    export_model(
        model, tokenizer, label_names, run_dir / "model", model_card(cfg, metrics, base_model)
    )

    metrics["wall_seconds"] = time.perf_counter() - started
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log.info(
        "best val/%s %.4f at step %d; wrote %s",
        selection_metric,
        best["value"],
        best["step"],
        run_dir,
    )
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    """Hydra entry point; returns the selection metric, which sweepers maximise.

    In a sweep a failed run writes `error.txt` into its folder, is logged, and returns NaN
    (Optuna records a failed trial), so the remaining runs still go ahead.
    """
    hydra_config = HydraConfig.get()
    run_dir = Path(hydra_config.runtime.output_dir)
    try:
        metrics = train(cfg, run_dir)
    except Exception as err:
        user_error = isinstance(err, (ConfigError, ConllFormatError, HubUnavailableError))
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / FAILED_MARKER).write_text(
            f"{type(err).__name__}: {err}\n" if user_error else traceback.format_exc()
        )
        if hydra_config.mode == RunMode.MULTIRUN:
            log.error("run %s failed, the sweep goes on: %s: %s",
                      run_dir, type(err).__name__, err, exc_info=not user_error)  # fmt: skip
            return math.nan
        if user_error:
            # Problems with the user's input: the message says what to fix; a traceback would not.
            log.error("%s", err)
            raise SystemExit(1) from None
        raise
    return metrics["best"][metrics["selection_metric"]]


if __name__ == "__main__":
    main()
