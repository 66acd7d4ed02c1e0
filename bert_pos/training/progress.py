"""What a run shows while it trains: the progress bar and lines, TensorBoard's
curves and its HParams row.
"""

import logging
import time

from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from bert_pos.training.state import LoopState, Run, StepResult

log = logging.getLogger(__name__)


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


def clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


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
