"""The training recipe, written out: build everything, run the loop, finish.

    run, state = setup(cfg, run_dir)   # data, tokenizer, model, optimizer, writer, resume
    train_loop(run, state)             # optimizer steps, evaluations, checkpoints, stops
    metrics = finish(run, state)       # summary, test on the best checkpoint, export

`bert_pos.train` calls these three after Hydra has composed and checked the config. The path
of one batch: data/sources.py reads sentences, data/encoding.py turns them into subword
examples, data/batching.py pads a batch of them; `train_step` runs forward and loss
(model.py) over the micro-batches of one optimizer step, backward, clipping and the step;
`evaluate_and_select` scores validation (evaluation.py) and keeps the best weights;
`save_resumable` writes a checkpoint (checkpoint.py); `finish` exports (export.py).

Everything the loop changes lives in `LoopState`, a dataclass whose fields are what a
checkpoint must hold to continue exactly; everything built once lives in `Run`.
"""

import itertools
import json
import logging
import math
import shlex
import statistics
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import datasets
import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm
from transformers import get_linear_schedule_with_warmup

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
)
from bert_pos.config import hyperparameters, recipe_view
from bert_pos.data.batching import build_dataloaders
from bert_pos.data.cache import tokenize_splits_cached
from bert_pos.data.encoding import max_length_of
from bert_pos.data.sources import gold_labels, load_splits, resolve_label_names, subset
from bert_pos.data.vocabularies import build_tokenizer
from bert_pos.devices import (
    autocast_for,
    cpu_description,
    padding_multiple,
    pick_device,
    resolve_precision,
    seed_everything,
)
from bert_pos.encoders import TOKENIZER_KINDS, layer_depth, load_tokenizer
from bert_pos.errors import NonFiniteError, TrainingInterrupted
from bert_pos.evaluation import evaluate, evaluate_split, write_details
from bert_pos.export import export_model, model_card
from bert_pos.hub import check_hub_access, resolve_model_source
from bert_pos.labels import IGNORE_INDEX, begin_to_inside_map, is_span_label_set
from bert_pos.metrics import format_per_type_table, format_results_table
from bert_pos.model import build_model, tagger_config, unwrap
from bert_pos.paths import TAGGER_CONFIG, checkpoints_dir, step_checkpoint_dir, weights_file
from bert_pos.signals import StopRequests
from bert_pos.span_errors import training_entities

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- what the loop carries


@dataclass
class Best:
    value: float = -math.inf  # the best validation score so far (the selection metric)
    epoch: float | None = None
    step: int | None = None


