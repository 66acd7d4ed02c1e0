"""Stopping and continuing exactly: step checkpoints of the loop, the state they
restore, the recipe check, and the command line that continues a run.
"""

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bert_pos.runtime import distributed
from bert_pos.runtime.checkpoint import (
    CheckpointError,
    load_training_checkpoint,
    prune_checkpoints,
    resolve_resume,
    rng_state,
    save_training_checkpoint,
    set_rng_state,
)
from bert_pos.runtime.errors import TrainingInterrupted
from bert_pos.runtime.paths import step_checkpoint_dir
from bert_pos.runtime.recipe import continue_command, recipe_view
from bert_pos.training.state import LoopState, Run

log = logging.getLogger(__name__)


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
        f"  {continue_command_of(run.run_dir)}",
        signal_name,
    )


def continue_command_of(run_dir: Path) -> str:
    """The command that continues this run, from the overrides Hydra received."""
    from hydra.core.hydra_config import HydraConfig

    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    return continue_command(run_dir, overrides)


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
