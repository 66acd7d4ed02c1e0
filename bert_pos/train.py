"""Fine-tune BERT for token classification (NER, POS, chunking) with a handwritten loop.

    python -m bert_pos.train +experiment=demo        # offline quick start, about a minute on CPU
    python -m bert_pos.train +experiment=baseline    # the bert-finetuned-pos card's recipe
    python -m bert_pos.train +experiment=baseline model=minilm data.dir=../shared/data/conll2003
    python -m bert_pos.train -m +experiment=baseline optim.lr=1e-5,2e-5 seed=1,2   # a sweep

Hydra owns the run folder; everything a run writes goes there: `tensorboard/`,
`checkpoints/{best,last}/model.safetensors`, resumable `checkpoints/step-NNNNNNN/`, `tokenizer/`,
`model/` (the Hugging Face export), `metrics.json`, `train.log`.
"""

import itertools
import json
import logging
import math
import random
import shutil
import signal
import statistics
import threading
import time
import traceback
from contextlib import contextmanager, nullcontext
from pathlib import Path

import datasets
import hydra
import numpy as np
import torch
import torch.distributed as dist
import transformers
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm
from transformers import AutoTokenizer, get_linear_schedule_with_warmup

from bert_pos import distributed
from bert_pos.checkpoint import (
    CheckpointError,
    load_training_checkpoint,
    prune_checkpoints,
    resolve_resume,
    rng_state,
    save_training_checkpoint,
    save_weights,
    set_rng_state,
    step_checkpoint_dir,
)
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
from bert_pos.model import build_model, unwrap

log = logging.getLogger(__name__)
register_configs()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too


def pick_device(device: str, local_rank: int = 0) -> torch.device:
    """The config's device; a data-parallel process on GPUs takes GPU `local_rank`."""
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but no CUDA device is available; use device=auto or cpu")
    if device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank)


def autocast_for(device: torch.device, precision: str):
    """The mixed-precision context for forward passes; fp32 runs without autocast."""
    if precision == "fp32":
        return nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision=fp16 needs CUDA (on CPU use precision=bf16 or fp32)")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def layer_depth(name: str, num_layers: int) -> int:
    """0 for the embeddings, l + 1 for encoder layer l, num_layers + 1 for the head (CRF too)."""
    if name.startswith("bert.embeddings."):
        return 0
    if name.startswith("bert.encoder.layer."):
        return int(name.split(".")[3]) + 1
    return num_layers + 1


def build_optimizer(model: torch.nn.Module, lr, betas, eps, weight_decay, layer_decay=None):
    """AdamW; biases and LayerNorm weights get no weight decay (as in BERT's own recipe).

    `layer_decay` (e.g. 0.9): the head learns at `lr`, the top encoder layer at lr x decay,
    each layer below at one more factor, the embeddings at lr x decay^(layers + 1): the lower
    layers, which hold the most general features, move least."""
    num_layers = model.config.num_hidden_layers
    groups = {}  # (depth, decays) -> parameter group
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        decays = not (name.endswith(".bias") or "LayerNorm" in name)
        depth = layer_depth(name, num_layers) if layer_decay is not None else num_layers + 1
        scale = (layer_decay or 1.0) ** (num_layers + 1 - depth)
        group = groups.setdefault((depth, decays), {
            "params": [], "weight_decay": weight_decay if decays else 0.0, "lr": lr * scale,
        })  # fmt: skip
        group["params"].append(parameter)
    groups = list(groups.values())
    # The fused kernel updates all parameters in one pass: on a 2-core CPU it cuts MiniLM's
    # optimizer step from ~160 ms to ~25 ms, and it is the fast path on CUDA too.
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, fused=True)


def context_subwords_of(data: DictConfig) -> int | None:
    """The example size with document context, None for sentences alone."""
    return data.context_subwords if data.context == "document" else None