@dataclass
class LoopState:
    """Where the loop is. Stored in checkpoints as a plain dict (`to_dict`), which
    `torch.load(weights_only=True)` reads back."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # the epoch in progress
    step_in_epoch: int = 0  # optimizer steps done in it (its first step_in_epoch x accum batches)
    epoch_loss_sum: float = 0.0  # for the epoch's mean training loss
    epoch_labelled: int = 0
    best: Best = field(default_factory=Best)
    evaluations_without_gain: int = 0  # for early stopping
    skipped_steps: int = 0  # non-finite steps skipped (nonfinite.action=skip)
    epoch_rows: list[dict] = field(default_factory=list)  # one row per evaluation
    train_seconds: float = 0.0  # optimizer steps only, batch collation included
    train_tokens: int = 0  # real (non-padding) tokens
    eval_seconds: float = 0.0
    eval_tokens: int = 0
    stop_reason: str | None = None  # early stopping

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, saved: dict, checkpoint: Path) -> "LoopState":
        """The state of a checkpoint; one written by an incompatible bert_pos is refused."""
        names = {f.name for f in fields(cls)}
        missing = names - {"stop_reason"} - saved.keys()  # stop_reason came later: optional
        if missing or saved.keys() - names:
            raise CheckpointError(
                f"{checkpoint}: its loop state has the keys {sorted(saved)}, this bert_pos "
                f"expects {sorted(names)}; resume it with the bert_pos that wrote it, or start "
                "a new run"
            )
        return cls(**{**saved, "best": Best(**saved["best"])})


@dataclass
class Run:
    """Everything `setup` builds once and the loop reads."""

    cfg: DictConfig
    run_dir: Path
    ddp: distributed.Distributed
    device: torch.device
    autocast: object  # the forward passes' mixed-precision context
    label_names: list[str]
    selection_metric: str  # f1 for span tasks, accuracy otherwise
    splits: datasets.DatasetDict  # sentences
    tokenizer: object
    model: torch.nn.Module  # the tagger; evaluation and checkpoints use it
    step_model: torch.nn.Module  # what training steps call: the tagger, under DDP / compile
    loaders: dict
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    accum: int  # micro-batches per optimizer step
    steps_per_epoch: int
    total_steps: int
    loss_divisor: float | None  # loss_normalization=average: fixed; None: per window
    writer: object  # SummaryWriter, or QuietWriter on ranks other than 0
    started: float  # perf_counter at the start of setup
    mean_train_length: float
    validation_tokens: int  # real tokens of one pass over validation, for eval tokens/s
    validation_gold: list[list[str]]  # every word's gold label, per validation sentence
    first_step_seconds: float | None = None  # from the start of setup to the end of step 1
    loop_seconds: float = 0.0  # steps, evaluations, checkpoints
    first_step: int = 0  # the step this process started from (resumed runs: the checkpoint's)
    last_progress_line: float = 0.0  # perf_counter of the last progress line in the log
    seen_entities: set | None = None  # (surface, type) of training entities, for error reports
    loop_started: float = 0.0  # perf_counter when this process's training loop began
    loop_eval_seconds: float = 0.0  # evaluations since then (resumed runs: this session's)
    # Validation score against training time, evaluations excluded (this session's clock):
    # [{"step", "train_seconds", "score"}], for time to accuracy (bert_pos.bench).
    curve: list[dict] = field(default_factory=list)
    # The latest validation evaluation (step, scores, predicted tags): its details (predictions,
    # bootstrap interval, error tables, confusion matrix) are written once, when the loop ends.
    last_validation: tuple | None = None

    @property
    def span_task(self) -> bool:
        return self.selection_metric == "f1"


@dataclass
class StepResult:
    loss: float  # mean over the window's labelled tokens
    grad_norm: float
    tokens: int  # real tokens of the window, over all processes
    seconds: float
    stop_signal: str | None  # SIGTERM / SIGINT received by any process


# ---------------------------------------------------------------- the loop


def train_loop(run: Run, state: LoopState) -> None:
    """Epochs of optimizer steps; evaluation, best-model selection and checkpoints at epoch
    ends (and every N steps); stop on a signal (checkpoint, then TrainingInterrupted) or on
    early stopping."""
    cfg, started = run.cfg, time.perf_counter()
    run.loop_started = started
    stop = StopRequests()  # SIGTERM / SIGINT: finish this step, checkpoint, exit
    run.model.train()
    with stop.installed():
        while state.epoch < cfg.epochs and state.stop_reason is None:
            micro_batches = epoch_batches(run, state)
            progress = tqdm(  # disable=None: only on a terminal, so log files stay readable
                total=run.steps_per_epoch,
                initial=state.step_in_epoch,
                desc=f"epoch {state.epoch + 1}/{cfg.epochs}",
                leave=False,
                disable=None if run.ddp.is_main else True,
            )
            while state.step_in_epoch < run.steps_per_epoch and state.step < run.total_steps:
                window = list(itertools.islice(micro_batches, run.accum))
                result = train_step(run, state, window, stop)
                log_step(run, state, result, progress)
                epoch_done = (
                    state.step_in_epoch == run.steps_per_epoch or state.step >= run.total_steps
                )
                if epoch_done or due(cfg.eval.every_n_steps, state.step):
                    evaluate_and_select(run, state)
                if epoch_done:
                    end_epoch(run, state)
                if (
                    epoch_done
                    or due(cfg.checkpoint.every_n_steps, state.step)
                    or result.stop_signal
                ):
                    save_resumable(run, state)
                if result.stop_signal:
                    raise interrupted(run, state, result.stop_signal)
                if state.stop_reason or epoch_done:
                    break
            progress.close()
    if state.stop_reason:
        log.info("%s", state.stop_reason)
        if run.ddp.is_main:
            save_weights(run.model, weights_file(run.run_dir, "last"), step=state.step)
    run.loop_seconds = time.perf_counter() - started
    write_validation_details(run)
    distributed.barrier()  # rank 0's best weights are on disk for every rank to read


def write_validation_details(run: Run) -> None:
    """eval/validation/ of the loop's last evaluation: predictions, bootstrap interval, error
    tables, confusion matrix (also to TensorBoard). Once per run, not at every evaluation:
    they cost more than the scoring, and are read at the end."""
    if run.last_validation is None or not run.ddp.is_main:
        return
    step, scores, predicted = run.last_validation
    figure, _ = write_details(
        run.run_dir / "eval" / "validation",
        run.splits["validation"],
        run.validation_gold,
        predicted,
        scores,
        run.label_names,
        run.span_task,
        title=f"validation, step {step}",
        seen_entities=run.seen_entities,
    )
    run.writer.add_figure("val/confusion_matrix", figure, step)


def due(every_n_steps: int | None, step: int) -> bool:
    return bool(every_n_steps) and step % every_n_steps == 0


def epoch_batches(run: Run, state: LoopState):
    """The epoch's micro-batches from the one the state has reached (resuming mid-epoch)."""
    sampler = run.loaders["train"].batch_sampler
    sampler.set_epoch(state.epoch, start_batch=state.step_in_epoch * run.accum)
    return iter(run.loaders["train"])


