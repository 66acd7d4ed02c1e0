"""Fine-tune BERT for token classification (NER, POS, chunking) with a handwritten loop.

    python -m bert_pos.train +experiment=demo        # offline quick start, about a minute on CPU
    python -m bert_pos.train +experiment=baseline    # the bert-finetuned-pos card's recipe
    python -m bert_pos.train +experiment=baseline model=minilm data.dir=../shared/data/conll2003
    python -m bert_pos.train -m +experiment=baseline optim.lr=1e-5,2e-5 seed=1,2   # a sweep

Hydra composes the config and checks it against the schema (bert_pos/config.py) first; only
then are torch and the other heavy libraries imported, so a misspelt key is reported at once.
The recipe itself is bert_pos/training/recipe.py: `setup`, `train_loop`, `finish`.

Hydra owns the run folder; everything a run writes goes there (bert_pos/runtime/paths.py lists it):
`tensorboard/`, `checkpoints/{best,last}/model.safetensors`, resumable
`checkpoints/step-NNNNNNN/`, `tokenizer/`, `model/` (the Hugging Face export),
`metrics.json`, `train.log`.
"""

import logging
import math
import shutil
import signal
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from bert_pos.cli import command, run_command
from bert_pos.config import ConfigError, TrainConfig, check_config, register_configs
from bert_pos.runtime.errors import TrainingInterrupted, UserError
from bert_pos.runtime.paths import FAILED_MARKER
from bert_pos.runtime.recipe import continue_command

log = logging.getLogger(__name__)
register_configs()


def train(cfg: DictConfig, run_dir: str | Path) -> dict:
    """Train as `cfg` says, writing into `run_dir`; returns the contents of metrics.json."""
    check_config(cfg)
    from bert_pos.training.recipe import run_recipe  # torch and co.: after the checks

    return run_recipe(cfg, Path(run_dir))


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@command("bert_pos.train", TrainConfig)
def main(cfg: DictConfig) -> float:
    """Hydra entry point; returns the selection metric, which sweepers maximise.

    In a sweep a failed run writes `error.txt` into its folder, is logged, and returns NaN
    (Optuna records a failed trial), so the remaining runs still go ahead.
    """
    hydra_config = HydraConfig.get()
    run_dir = Path(hydra_config.runtime.output_dir)
    if hydra_config.mode == RunMode.RUN:  # a sweep's job writes its error.txt instead
        check_config(cfg)
        if cfg.resume == "auto":
            check_auto_resume_has_a_folder(cfg, hydra_config, run_dir)
    from bert_pos.runtime import distributed

    ddp = distributed.setup(cfg.device)
    if ddp.enabled:
        run_dir = join_main_run_dir(run_dir)
    failed_marker = failed_marker_of(run_dir, ddp)
    failed_marker.unlink(missing_ok=True)  # a resumed run starts with a clean slate
    try:
        metrics = train(cfg, run_dir)
    except TrainingInterrupted as err:
        log.warning("%s", err)
        # 128 + the signal number, as a shell reports a job ended by that signal
        raise SystemExit(128 + signal.Signals[err.signal_name].value) from None
    except Exception as err:
        user_error = isinstance(err, UserError)
        run_dir.mkdir(parents=True, exist_ok=True)
        failed_marker.write_text(
            f"{type(err).__name__}: {err}\n" if user_error else traceback.format_exc()
        )
        if hydra_config.mode == RunMode.MULTIRUN:
            log.error(
                "run %s failed, the sweep goes on: %s: %s",
                run_dir,
                type(err).__name__,
                err,
                exc_info=not user_error,
            )
            return math.nan
        raise  # a UserError: one line (cli.command); anything else: its traceback
    finally:
        distributed.teardown()
    return metrics["best"][metrics["selection_metric"]]


def failed_marker_of(run_dir: Path, ddp) -> Path:
    """Where a failure is written: rank 0's is the run's error.txt; the other data-parallel
    ranks keep their own beside it, so none overwrites rank 0's message."""
    return run_dir / (FAILED_MARKER if ddp.is_main else f"error.rank{ddp.rank}.txt")


def check_auto_resume_has_a_folder(cfg: DictConfig, hydra_config, run_dir: Path) -> None:
    """`resume=auto` continues the run in `hydra.run.dir`; without one, Hydra has just made a
    new timestamped folder, and the run would silently start from scratch. Stop instead,
    with the command that continues the experiment's latest run."""
    if any(o.startswith("hydra.run.dir=") for o in hydra_config.overrides.hydra):
        return
    experiment_runs = run_dir.parent
    earlier = sorted(
        p
        for p in experiment_runs.iterdir()
        if p.is_dir() and p != run_dir and (p / "checkpoints").is_dir()
    )
    target = str(earlier[-1]) if earlier else "<run folder>"
    command = continue_command(target, list(hydra_config.overrides.task))
    latest = (
        f"the latest run of {cfg.experiment_name} is {target}"
        if earlier
        else (f"{experiment_runs} holds no run with checkpoints")
    )
    raise ConfigError(
        f"resume=auto continues the run in hydra.run.dir, and none was given (a new folder "
        f"would start from scratch); {latest}. Continue it with:\n  {command}"
    )


def join_main_run_dir(own_run_dir: Path) -> Path:
    """Data-parallel: every process's Hydra named a run folder from its own clock; all use
    rank 0's. The others log only warnings and errors, to the console, and remove the folder
    Hydra made for them if it is another one (it holds only Hydra's own files)."""
    import torch.distributed as dist
    import transformers

    from bert_pos.runtime import distributed

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
    run_command(main)
