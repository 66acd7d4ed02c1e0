"""The training loop: optimizer steps, evaluation and best-model selection,
epoch ends. `train_loop(run, state)` runs it; setup.py builds `run` and `state`.
"""

import itertools
import logging
import math
import time
from contextlib import nullcontext

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from bert_pos.data.labels import IGNORE_INDEX
from bert_pos.modeling.tagger import unwrap
from bert_pos.runtime import distributed
from bert_pos.runtime.checkpoint import save_weights
from bert_pos.runtime.errors import NonFiniteError
from bert_pos.runtime.paths import weights_file
from bert_pos.runtime.signals import StopRequests
from bert_pos.scoring.details import write_evaluation
from bert_pos.scoring.scorer import evaluate_tasks
from bert_pos.scoring.span_scores import Mentions
from bert_pos.training.progress import log_evaluation, log_step
from bert_pos.training.resume import interrupted, save_resumable
from bert_pos.training.state import Best, LoopState, Run, StepResult

log = logging.getLogger(__name__)


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
    step, scores, predicted, mentions = run.last_validation
    figures, _ = write_evaluation(
        run.run_dir / "eval" / "validation",
        run.splits["validation"],
        run.tasks,
        run.validation_golds,
        predicted,
        scores,
        title=f"validation, step {step}",
        seen_entities=run.seen_entities,
        conllu=run.conllu_sources.get("validation"),
        mentions=mentions,
    )
    for prefix, figure in figures.items():
        run.trackers.add_figure(f"val/{prefix}confusion_matrix", figure, step)


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
        run.step_model,
        window,
        run.autocast,
        run.scaler,
        run.device,
        run.loss_divisor,
        run.task_weights,
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
    model,
    window: list[dict],
    autocast,
    scaler,
    device,
    divisor: float | None = None,
    task_weights: list[float] = (1.0,),
) -> tuple[float, int]:
    """Forward and backward over the micro-batches of one optimizer step.

    Each micro-batch's summed loss is divided by the labelled tokens of the whole window (or by
    a fixed `divisor`), never per micro-batch, so the accumulated gradient equals that of one
    batch holding all of them: k micro-batches of b give the gradient of one batch of k*b, the
    last, shorter window of an epoch included. With several tasks the loss is their
    `task_weights`-ed sum, counted over the first task's labelled tokens (every task labels
    the same subwords). Returns (summed loss, labelled tokens).
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
                logits = model(
                    batch["input_ids"], batch["attention_mask"], batch["word_index"], all_tasks=True
                )
            # each task's head's loss (cross-entropy, or the CRF's), weighted and summed
            loss_sum = unwrap(model).tasks_loss_sum(logits, batch, task_weights)
            scaler.scale(loss_sum * world_size / divisor).backward()
        window_loss_sum += loss_sum.item()
    return window_loss_sum, window_labelled


def evaluate_and_select(run: Run, state: LoopState) -> None:
    """Validation scores now: logged, kept as a row, saved as `best` when best; early stopping
    once `early_stopping.patience` evaluations brought no gain."""
    cfg, step = run.cfg, state.step
    epoch = state.epoch_position(run.steps_per_epoch)
    train_loss = state.epoch_loss_sum / max(state.epoch_labelled, 1)
    eval_started = time.perf_counter()
    # Scores only: what selection and the curves need (details: write_validation_details).
    mentions = None if run.validation_mentions is None else Mentions(run.validation_mentions)
    scores, predicted = evaluate_tasks(
        run.model,
        run.loaders["validation"],
        run.tasks,
        cfg.eval.level,
        run.device,
        run.autocast,
        cfg.eval.mode,
        run.validation_golds,
        run.task_weights,
        mentions,
    )
    run.last_validation = (step, scores, predicted, mentions)
    eval_seconds = time.perf_counter() - eval_started
    state.eval_seconds += eval_seconds
    run.curve.append(
        {
            "step": step,
            "score": scores[run.select],
            "train_seconds": eval_started - run.loop_started - run.loop_eval_seconds,
        }
    )
    run.loop_eval_seconds += eval_seconds
    state.eval_tokens += run.validation_tokens
    row = evaluation_row(epoch, step, train_loss, scores)
    for key, value in row.items():
        if key.startswith("val/"):
            run.trackers.add_scalar(key, value, step)
    state.best, state.evaluations_without_gain, improved = select_best(
        state.best,
        state.evaluations_without_gain,
        scores[run.select],
        row["epoch"],
        step,
        cfg.early_stopping.min_delta,
    )
    log_evaluation(run, step, epoch, scores, eval_seconds, improved)
    if improved and run.ddp.is_main:
        save_weights(run.model, weights_file(run.run_dir, "best"), step=step, epoch=row["epoch"])
    state.epoch_rows.append(row)
    patience = cfg.early_stopping.patience
    if patience and state.evaluations_without_gain >= patience:
        state.stop_reason = (
            f"early stopping: no gain in val/{run.select} for {patience} evaluations"
        )


def evaluation_row(epoch: float, step: int, train_loss: float, scores: dict) -> dict:
    """One row of metrics.json's `epochs` (and of the card's results table)."""
    row = {"epoch": round(epoch, 4), "step": step, "train/loss": train_loss}
    row.update({f"val/{k}": v for k, v in scores.items() if not k.endswith("per_type")})
    for key in [key for key in scores if key.endswith("per_type")]:  # `<task>/per_type` too
        prefix = key[: -len("per_type")]
        for entity_type, values in scores[key].items():
            row[f"val/{prefix}{entity_type}/f1"] = values["f1"]
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
    epoch_position = state.epoch_position(run.steps_per_epoch)
    if run.ddp.is_main:
        save_weights(
            run.model, weights_file(run.run_dir, "last"), step=state.step, epoch=epoch_position
        )
    state.epoch += 1
    state.step_in_epoch, state.epoch_loss_sum, state.epoch_labelled = 0, 0.0, 0
    if state.step >= run.total_steps:
        state.epoch = run.cfg.epochs  # max_steps reached: no further epoch