def train_step(run: Run, state: LoopState, window: list[dict], stop: StopRequests) -> StepResult:
    """One optimizer step over the micro-batches of `window`: forward and backward each,
    then (over all processes) clip, check for non-finite values, step."""
    started = time.perf_counter()
    loss_sum, labelled = accumulate_gradients(
        run.step_model, window, run.autocast, run.scaler, run.device, run.loss_divisor
    )
    # Over all processes: the loss and counts, and whether any process was asked to stop
    # (all must stop after the same step).
    tokens = sum(int(batch["attention_mask"].sum()) for batch in window)
    loss_sum, labelled, tokens, stops = distributed.sum_over_ranks(
        [loss_sum, labelled, tokens, stop.requested is not None], run.device
    )
    labelled, tokens = int(labelled), int(tokens)
    stop_signal = (stop.requested or "SIGTERM") if stops else None  # SIGTERM: another rank's
    run.scaler.unscale_(run.optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(
        run.model.parameters(), run.cfg.optim.max_grad_norm or math.inf
    )
    finite = math.isfinite(loss_sum) and bool(torch.isfinite(grad_norm))
    if finite or run.scaler.is_enabled():
        run.scaler.step(run.optimizer)  # with fp16 the scaler itself skips non-finite steps
        run.scaler.update()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
    else:
        skip_nonfinite_step(run, state, loss_sum, float(grad_norm))
    state.step += 1
    state.step_in_epoch += 1
    if run.first_step_seconds is None:
        run.first_step_seconds = time.perf_counter() - run.started
    seconds = time.perf_counter() - started
    state.train_seconds += seconds
    state.train_tokens += tokens
    if finite:
        state.epoch_loss_sum += loss_sum
        state.epoch_labelled += labelled
    return StepResult(loss_sum / max(labelled, 1), float(grad_norm), tokens, seconds, stop_signal)


def skip_nonfinite_step(run: Run, state: LoopState, loss_sum: float, grad_norm: float) -> None:
    """fp32/bf16 have no scaler to skip a step with a NaN or inf; without this a NaN would
    reach the weights and every later step. Skip it, or (nonfinite.action=stop, or too many
    skipped) save the state before it and stop."""
    run.optimizer.zero_grad(set_to_none=True)
    state.skipped_steps += 1
    where = f"step {state.step + 1} (epoch {state.epoch + 1})"
    action = run.cfg.nonfinite.action
    if action == "stop" or state.skipped_steps > run.cfg.nonfinite.max_skipped:
        saved = save_resumable(run, state)  # the weights are still those before the step
        raise NonFiniteError(
            f"non-finite loss or gradient at {where}: loss sum {loss_sum}, gradient norm "
            f"{grad_norm}; the last good state is saved in {saved} (nonfinite.action={action}, "
            f"{state.skipped_steps} skipped)"
        )
    run.scheduler.step()  # the schedule follows the step count, skipped steps included
    log.warning("skipping %s: non-finite loss or gradient", where)


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


def log_step(run: Run, state: LoopState, result: StepResult, progress: tqdm) -> None:
    """The progress bar every step; TensorBoard's train/* every `log_every_n_steps`."""
    tokens_per_s = result.tokens / result.seconds
    progress.update()
    progress.set_postfix(loss=f"{result.loss:.4f}", tok_s=f"{tokens_per_s:.0f}")
    now = time.perf_counter()
    if progress.disable and now - run.last_progress_line >= run.cfg.progress_every_s:
        log_progress(run, state, result.loss, tokens_per_s, now)  # a log file, not a terminal
    if state.step % run.cfg.log_every_n_steps:
        return
    run.writer.add_scalar("train/loss", result.loss, state.step)
    run.writer.add_scalar("train/lr", max(run.scheduler.get_last_lr()), state.step)  # the head's
    run.writer.add_scalar("train/grad_norm", result.grad_norm, state.step)
    run.writer.add_scalar("train/tokens_per_s", tokens_per_s, state.step)


def log_progress(run: Run, state: LoopState, loss: float, tokens_per_s: float, now: float) -> None:
    """One line, at least every `progress_every_s` seconds: where the run is and when it ends."""
    run.last_progress_line = now
    elapsed = now - run.started
    done = state.step - run.first_step
    remaining = elapsed / max(done, 1) * (run.total_steps - state.step)
    epoch = state.epoch + state.step_in_epoch / run.steps_per_epoch
    log.info(
        "step %d/%d, epoch %.2f, loss %.4f, %.0f tokens/s, elapsed %s, ETA %s",
        state.step,
        run.total_steps,
        epoch,
        loss,
        tokens_per_s,
        clock(elapsed),
        clock(remaining),
    )


def clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


def evaluate_and_select(run: Run, state: LoopState) -> None:
    """Validation scores now: logged, kept as a row, saved as `best` when best; early stopping
    once `early_stopping.patience` evaluations brought no gain."""
    cfg, step = run.cfg, state.step
    epoch = state.epoch + state.step_in_epoch / run.steps_per_epoch
    train_loss = state.epoch_loss_sum / max(state.epoch_labelled, 1)
    eval_started = time.perf_counter()
    # Scores only: what selection and the curves need (details: write_validation_details).
    scores, predicted = evaluate(
        run.model,
        run.loaders["validation"],
        run.label_names,
        run.span_task,
        cfg.eval.level,
        run.device,
        run.autocast,
        cfg.eval.mode,
        run.validation_gold,
    )
    run.last_validation = (step, scores, predicted)
    eval_seconds = time.perf_counter() - eval_started
    state.eval_seconds += eval_seconds
    run.curve.append(
        {
            "step": step,
            "score": scores[run.selection_metric],
            "train_seconds": eval_started - run.loop_started - run.loop_eval_seconds,
        }
    )
    run.loop_eval_seconds += eval_seconds
    state.eval_tokens += run.validation_tokens
    row = evaluation_row(epoch, step, train_loss, scores)
    for key, value in row.items():
        if key.startswith("val/"):
            run.writer.add_scalar(key, value, step)
    log.info("step %d epoch %.2f: %s", step, epoch, {k: round(float(v), 4) for k, v in row.items()})
    state.best, state.evaluations_without_gain, improved = select_best(
        state.best,
        state.evaluations_without_gain,
        scores[run.selection_metric],
        row["epoch"],
        step,
        cfg.early_stopping.min_delta,
    )
    if improved and run.ddp.is_main:
        save_weights(run.model, weights_file(run.run_dir, "best"), step=step, epoch=row["epoch"])
    state.epoch_rows.append(row)
    patience = cfg.early_stopping.patience
    if patience and state.evaluations_without_gain >= patience:
        state.stop_reason = (
            f"early stopping: no gain in val/{run.selection_metric} for {patience} evaluations"
        )


def evaluation_row(epoch: float, step: int, train_loss: float, scores: dict) -> dict:
    """One row of metrics.json's `epochs` (and of the card's results table)."""
    row = {"epoch": round(epoch, 4), "step": step, "train/loss": train_loss}
    row.update({f"val/{k}": v for k, v in scores.items() if k != "per_type"})
    for entity_type, values in scores.get("per_type", {}).items():
        row[f"val/{entity_type}/f1"] = values["f1"]
    return row


def select_best(
    best: Best,
    evaluations_without_gain: int,
    score: float,
    epoch: float,
    step: int,
    min_delta: float,
) -> tuple[Best, int, bool]:
    """(best, evaluations without gain, whether this evaluation is the new best).

    Any score above the best so far becomes the best (its weights are kept); only a gain of
    more than `min_delta` resets the count that early stopping watches."""
    without_gain = 0 if score > best.value + min_delta else evaluations_without_gain + 1
    if score > best.value:
        return Best(score, epoch, step), without_gain, True
    return best, without_gain, False


def end_epoch(run: Run, state: LoopState) -> None:
    """The epoch's last weights, and the next epoch's counters (none after max_steps)."""
    epoch_position = state.epoch + state.step_in_epoch / run.steps_per_epoch
    if run.ddp.is_main:
        save_weights(
            run.model, weights_file(run.run_dir, "last"), step=state.step, epoch=epoch_position
        )
    state.epoch += 1
    state.step_in_epoch, state.epoch_loss_sum, state.epoch_labelled = 0, 0.0, 0
    if state.step >= run.total_steps:
        state.epoch = run.cfg.epochs  # max_steps reached: no further epoch


def save_resumable(run: Run, state: LoopState) -> Path:
    """A step checkpoint of the loop as it is, then prune old ones (every rank calls this at
    the same step; rank 0 writes, with every rank's random state)."""
    rng_ranks = distributed.gather_lists([rng_state()])
    directory = step_checkpoint_dir(run.run_dir, state.step)
    with distributed.together("saving a checkpoint"):  # rank 0 writes; all wait for it
        if run.ddp.is_main:
            save_checkpoint_files(run, state, directory, rng_ranks)
    return directory


def save_checkpoint_files(run: Run, state: LoopState, directory: Path, rng_ranks: list) -> None:
    """Weights, optimizer, schedule, scaler, loop state, every rank's RNG and the config."""
    training_state = {
        "loop": state.to_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "rng": rng_ranks[0],
        "rng_ranks": rng_ranks,
        "world_size": run.ddp.world_size,
        "config": OmegaConf.to_yaml(run.cfg),
    }
    save_training_checkpoint(directory, run.model, training_state)
    prune_checkpoints(run.run_dir, run.cfg.checkpoint.keep_last)


def interrupted(run: Run, state: LoopState, signal_name: str) -> TrainingInterrupted:
    return TrainingInterrupted(
        f"{signal_name} received: stopped after step {state.step} and saved "
        f"{step_checkpoint_dir(run.run_dir, state.step)}; continue with:\n"
        f"  {continue_command(run.run_dir)}",
        signal_name,
    )


def continue_command(run_dir: Path) -> str:
    """The command line that continues this run: its own overrides (as Hydra received them),
    then `resume=auto` in its folder."""
    from hydra.core.hydra_config import HydraConfig

    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    kept = [o for o in overrides if not o.lstrip("+~").startswith(("resume=", "hydra.run.dir="))]
    return shlex.join(
        ["python", "-m", "bert_pos.train", *kept, "resume=auto", f"hydra.run.dir={run_dir}"]
    )


# ---------------------------------------------------------------- setup


def setup(cfg: DictConfig, run_dir: Path) -> tuple[Run, LoopState]:
    """Everything the loop needs, in the order that fixes the random draws: data and
    tokenizer, model (its random head), loaders, optimizer and schedule; then the state,
    fresh or from the checkpoint `cfg.resume` points at."""
    started = time.perf_counter()
    ddp = distributed.setup(cfg.device)  # one process unless launched by torchrun
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device, ddp.local_rank)
    label_names, splits, tokenizer, model_source = load_data_and_tokenizer(cfg, run_dir, ddp)
    model, step_model = build_tagger(cfg, label_names, tokenizer, model_source, ddp, device)
    if ddp.is_main:  # with the tokenizer, a run folder loads at any checkpoint (trained.py)
        checkpoints_dir(run_dir).mkdir(exist_ok=True)
        tagger_config(model, label_names).to_json_file(checkpoints_dir(run_dir) / TAGGER_CONFIG)
    with distributed.main_first():  # rank 0 fills the cache, the others read it
        tokenized = tokenize_splits_cached(
            cfg.data.cache_dir,
            splits,
            tokenizer,
            cfg.data.label_strategy,
            begin_to_inside_map(label_names),
            max_length_of(tokenizer, model.config),
            cfg.data.context_subwords if cfg.data.context == "document" else None,
        )
    loaders = build_dataloaders(
        tokenized,
        batch_size=cfg.data.batch_size,
        eval_batch_size=cfg.eval.batch_size,
        group_by_length=cfg.data.group_by_length,
        group_batches=cfg.data.group_batches,
        pad_token_id=tokenizer.pad_token_id,
        pad_to_multiple_of=padding_multiple(cfg.data.pad_to_multiple_of, device),
        num_workers=cfg.data.num_workers,
        seed=cfg.seed,
        pin_memory=device.type == "cuda",
        num_shards=ddp.world_size,
        shard=ddp.rank,
    )
    # The loader draws a seed from the global RNG each time it is iterated; its own generator
    # keeps that draw from shifting the dropout masks of a resumed run.
    loaders["train"].generator = torch.Generator().manual_seed(cfg.seed)

    # one optimizer step per `grad_accum_steps` micro-batches; an epoch's last may be shorter
    accum = cfg.grad_accum_steps
    steps_per_epoch = math.ceil(len(loaders["train"]) / accum)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    precision = resolve_precision(cfg.precision, device)  # auto: what the device runs natively
    log.info(
        "precision %s on %s (%s)",
        precision,
        device,
        cpu_description() if device.type == "cpu" else torch.cuda.get_device_name(device),
    )
    optimizer, scheduler, scaler = build_optimization(cfg, model, total_steps, device, precision)
    loss_divisor = None  # loss_normalization=batch: each window's own labelled tokens
    if cfg.loss_normalization == "average":
        loss_divisor = labelled_tokens(tokenized["train"]) / steps_per_epoch
    log.info(
        "%d optimizer steps (%d per epoch), global batch %d = %d per process x %d "
        "processes x %d accumulation",
        total_steps,
        steps_per_epoch,
        cfg.data.batch_size * ddp.world_size * accum,
        cfg.data.batch_size,
        ddp.world_size,
        accum,
    )
    run = Run(
        cfg,
        run_dir,
        ddp,
        device,
        autocast_for(device, precision),
        label_names,
        "f1" if is_span_label_set(label_names) else "accuracy",
        splits,
        tokenizer,
        model,
        step_model,
        loaders,
        optimizer,
        scheduler,
        scaler,
        accum,
        steps_per_epoch,
        total_steps,
        loss_divisor,
        writer=None,
        started=started,
        mean_train_length=statistics.fmean(len(ids) for ids in tokenized["train"]["input_ids"]),
        validation_tokens=sum(len(ids) for ids in tokenized["validation"]["input_ids"]),
        validation_gold=gold_labels(splits["validation"], label_names),
    )
    if run.span_task:
        train = splits["train"]
        run.seen_entities = training_entities(
            train["tokens"],
            [[label_names[t] if t >= 0 else "O" for t in tags] for tags in train["tags"]],
        )
    state, resumed = resume_or_start(run)
    run.first_step, run.last_progress_line = state.step, time.perf_counter()
    run.writer = open_writer(run, state, write_config=not resumed)
    return run, state


