"""What a run shows while it trains: the progress bar and lines, and the train/* curves
(trackers.py sends them to TensorBoard and the other trackers).
"""

import logging
import time

from tqdm import tqdm

from bert_pos.scoring.scorer import task_scores
from bert_pos.training.state import LoopState, Run, StepResult

log = logging.getLogger(__name__)


def log_step(run: Run, state: LoopState, result: StepResult, progress: tqdm) -> None:
    """The progress bar every step; the trackers' train/* every `log_every_n_steps`."""
    tokens_per_s = result.tokens / result.seconds
    progress.update()
    progress.set_postfix(loss=f"{result.loss:.4f}", tok_s=f"{tokens_per_s:.0f}")
    now = time.perf_counter()
    first_step = state.step == run.first_step + 1  # says at once that training runs
    if progress.disable and (
        first_step or now - run.last_progress_line >= run.cfg.progress_every_s
    ):
        log_progress(run, state, result.loss, tokens_per_s, now)  # a log file, not a terminal
    if state.step % run.cfg.log_every_n_steps:
        return
    run.trackers.add_scalar("train/loss", result.loss, state.step)
    run.trackers.add_scalar("train/lr", max(run.scheduler.get_last_lr()), state.step)  # the head's
    run.trackers.add_scalar("train/grad_norm", result.grad_norm, state.step)
    run.trackers.add_scalar("train/tokens_per_s", tokens_per_s, state.step)


def log_progress(run: Run, state: LoopState, loss: float, tokens_per_s: float, now: float) -> None:
    """One line, at least every `progress_every_s` seconds: where the run is and when it ends."""
    run.last_progress_line = now
    elapsed = now - run.started
    done = state.step - run.first_step
    remaining = elapsed / max(done, 1) * (run.total_steps - state.step)
    epoch = state.epoch_position(run.steps_per_epoch)
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


def log_evaluation(run: Run, step: int, epoch: float, scores: dict, seconds: float, best: bool):
    """An evaluation in one line: where, the validation loss and scores (each task's, with
    several), how long it took."""
    if len(run.tasks) == 1:
        scored = scored_text(run.task, scores)
    else:
        scored = ", ".join(
            f"{task.name} {scored_text(task, task_scores(scores, run.tasks, i))}"
            for i, task in enumerate(run.tasks)
        )
        if "alltags/accuracy" in scores:
            scored += f", AllTags {scores['alltags/accuracy']:.4f}"
    log.info(
        "validation at step %d/%d (epoch %.2f): loss %.4f, %s%s, %.1f s",
        step,
        run.total_steps,
        epoch,
        scores["loss"],
        scored,
        " (best so far)" if best else "",
        seconds,
    )


def scored_text(task, scores: dict) -> str:
    if task.spans:
        return f"P {scores['precision']:.4f} R {scores['recall']:.4f} F1 {scores['f1']:.4f}"
    return f"accuracy {scores['accuracy']:.4f}"


def clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"
