"""Where a run's curves go: TensorBoard (the default), MLflow and Weights & Biases, chosen by
`loggers=[tensorboard,mlflow,wandb]`. Each gets the same scalars (train/*, val/*, test/*),
the confusion-matrix images, the flat hyperparameters (`recipe_view`), the per-epoch table
and the final scores; a sweep's jobs are grouped (MLflow: one experiment per sweep; W&B: one
group). A resumed run continues the same MLflow and W&B runs: their ids are kept in the run
folder's trackers.json.

The loop talks to one `Trackers` object; data-parallel ranks other than 0 get one that holds
no tracker.
"""

import json
import logging
import time
from pathlib import Path

from omegaconf import OmegaConf

from bert_pos.runtime.paths import TRACKERS_FILE
from bert_pos.runtime.recipe import hyperparameters, recipe_view

log = logging.getLogger(__name__)

MLFLOW_PARAMS_PER_CALL = 100  # MLflow's limit on parameters in one log_batch


class TensorBoardTracker:
    """The event files in `<run>/tensorboard/`, continuing after the state's step: events
    after a checkpoint's step (a killed run's last minutes) are dropped, so resumed curves
    continue without duplicates."""

    def __init__(self, run_dir: Path, cfg, step: int, resumed: bool):
        from torch.utils.tensorboard import SummaryWriter

        # TensorBoard reads a folder's event files in name order, which starts with the
        # creation second: wait for a second of our own.
        for previous in (run_dir / "tensorboard").glob("events.out.tfevents.*"):
            while int(time.time()) <= int(previous.name.split(".")[3]):
                time.sleep(0.05)
        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=step + 1)
        if not resumed:
            self.writer.add_text("config", "```\n" + OmegaConf.to_yaml(cfg) + "\n```")

    def add_scalar(self, name: str, value: float, step: int) -> None:
        self.writer.add_scalar(name, value, step)

    def add_figure(self, name: str, figure, step: int) -> None:
        self.writer.add_figure(name, figure, step)

    def finish(self, cfg, epoch_rows: list[dict], final_metrics: dict) -> None:
        """The run's row in the HParams plugin, inside its own event file.

        `SummaryWriter.add_hparams` would write into a new timestamped subfolder, splitting one
        run into two in TensorBoard; writing the plugin's summaries here keeps it one run, so
        `tensorboard --logdir <sweep folder>` lists every run of a sweep in the HParams tab.
        """
        from torch.utils.tensorboard.summary import hparams as hparams_summaries

        summaries = hparams_summaries(hyperparameters(cfg), final_metrics)
        for summary_proto in summaries:
            self.writer.file_writer.add_summary(summary_proto)
        for name, value in final_metrics.items():
            self.writer.add_scalar(name, value)

    def close(self, failed: bool = False) -> None:
        self.writer.close()


class MLflowTracker:
    """An MLflow run in `mlflow.tracking_uri` (a local SQLite file by default), in the
    experiment `experiment_name`, or `<experiment_name>/<sweep folder>` for a sweep's jobs.
    MlflowClient with the run's id, not the module's active run: a sweep trains its jobs one
    after another in one process."""

    def __init__(self, cfg, run_dir: Path, sweep_dir: Path | None, run_id: str | None):
        from mlflow import MlflowClient

        database = sqlite_file(cfg.mlflow.tracking_uri)
        if database is not None:  # SQLite makes the file, not its folder
            database.parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=cfg.mlflow.tracking_uri)
        if run_id is not None:
            self.run_id = run_id
            self.client.update_run(run_id, status="RUNNING")
            return
        group = None if sweep_dir is None else sweep_dir.name
        experiment_name = cfg.experiment_name if group is None else f"{cfg.experiment_name}/{group}"
        experiment = self.client.get_experiment_by_name(experiment_name)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else self.client.create_experiment(
                experiment_name, artifact_location=artifact_location(database)
            )
        )
        tags = {"run_dir": str(run_dir.resolve())}
        if group is not None:
            tags["sweep"] = group
        run = self.client.create_run(
            experiment_id, run_name=run_name(run_dir, sweep_dir), tags=tags
        )
        self.run_id = run.info.run_id
        from mlflow.entities import Param

        params = [Param(key, str(value)) for key, value in recipe_view(cfg).items()]
        for start in range(0, len(params), MLFLOW_PARAMS_PER_CALL):
            self.client.log_batch(
                self.run_id, params=params[start : start + MLFLOW_PARAMS_PER_CALL]
            )

    def add_scalar(self, name: str, value: float, step: int) -> None:
        self.client.log_metric(self.run_id, name, float(value), step=step)

    def add_figure(self, name: str, figure, step: int) -> None:
        self.client.log_figure(self.run_id, figure, f"{name}/step-{step:07d}.png")

    def finish(self, cfg, epoch_rows: list[dict], final_metrics: dict) -> None:
        self.client.log_dict(self.run_id, epoch_rows, "epochs.json")
        for name, value in final_metrics.items():
            self.client.log_metric(self.run_id, name, float(value))

    def close(self, failed: bool = False) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


def sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a SQLite tracking URI (`sqlite:///<path>`), else None."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri.removeprefix("sqlite:///")).resolve()


def artifact_location(database: Path | None) -> str | None:
    """Where a new experiment's files (the epoch table, the confusion matrices) go: beside a
    SQLite store's file, not MLflow's default `./mlruns` in whatever folder the run started
    from; a server's own default elsewhere (None)."""
    return None if database is None else (database.parent / "mlflow-artifacts").as_uri()


class WandbTracker:
    """A Weights & Biases run in project `wandb.project` (`WANDB_MODE=offline` or
    `wandb.mode=offline` writes it under `<run>/wandb/` without network; `wandb sync` uploads
    it later); a sweep's jobs share a group, the sweep folder's name."""

    def __init__(self, cfg, run_dir: Path, sweep_dir: Path | None, run_id: str | None):
        import wandb

        self.run = wandb.init(
            project=cfg.wandb.project,
            entity=cfg.wandb.entity,
            mode=cfg.wandb.mode,
            dir=str(run_dir),
            group=None if sweep_dir is None else sweep_dir.name,
            name=run_name(run_dir, sweep_dir),
            config=recipe_view(cfg),
            id=run_id,
            resume="allow" if run_id is not None else None,
            reinit="create_new",  # a sweep's jobs run one after another in one process
            # quiet: the run's own lines say where it is; console off: stdout stays ours
            settings=wandb.Settings(quiet=True, console="off"),
        )
        self.run_id = self.run.id
        self.run.define_metric("*", step_metric="step")

    def add_scalar(self, name: str, value: float, step: int) -> None:
        self.run.log({name: value, "step": step})

    def add_figure(self, name: str, figure, step: int) -> None:
        import wandb

        self.run.log({name: wandb.Image(figure), "step": step})

    def finish(self, cfg, epoch_rows: list[dict], final_metrics: dict) -> None:
        import wandb

        columns = list(dict.fromkeys(key for row in epoch_rows for key in row))
        table = wandb.Table(
            columns=columns, data=[[row.get(c) for c in columns] for row in epoch_rows]
        )
        self.run.log({"epochs": table})
        self.run.summary.update(final_metrics)

    def close(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)


# The trackers that keep a run of their own, continued by its id (trackers.json) on resume.
TRACKERS_WITH_RUNS = {"mlflow": MLflowTracker, "wandb": WandbTracker}


def run_name(run_dir: Path, sweep_dir: Path | None) -> str:
    """The run folder's name; in a sweep, its path below the sweep folder
    (`optim.lr-1e-05/seed-1`)."""
    if sweep_dir is None:
        return run_dir.name
    return str(run_dir.resolve().relative_to(sweep_dir.resolve()))


class Trackers:
    """Every tracker the run logs to, behind one interface. A tracker that fails (a server
    gone, a full disk) stops the run as any error does; none is dropped silently."""

    def __init__(self, trackers: dict):
        self.trackers = trackers

    def add_scalar(self, name: str, value: float, step: int) -> None:
        for tracker in self.trackers.values():
            tracker.add_scalar(name, value, step)

    def add_figure(self, name: str, figure, step: int) -> None:
        for tracker in self.trackers.values():
            tracker.add_figure(name, figure, step)

    def finish(self, cfg, epoch_rows: list[dict], final_metrics: dict) -> None:
        for tracker in self.trackers.values():
            tracker.finish(cfg, epoch_rows, final_metrics)

    def close(self, failed: bool = False) -> None:
        for tracker in self.trackers.values():
            tracker.close(failed)


def sweep_folder() -> Path | None:
    """The sweep folder when this run is a job of a Hydra sweep, else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return Path(HydraConfig.get().sweep.dir)


def open_trackers(
    cfg, run_dir: Path, step: int, resumed: bool, is_main: bool, sweep_dir: Path | None
):
    """The trackers `cfg.loggers` names, continuing the runs of trackers.json when resuming.
    `sweep_dir`: the sweep folder of a sweep's job, else None."""
    if not is_main:
        return Trackers({})  # one process logs
    ids_file = run_dir / TRACKERS_FILE
    ids = json.loads(ids_file.read_text()) if resumed and ids_file.is_file() else {}
    trackers = {}
    for name in cfg.loggers:
        if name == "tensorboard":
            trackers[name] = TensorBoardTracker(run_dir, cfg, step, resumed)
        else:
            trackers[name] = TRACKERS_WITH_RUNS[name](cfg, run_dir, sweep_dir, ids.get(name))
    ids = {name: t.run_id for name, t in trackers.items() if name in TRACKERS_WITH_RUNS}
    if ids:
        ids_file.write_text(json.dumps(ids, indent=2) + "\n")
        log.info(
            "tracking in %s", ", ".join(f"{name} run {run_id}" for name, run_id in ids.items())
        )
    return Trackers(trackers)