def load_data_and_tokenizer(cfg: DictConfig, run_dir: Path, ddp):
    """Label names, sentences of each split, the tokenizer, and where the pretrained weights
    are (None: random init). Fails fast where they would need an absent network."""
    model_source = resolve_model_source(cfg.model)
    from_hub = cfg.data.dir is None and not cfg.data.demo_corpus
    check_hub_access(
        model_name=model_source if cfg.model.package is None else None,
        dataset_name=cfg.data.hub_name if from_hub else None,
    )
    demo_corpus_dir = run_dir / "demo_corpus"
    datasets.disable_progress_bars()
    # data-parallel: rank 0 writes the demo corpus and the tokenizer, the others read them
    with distributed.main_first():
        label_names = resolve_label_names(cfg.data, demo_corpus_dir)
        splits = load_splits(cfg.data, label_names, demo_corpus_dir)
        splits = subset(splits, cfg.data.max_train_sentences, cfg.data.max_eval_sentences)
        if cfg.model.tokenizer is not None or model_source is not None:
            tokenizer = load_tokenizer(cfg.model.tokenizer or model_source)
        elif ddp.is_main:  # a random model: a vocabulary of its family's kind, from the data
            model_type = cfg.model.random_init.get("model_type", "bert")
            tokenizer = build_tokenizer(
                TOKENIZER_KINDS.get(model_type, "wordpiece"),
                model_type,
                splits["train"]["tokens"],
                run_dir / "tokenizer",
            )
        else:
            tokenizer = load_tokenizer(run_dir / "tokenizer")  # rank 0's
    log.info("sentences: %s", {split: len(dataset) for split, dataset in splits.items()})
    if not tokenizer.is_fast:
        raise ValueError("a fast tokenizer is needed (word_ids() maps subwords to words)")
    if ddp.is_main:
        tokenizer.save_pretrained(run_dir / "tokenizer")
    return label_names, splits, tokenizer, model_source


