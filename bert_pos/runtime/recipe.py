"""The flat view of a run's config, and the keys that decide what it computes.

No torch: commands read these before the heavy libraries load.
"""

import shlex
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Keys that say where and how a run goes, not what it computes: a resumed run may change them,
# and they are no hyperparameters.
RUN_SETTINGS = (
    "experiment_name",
    "resume",
    "device",
    "log_every_n_steps",
    "progress_every_s",
    "checkpoint",
    "early_stopping",
    "nonfinite",
    "data.cache_dir",
    "data.num_workers",
    "data.dir",
    "trainer",
    "loggers",
    "mlflow",
    "wandb",
    # how batches are laid out, not what they compute (float rounding aside)
    "data.pad_to_multiple_of",
    "model.padding_free",
)


def flat_view(cfg: DictConfig) -> dict[str, Any]:
    """Every leaf of the config under its dotted key (`optim.lr`), resolved; lists stay lists."""
    leaves = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict) and value:
                walk(value, f"{prefix}{key}.")
            else:
                leaves[f"{prefix}{key}"] = value

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return leaves


def recipe_view(cfg: DictConfig) -> dict[str, Any]:
    """The flat view less `RUN_SETTINGS`: the keys that decide what a run computes."""
    return {
        key: value
        for key, value in flat_view(cfg).items()
        if not any(key == k or key.startswith(f"{k}.") for k in RUN_SETTINGS)
    }


def hyperparameters(cfg: DictConfig) -> dict[str, float | int | str | bool]:
    """The recipe as scalars, for TensorBoard's HParams tab (one row per run): null becomes
    "null", a list its text."""
    scalars = {}
    for key, value in recipe_view(cfg).items():
        if value is None:
            value = "null"
        elif isinstance(value, (list, dict)):
            value = str(value)
        scalars[key] = value
    return scalars


def continue_command(run_dir: Path | str, overrides: list[str]) -> str:
    """The command line that continues a run: its own overrides (as Hydra received them, less
    any resume= and run folder), then `resume=auto` in its folder."""
    kept = [o for o in overrides if not o.lstrip("+~").startswith(("resume=", "hydra.run.dir="))]
    return shlex.join(
        ["python", "-m", "bert_pos.train", *kept, "resume=auto", f"hydra.run.dir={run_dir}"]
    )