def hyperparameters(cfg: DictConfig) -> dict[str, float | int | str | bool]:
    """The recipe's knobs as flat scalars, for TensorBoard's HParams tab (one row per run)."""
    model = cfg.model.name_or_path or cfg.model.package or "random_init"
    return {
        "model": str(model), "task": cfg.data.task, "label_strategy": cfg.data.label_strategy,
        "lr": cfg.optim.lr, "batch_size": cfg.data.batch_size,
        "grad_accum_steps": cfg.grad_accum_steps, "epochs": cfg.epochs, "seed": cfg.seed,
        "weight_decay": cfg.optim.weight_decay, "warmup_ratio": cfg.optim.warmup_ratio,
        "warmup_steps": cfg.optim.warmup_steps, "dropout": cfg.model.dropout,
        "precision": cfg.precision, "context": cfg.data.context, "pooling": cfg.model.pooling,
        "head": cfg.model.head, "decode": cfg.model.decode,
        "layer_decay": cfg.optim.layer_decay or 1.0,
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


class QuietWriter:
    """Stands in for the SummaryWriter on data-parallel ranks other than 0: writes nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class TrainingInterrupted(RuntimeError):
    """SIGTERM or SIGINT stopped the run after a step; a resumable checkpoint is saved."""

    def __init__(self, message: str, signal_name: str):
        super().__init__(message)
        self.signal_name = signal_name


class NonFiniteError(RuntimeError):
    """A NaN or infinite loss or gradient; the last good state is saved."""


class StopRequests:
    """SIGTERM (preemption) and SIGINT (Ctrl-C) ask the loop to stop after the current
    optimizer step; a second SIGINT stops at once (the default handler is back)."""

    def __init__(self):
        self.requested: str | None = None

    def _handle(self, number, frame) -> None:
        self.requested = signal.Signals(number).name
        signal.signal(signal.SIGINT, signal.default_int_handler)
        log.warning("%s: stopping after this step (Ctrl-C again to stop now)", self.requested)

    @contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self  # handlers can only be installed in the main thread
            return
        previous = {n: signal.signal(n, self._handle) for n in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield self
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


# Keys a resumed run may change: where and how it runs, not what it computes.
RESUMABLE_CHANGES = ("resume", "device", "log_every_n_steps", "checkpoint", "early_stopping",
                     "nonfinite", "data.cache_dir", "data.num_workers", "data.dir")  # fmt: skip


def check_same_recipe(saved: DictConfig, current: DictConfig, checkpoint: Path) -> None:
    """Resuming with another learning rate, batch size, model or data would silently train
    a different recipe from the middle on: refuse, naming the keys that differ."""

    def flat(cfg: DictConfig) -> dict:
        leaves = {}

        def walk(node, prefix):
            for key, value in node.items():
                name = f"{prefix}{key}"
                if isinstance(value, dict):
                    walk(value, f"{name}.")
                elif not any(name == k or name.startswith(f"{k}.") for k in RESUMABLE_CHANGES):
                    leaves[name] = value

        walk(OmegaConf.to_container(cfg, resolve=True), "")
        return leaves

    before, now = flat(saved), flat(current)
    differ = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    if differ:
        changes = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in differ)
        raise CheckpointError(
            f"resume={checkpoint}: the checkpoint was trained with another recipe ({changes}); "
            "resume with the same settings or start a new run"
        )


def accumulate_gradients(
    model, window: list[dict], autocast, scaler, device, divisor: float | None = None
) -> tuple[float, int]:
    """Forward and backward over the micro-batches of one optimizer step.

    Each micro-batch's summed loss is divided by the labelled tokens of the whole window (or by
    a fixed `divisor`), never per micro-batch, so the accumulated gradient equals that of one
    batch holding all of them: k micro-batches of b give the gradient of one batch of k*b, the
    last, shorter window of an epoch included. Returns (summed loss, labelled tokens).
    """
    window_labelled = sum(int((batch["labels"] != IGNORE_INDEX).sum()) for batch in window)
    if divisor is None:  # the labelled tokens of the global window, over all processes
        divisor = max(distributed.sum_over_ranks([window_labelled], device)[0], 1)
    # Data-parallel: DDP averages the processes' gradients; multiplying each by the number of
    # processes turns that average into the global window's sum / divisor, the gradient one
    # process computes for the same global batch.
    world_size = dist.get_world_size() if distributed.is_distributed() else 1
    ddp_model = getattr(model, "_orig_mod", model)  # under torch.compile
    window_loss_sum = 0.0
    for index, batch in enumerate(window):
        batch = {key: tensor.to(device, non_blocking=True) for key, tensor in batch.items()}
        # gradients are exchanged once per window, in the backward of its last micro-batch
        last = index == len(window) - 1
        sync = ddp_model.no_sync() if isinstance(ddp_model, DDP) and not last else nullcontext()
        with sync:
            with autocast:
                logits = model(batch["input_ids"], batch["attention_mask"], batch["word_index"])
            loss_sum = unwrap(model).loss_sum(logits, batch)  # cross-entropy, or the CRF's
            scaler.scale(loss_sum * world_size / divisor).backward()
        window_loss_sum += loss_sum.item()
    return window_loss_sum, window_labelled


def train(cfg: DictConfig, run_dir: str | Path) -> dict:
    """Train as `cfg` says, writing into `run_dir`; returns the contents of metrics.json."""
    check_config(cfg)
    ddp = distributed.setup(cfg.device)  # one process unless launched by torchrun
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    seed_everything(cfg.seed)
    device = pick_device(cfg.device, ddp.local_rank)
    autocast = autocast_for(device, cfg.precision)

    # ---- where weights and data come from; fail fast when they would need an absent network
    model_source = resolve_model_source(cfg.model)
    from_hub = cfg.data.dir is None and not cfg.data.demo_corpus
    check_hub_access(
        model_name=model_source if cfg.model.package is None else None,
        dataset_name=cfg.data.hub_name if from_hub else None,
    )

    # ---- data (data-parallel: rank 0 writes the demo corpus and tokenizer, the others read)
    demo_corpus_dir = run_dir / "demo_corpus"
    datasets.disable_progress_bars()
    with distributed.main_first():
        label_names = resolve_label_names(cfg.data, demo_corpus_dir)
        splits = load_splits(cfg.data, label_names, demo_corpus_dir)
        splits = subset(splits, cfg.data.max_train_sentences, cfg.data.max_eval_sentences)
        if cfg.model.tokenizer is not None or model_source is not None:
            tokenizer = AutoTokenizer.from_pretrained(cfg.model.tokenizer or model_source)
        elif ddp.is_main:
            tokenizer = build_wordpiece_tokenizer(splits["train"]["tokens"], run_dir / "tokenizer")
        else:
            tokenizer = AutoTokenizer.from_pretrained(run_dir / "tokenizer")  # rank 0's
    span_task = is_span_label_set(label_names)
    selection_metric = "f1" if span_task else "accuracy"
    log.info("sentences: %s", {split: len(dataset) for split, dataset in splits.items()})
    if not tokenizer.is_fast:
        raise ValueError("a fast tokenizer is needed (word_ids() maps subwords to words)")
    if ddp.is_main:
        tokenizer.save_pretrained(run_dir / "tokenizer")

    model = build_model(
        num_labels=len(label_names), dropout=cfg.model.dropout, pretrained_path=model_source,
        random_init=OmegaConf.to_container(cfg.model.random_init) if cfg.model.random_init else None,
        vocab_size=len(tokenizer), pooling=cfg.model.pooling, head=cfg.model.head,
        decode=cfg.model.decode, label_names=label_names,
    ).to(device)  # fmt: skip
    log.info("model: %.1fM parameters", sum(p.numel() for p in model.parameters()) / 1e6)
    step_model = model  # what training steps call; evaluation always runs the eager model
    if ddp.enabled:
        # Same weights everywhere (DDP also copies rank 0's); dropout masks differ per rank.
        step_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        torch.manual_seed(cfg.seed + ddp.rank)
    if cfg.compile:
        # One compiled graph per (batch, length) shape; buckets keep the count small, and the
        # cache must hold them all or every new shape would evict an old one and recompile.
        torch._dynamo.config.cache_size_limit = 64
        step_model = torch.compile(step_model, mode=cfg.compile_mode, dynamic=False)

    max_length = min(tokenizer.model_max_length, model.config.max_position_embeddings)
    with distributed.main_first():  # rank 0 fills the cache, the others read it
        tokenized = tokenize_splits_cached(
            splits, tokenizer, cfg.data.label_strategy, begin_to_inside_map(label_names),
            max_length, cfg.data.cache_dir, context_subwords_of(cfg.data),
        )  # fmt: skip
    loaders = build_dataloaders(
        tokenized, batch_size=cfg.data.batch_size, eval_batch_size=cfg.eval.batch_size,
        group_by_length=cfg.data.group_by_length, pad_token_id=tokenizer.pad_token_id,
        pad_to_multiple_of=cfg.data.pad_to_multiple_of, num_workers=cfg.data.num_workers,
        seed=cfg.seed, pin_memory=device.type == "cuda",
        num_shards=ddp.world_size, shard=ddp.rank,
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
        model,
        cfg.optim.lr,
        cfg.optim.betas,
        cfg.optim.eps,
        cfg.optim.weight_decay,
        cfg.optim.layer_decay,
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    max_grad_norm = cfg.optim.max_grad_norm or math.inf
    # loss_normalization=average: every labelled token weighs the same in every step. Divided
    # by its own batch's count (=batch, the Hugging Face mean), a length-grouped batch of short
    # sentences would give each of its tokens many times the weight of a token in a long one.
    loss_divisor = None
    if cfg.loss_normalization == "average":
        labelled = sum(sum(label != IGNORE_INDEX for label in labels)
                       for labels in tokenized["train"]["labels"])  # fmt: skip
        loss_divisor = labelled / steps_per_epoch
    log.info(
        "%d optimizer steps (%d per epoch), global batch %d = %d per process x %d processes "
        "x %d accumulation, %d warmup", total_steps, steps_per_epoch,
        cfg.data.batch_size * ddp.world_size * accum, cfg.data.batch_size, ddp.world_size, accum,
        warmup_steps,
    )  # fmt: skip

    # ---- loop state: everything a checkpoint must hold to continue exactly
    loop = {
        "step": 0,  # optimizer steps done
        "epoch": 0,  # the epoch in progress
        "step_in_epoch": 0,  # optimizer steps done in it (its first step_in_epoch x accum batches)
        "epoch_loss_sum": 0.0, "epoch_labelled": 0,  # for the epoch's mean training loss
        "best": {"value": -math.inf, "epoch": None, "step": None},
        "evaluations_without_gain": 0,  # for early stopping
        "skipped_steps": 0,  # non-finite steps skipped (nonfinite.action=skip)
        "epoch_rows": [],
        "train_seconds": 0.0, "train_tokens": 0, "eval_seconds": 0.0, "eval_tokens": 0,
    }  # fmt: skip
    # The loader draws a seed from the global RNG each time it is iterated; its own generator
    # keeps that draw from shifting the dropout masks of a resumed run.
    train_loader.generator = torch.Generator().manual_seed(cfg.seed)

    resume_from = resolve_resume(cfg.resume, run_dir)
    if resume_from is not None:
        state = load_training_checkpoint(resume_from, model)
        check_same_recipe(OmegaConf.create(state["config"]), cfg, resume_from)
        if state.get("world_size", 1) != ddp.world_size:
            raise CheckpointError(
                f"resume={resume_from}: trained with {state.get('world_size', 1)} processes, "
                f"resumed with {ddp.world_size}; the global batch would change mid-run"
            )
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng_ranks"][ddp.rank] if "rng_ranks" in state else state["rng"])
        loop = state["loop"]
        log.info("resumed from %s: step %d, epoch %d", resume_from, loop["step"], loop["epoch"] + 1)
    # Events after the checkpoint's step (a killed run's last minutes) are dropped, so the
    # resumed curves continue without duplicates. TensorBoard reads a folder's event files in
    # name order, which starts with the creation second: wait for a second of our own.
    if ddp.is_main:
        for previous in (run_dir / "tensorboard").glob("events.out.tfevents.*"):
            while int(time.time()) <= int(previous.name.split(".")[3]):
                time.sleep(0.05)
        writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=loop["step"] + 1)
    else:
        writer = QuietWriter()  # one process writes the curves
    if resume_from is None:
        writer.add_text("config", "```\n" + OmegaConf.to_yaml(cfg) + "\n```")
    first_step_seconds = None  # from the start of train() to the end of the first step
    # real (non-padding) tokens of one pass over the validation split, for eval tokens/s
    validation_tokens = sum(len(ids) for ids in tokenized["validation"]["input_ids"])

    def save_resumable() -> Path:
        """A step checkpoint of the loop as it is, then prune old ones (every rank calls
        this at the same step; rank 0 writes, with every rank's random state)."""
        rng_ranks = distributed.gather_lists([rng_state()])
        directory = step_checkpoint_dir(run_dir, loop["step"])
        if ddp.is_main:
            state = {
                "loop": loop, "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                "rng": rng_ranks[0], "rng_ranks": rng_ranks, "world_size": ddp.world_size,
                "config": OmegaConf.to_yaml(cfg),
            }  # fmt: skip
            save_training_checkpoint(directory, model, state)
            prune_checkpoints(run_dir, cfg.checkpoint.keep_last)
        distributed.barrier()
        return directory

    def run_evaluation(epoch: float, train_loss: float) -> None:
        """Validation scores at this point, logged, kept, and saved as `best` when best."""
        eval_started = time.perf_counter()
        step = loop["step"]
        scores, figure = evaluate_split(
            model, loaders["validation"], splits["validation"], label_names, span_task,
            cfg.eval.level, cfg.eval.mode, device, autocast, run_dir / "eval" / "validation",
            title=f"validation, step {step}", write=ddp.is_main,
        )  # fmt: skip
        if figure is not None:
            writer.add_figure("val/confusion_matrix", figure, step)
        loop["eval_seconds"] += time.perf_counter() - eval_started
        loop["eval_tokens"] += validation_tokens
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
        best = loop["best"]
        if scores[selection_metric] > best["value"] + cfg.early_stopping.min_delta:
            loop["evaluations_without_gain"] = 0
        else:
            loop["evaluations_without_gain"] += 1
        if scores[selection_metric] > best["value"]:
            best.update(value=scores[selection_metric], epoch=row["epoch"], step=step)
            if ddp.is_main:
                save_weights(model, run_dir / "checkpoints" / "best" / "model.safetensors",
                             step=step, epoch=row["epoch"])  # fmt: skip
        loop["epoch_rows"].append(row)

    # ---- the loop
    loop_started = time.perf_counter()
    stop = StopRequests()  # SIGTERM / SIGINT: finish this step, checkpoint, exit
    stop_reason = None
    model.train()
    with stop.installed():
        while loop["epoch"] < cfg.epochs and stop_reason is None:
            epoch = loop["epoch"]
            train_loader.batch_sampler.set_epoch(epoch, start_batch=loop["step_in_epoch"] * accum)
            micro_batches = iter(train_loader)
            progress = tqdm(  # disable=None: only on a terminal, so log files stay readable
                total=steps_per_epoch, initial=loop["step_in_epoch"],
                desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                disable=None if ddp.is_main else True,
            )  # fmt: skip
            while loop["step_in_epoch"] < steps_per_epoch and loop["step"] < total_steps:
                step_started = time.perf_counter()
                window = list(itertools.islice(micro_batches, accum))
                window_loss_sum, window_labelled = accumulate_gradients(
                    step_model, window, autocast, scaler, device, loss_divisor
                )
                # Over all processes: the loss and counts, and whether any process was
                # asked to stop (all must stop after the same step).
                tokens = sum(int(b["attention_mask"].sum()) for b in window)
                window_loss_sum, window_labelled, tokens, stops = distributed.sum_over_ranks(
                    [window_loss_sum, window_labelled, tokens, stop.requested is not None],
                    device,
                )  # fmt: skip
                window_labelled, tokens = int(window_labelled), int(tokens)
                # the signal's name, or SIGTERM where another process received it
                stop_now = (stop.requested or "SIGTERM") if stops else None
                scaler.unscale_(optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
                finite = math.isfinite(window_loss_sum) and bool(torch.isfinite(grad_norm))
                if not finite and not scaler.is_enabled():
                    # fp32/bf16 have no scaler to skip the step; without this check a NaN
                    # would reach the weights and every later step.
                    optimizer.zero_grad(set_to_none=True)
                    loop["skipped_steps"] += 1
                    where = f"step {loop['step'] + 1} (epoch {epoch + 1})"
                    if (cfg.nonfinite.action == "stop"
                            or loop["skipped_steps"] > cfg.nonfinite.max_skipped):  # fmt: skip
                        saved = save_resumable()  # weights are still those before the step
                        raise NonFiniteError(
                            f"non-finite loss or gradient at {where}: loss sum "
                            f"{window_loss_sum}, gradient norm {float(grad_norm)}; the last "
                            f"good state is saved in {saved} (nonfinite.action="
                            f"{cfg.nonfinite.action}, {loop['skipped_steps']} skipped)"
                        )
                    log.warning("skipping %s: non-finite loss or gradient", where)
                else:
                    scaler.step(optimizer)  # with fp16 the scaler itself skips non-finite steps
                    scaler.update()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                loop["step"] += 1
                loop["step_in_epoch"] += 1
                step = loop["step"]
                if first_step_seconds is None:
                    first_step_seconds = time.perf_counter() - started

                # ---- bookkeeping: real (non-padding) tokens only
                seconds = time.perf_counter() - step_started
                loop["train_seconds"] += seconds
                loop["train_tokens"] += tokens
                if finite:
                    loop["epoch_loss_sum"] += window_loss_sum
                    loop["epoch_labelled"] += window_labelled
                loss = window_loss_sum / max(window_labelled, 1)
                progress.update()
                progress.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens / seconds:.0f}")
                if step % cfg.log_every_n_steps == 0:
                    if progress.disable and step % (cfg.log_every_n_steps * 20) == 0:
                        log.info("step %d/%d loss %.4f, %.0f tokens/s",
                                 step, total_steps, loss, tokens / seconds)  # fmt: skip
                    writer.add_scalar("train/loss", loss, step)
                    writer.add_scalar("train/lr", max(scheduler.get_last_lr()), step)  # the head's
                    writer.add_scalar("train/grad_norm", float(grad_norm), step)
                    writer.add_scalar("train/tokens_per_s", tokens / seconds, step)

                end_of_epoch = loop["step_in_epoch"] == steps_per_epoch or step >= total_steps
                epoch_position = epoch + loop["step_in_epoch"] / steps_per_epoch
                if end_of_epoch or (cfg.eval.every_n_steps and step % cfg.eval.every_n_steps == 0):
                    run_evaluation(epoch_position,
                                   loop["epoch_loss_sum"] / max(loop["epoch_labelled"], 1))  # fmt: skip
                    patience = cfg.early_stopping.patience
                    if patience and loop["evaluations_without_gain"] >= patience:
                        stop_reason = (f"early stopping: no gain in val/{selection_metric} for "
                                       f"{patience} evaluations")  # fmt: skip
                if end_of_epoch and ddp.is_main:
                    save_weights(model, run_dir / "checkpoints" / "last" / "model.safetensors",
                                 step=step, epoch=epoch_position)  # fmt: skip
                if end_of_epoch:
                    loop.update(epoch=epoch + 1, step_in_epoch=0, epoch_loss_sum=0.0,
                                epoch_labelled=0)  # fmt: skip
                if step >= total_steps:
                    loop["epoch"] = cfg.epochs  # max_steps reached: no further epoch
                every = cfg.checkpoint.every_n_steps
                if end_of_epoch or (every and step % every == 0) or stop_now:
                    save_resumable()
                if stop_now:
                    raise TrainingInterrupted(
                        f"{stop_now} received: stopped after step {step} and saved "
                        f"{step_checkpoint_dir(run_dir, step)}; continue with resume=auto "
                        f"hydra.run.dir={run_dir} (or resume={run_dir})",
                        stop_now,
                    )
                if stop_reason or end_of_epoch:
                    break
            progress.close()
    if stop_reason:
        log.info("%s", stop_reason)
        if ddp.is_main:
            save_weights(model, run_dir / "checkpoints" / "last" / "model.safetensors",
                         step=loop["step"])  # fmt: skip
    distributed.barrier()  # rank 0's best weights are on disk for every rank to read

    epoch_rows, best = loop["epoch_rows"], loop["best"]
    step, train_seconds, train_tokens = loop["step"], loop["train_seconds"], loop["train_tokens"]
    eval_seconds, eval_tokens = loop["eval_seconds"], loop["eval_tokens"]
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
        "world_size": ddp.world_size,
        "global_batch_size": cfg.data.batch_size * ddp.world_size * accum,
    }
    log.info("results:\n%s", format_results_table(epoch_rows))

    # ---- the best checkpoint: scored on test, exported with its model card
    model.load_state_dict(load_file(run_dir / "checkpoints" / "best" / "model.safetensors"))
    if cfg.eval.test_at_end and "test" in loaders:
        test_scores, figure = evaluate_split(
            model, loaders["test"], splits["test"], label_names, span_task, cfg.eval.level,
            cfg.eval.mode, device, autocast, run_dir / "eval" / "test",
            title=f"test, best checkpoint (step {best['step']})", write=ddp.is_main,
        )  # fmt: skip
        if figure is not None:
            writer.add_figure("test/confusion_matrix", figure, step)
        for key, value in test_scores.items():
            if key != "per_type":
                writer.add_scalar(f"test/{key}", value, step)
        metrics["test"] = test_scores
        log.info("test, best checkpoint:\n%s", format_per_type_table(test_scores))
    final_metrics = {f"hparams/best_val_{selection_metric}": best["value"]}
    if "test" in metrics:
        final_metrics[f"hparams/test_{selection_metric}"] = metrics["test"][selection_metric]
    metrics["wall_seconds"] = time.perf_counter() - started
    if not ddp.is_main:
        return metrics
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
    ddp = distributed.setup(cfg.device)
    if ddp.enabled:
        run_dir = join_main_run_dir(run_dir)
    (run_dir / FAILED_MARKER).unlink(missing_ok=True)  # a resumed run starts with a clean slate
    try:
        metrics = train(cfg, run_dir)
    except TrainingInterrupted as err:
        log.warning("%s", err)
        # 128 + the signal number, as a shell reports a job ended by that signal
        raise SystemExit(128 + signal.Signals[err.signal_name].value) from None
    except Exception as err:
        user_error = isinstance(err, (ConfigError, ConllFormatError, HubUnavailableError,
                                      CheckpointError, NonFiniteError))  # fmt: skip
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
    finally:
        distributed.teardown()
    return metrics["best"][metrics["selection_metric"]]


def join_main_run_dir(own_run_dir: Path) -> Path:
    """Data-parallel: every process's Hydra named a run folder from its own clock; all use
    rank 0's. The others log only warnings and errors, to the console, and remove the folder
    Hydra made for them if it is another one (it holds only Hydra's own files)."""
    run_dir = Path(distributed.broadcast(str(own_run_dir)))
    if dist.get_rank() == 0:
        return run_dir
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    transformers.utils.logging.set_verbosity_error()  # its load reports and progress bars too
    transformers.utils.logging.disable_progress_bar()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)
        handler.close()
    if own_run_dir.resolve() != run_dir.resolve():
        if {p.name for p in own_run_dir.iterdir()} <= {".hydra", "train.log"}:
            shutil.rmtree(own_run_dir)
    return run_dir


if __name__ == "__main__":
    main()