def build_tagger(
    cfg: DictConfig,
    label_names: list[str],
    tokenizer,
    model_source: str | None,
    ddp,
    device: torch.device,
):
    """The tagger on `device`, and what training steps call: it under DDP and torch.compile."""
    random_init = cfg.model.random_init
    padding_free = cfg.model.padding_free
    if padding_free is None and cfg.compile:
        # a compiled step wants few shapes: padded batches (data.pad_to_multiple_of buckets them)
        padding_free = False
    model = build_model(
        num_labels=len(label_names),
        dropout=cfg.model.dropout,
        pretrained_path=model_source,
        random_init=OmegaConf.to_container(random_init) if random_init else None,
        vocab_size=len(tokenizer),
        pooling=cfg.model.pooling,
        head=cfg.model.head,
        decode=cfg.model.decode,
        label_names=label_names,
        special_ids=special_ids(tokenizer),
        padding_free=padding_free,
    ).to(device)
    log.info(
        "model: %.1fM parameters%s",
        sum(p.numel() for p in model.parameters()) / 1e6,
        ", padding-free batches" if model.padding_free else "",
    )
    step_model = model  # evaluation always runs the eager model
    if ddp.enabled:
        # Same weights everywhere (DDP also copies rank 0's); dropout masks differ per rank.
        step_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        torch.manual_seed(cfg.seed + ddp.rank)
    if cfg.compile:
        # One compiled graph per (batch, length) shape; buckets keep the count small, and the
        # cache must hold them all or every new shape would evict an old one and recompile.
        torch._dynamo.config.cache_size_limit = 64
        step_model = torch.compile(step_model, mode=cfg.compile_mode, dynamic=False)
    return model, step_model


def special_ids(tokenizer) -> dict:
    """The tokenizer's special-token ids, for a random model's config (padding index, and
    RoBERTa's position offset, follow the padding id)."""
    ids = {
        f"{role}_id": getattr(tokenizer, f"{role}_id", None)
        for role in ("pad_token", "bos_token", "eos_token", "cls_token", "sep_token")
    }
    return {key: value for key, value in ids.items() if value is not None}


def build_optimization(
    cfg: DictConfig, model, total_steps: int, device: torch.device, precision: str
):
    """AdamW, the linear schedule (warmup, then decay to 0 at `total_steps`), and the
    GradScaler (active with fp16 only)."""
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
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    log.info("%d warmup steps", warmup_steps)
    return optimizer, scheduler, scaler


def labelled_tokens(examples) -> int:
    """For loss_normalization=average: every labelled token weighs the same in every step.
    Divided by its own batch's count (=batch, the Hugging Face mean), a length-grouped batch
    of short sentences would give each of its tokens many times the weight of one in a long
    batch; divided by the epoch's average count per step, none does."""
    return sum(sum(label != IGNORE_INDEX for label in labels) for labels in examples["labels"])


def build_optimizer(model: torch.nn.Module, lr, betas, eps, weight_decay, layer_decay=None):
    """AdamW; biases and LayerNorm weights get no weight decay (as in BERT's own recipe).

    `layer_decay` (e.g. 0.9): the head learns at `lr`, the top encoder layer at lr x decay,
    each layer below at one more factor, the embeddings at lr x decay^(layers + 1): the lower
    layers, which hold the most general features, move least."""
    num_layers, prefix = model.config.num_hidden_layers, model.encoder_name
    groups = {}  # (depth, decays) -> parameter group
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        decays = not (name.endswith(".bias") or "LayerNorm" in name)
        depth = layer_depth(name, num_layers, prefix) if layer_decay is not None else num_layers + 1
        scale = (layer_decay or 1.0) ** (num_layers + 1 - depth)
        group = groups.setdefault(
            (depth, decays),
            {
                "params": [],
                "weight_decay": weight_decay if decays else 0.0,
                "lr": lr * scale,
            },
        )
        group["params"].append(parameter)
    groups = list(groups.values())
    # The fused kernel updates all parameters in one pass: on a 2-core CPU it cuts MiniLM's
    # optimizer step from ~160 ms to ~25 ms, and it is the fast path on CUDA too.
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, fused=True)


def resume_or_start(run: Run) -> tuple[LoopState, bool]:
    """A fresh state, or the state of the checkpoint `resume` points at (weights, optimizer,
    schedule, scaler and every RNG restored too); and whether it was resumed."""
    resume_from = resolve_resume(run.cfg.resume, run.run_dir)
    if resume_from is None:
        return LoopState(), False
    saved = load_training_checkpoint(resume_from, run.model)
    check_same_recipe(OmegaConf.create(saved["config"]), run.cfg, resume_from)
    world_size = run.ddp.world_size
    if saved.get("world_size", 1) != world_size:
        raise CheckpointError(
            f"resume={resume_from}: trained with {saved.get('world_size', 1)} processes, "
            f"resumed with {world_size}; the global batch would change mid-run"
        )
    state = LoopState.from_dict(saved["loop"], resume_from)
    run.optimizer.load_state_dict(saved["optimizer"])
    run.scheduler.load_state_dict(saved["scheduler"])
    run.scaler.load_state_dict(saved["scaler"])
    set_rng_state(saved["rng_ranks"][run.ddp.rank] if "rng_ranks" in saved else saved["rng"])
    log.info("resumed from %s: step %d, epoch %d", resume_from, state.step, state.epoch + 1)
    return state, True


def check_same_recipe(saved: DictConfig, current: DictConfig, checkpoint: Path) -> None:
    """Resuming with another learning rate, batch size, model or data would silently train
    a different recipe from the middle on: refuse, naming the keys that differ."""
    before, now = recipe_view(saved), recipe_view(current)
    differ = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    if differ:
        changes = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in differ)
        raise CheckpointError(
            f"resume={checkpoint}: the checkpoint was trained with another recipe ({changes}); "
            "resume with the same settings or start a new run"
        )


class QuietWriter:
    """Stands in for the SummaryWriter on data-parallel ranks other than 0: writes nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def open_writer(run: Run, state: LoopState, write_config: bool):
    """TensorBoard, continuing after the state's step. Events after a checkpoint's step (a
    killed run's last minutes) are dropped, so resumed curves continue without duplicates.
    TensorBoard reads a folder's event files in name order, which starts with the creation
    second: wait for a second of our own."""
    if not run.ddp.is_main:
        return QuietWriter()  # one process writes the curves
    for previous in (run.run_dir / "tensorboard").glob("events.out.tfevents.*"):
        while int(time.time()) <= int(previous.name.split(".")[3]):
            time.sleep(0.05)
    writer = SummaryWriter(str(run.run_dir / "tensorboard"), purge_step=state.step + 1)
    if write_config:
        writer.add_text("config", "```\n" + OmegaConf.to_yaml(run.cfg) + "\n```")
    return writer


# ---------------------------------------------------------------- finish


def finish(run: Run, state: LoopState) -> dict:
    """The card's table on the console; the best checkpoint scored on test, exported with
    its model card; everything in metrics.json (returned)."""
    metrics = summary(run, state)
    log.info("results:\n%s", format_results_table(state.epoch_rows))
    run.model.load_state_dict(load_file(weights_file(run.run_dir, "best")))
    if run.cfg.eval.test_at_end and "test" in run.loaders:
        metrics["test"], bootstrap = evaluate_test(run, state)
        if bootstrap is not None:  # computed on the first data-parallel process only
            metrics["test_bootstrap"] = bootstrap
    final_metrics = {f"hparams/best_val_{run.selection_metric}": state.best.value}
    if "test" in metrics:
        final_metrics[f"hparams/test_{run.selection_metric}"] = metrics["test"][
            run.selection_metric
        ]
    if not run.ddp.is_main:
        metrics["wall_seconds"] = time.perf_counter() - run.started
        return metrics
    write_hparams(run.writer, hyperparameters(run.cfg), final_metrics)
    run.writer.close()
    cfg = run.cfg
    base_model = cfg.model.name_or_path or cfg.model.package or "a randomly initialised BERT"
    export_dir = run.run_dir / "model"
    export_model(
        run.model,
        run.tokenizer,
        run.label_names,
        export_dir,
        model_card(cfg, metrics, base_model, str(export_dir.resolve())),
    )
    metrics["wall_seconds"] = time.perf_counter() - run.started
    (run.run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log.info(
        "best val/%s %.4f at step %d; wrote %s",
        run.selection_metric,
        state.best.value,
        state.best.step,
        run.run_dir,
    )
    return metrics


def summary(run: Run, state: LoopState) -> dict:
    cfg, metric = run.cfg, run.selection_metric
    return {
        "experiment": cfg.experiment_name,
        "task": cfg.data.task,
        "eval_level": cfg.eval.level,
        "selection_metric": f"val/{metric}",
        "best": {
            "epoch": state.best.epoch,
            "step": state.best.step,
            f"val/{metric}": state.best.value,
        },
        "epochs": state.epoch_rows,
        "final": state.epoch_rows[-1],
        "steps": state.step,
        "train_seconds": state.train_seconds,  # optimizer steps only, batch collation included
        "train_tokens": state.train_tokens,
        "train_tokens_per_s": state.train_tokens / state.train_seconds,
        "loop_seconds": run.loop_seconds,
        "mean_train_length": run.mean_train_length,
        "first_step_seconds": run.first_step_seconds,
        "eval_seconds": state.eval_seconds,
        "eval_tokens_per_s": state.eval_tokens / state.eval_seconds,
        "curve": run.curve,
        "label_names": run.label_names,
        "world_size": run.ddp.world_size,
        "global_batch_size": cfg.data.batch_size * run.ddp.world_size * run.accum,
    }


def evaluate_test(run: Run, state: LoopState) -> tuple[dict, dict | None]:
    """The best checkpoint (loaded into `run.model`) on the test split: its scores, and their
    bootstrap 95% interval (None on data-parallel processes but the first)."""
    scores, figure, bootstrap = evaluate_split(
        run.model,
        run.loaders["test"],
        run.splits["test"],
        run.label_names,
        run.span_task,
        run.cfg.eval.level,
        run.cfg.eval.mode,
        run.device,
        run.autocast,
        run.run_dir / "eval" / "test",
        title=f"test, best checkpoint (step {state.best.step})",
        write=run.ddp.is_main,
        seen_entities=run.seen_entities,
    )
    if figure is not None:
        run.writer.add_figure("test/confusion_matrix", figure, state.step)
    for key, value in scores.items():
        if key != "per_type":
            run.writer.add_scalar(f"test/{key}", value, state.step)
    log.info("test, best checkpoint:\n%s", format_per_type_table(scores))
    return scores, bootstrap


def write_hparams(writer: SummaryWriter, hparams: dict, final_metrics: dict[str, float]) -> None:
    """Record this run in the HParams plugin inside the run's own event file.

    `SummaryWriter.add_hparams` would write into a new timestamped subfolder, splitting one
    run into two in TensorBoard; writing the plugin's summaries here keeps it one run, so
    `tensorboard --logdir <sweep folder>` lists every run of a sweep in the HParams tab.
    """
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    experiment, session_start, session_end = hparams_summaries(hparams, final_metrics)
    for summary_proto in (experiment, session_start, session_end):
        writer.file_writer.add_summary(summary_proto)
    for name, value in final_metrics.items():
        writer.add_scalar(name, value)
