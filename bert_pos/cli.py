"""What every command shares, written once: the config checked before any heavy import, a
user's mistake reported as one line with exit status 1, and `+experiment=NAME` accepted.

    @hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
    @command("bert_pos.evaluate", EvaluateConfig)
    def main(cfg: DictConfig):
        from bert_pos.inference.evaluate_run import evaluate_run  # torch: only now

        return evaluate_run(cfg)

    if __name__ == "__main__":
        run_command(main)

Commands that take plain arguments (compare, report) call `run` alone. Nothing here imports
torch: a command answers a typo in well under a second.
"""

import functools
import logging
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from bert_pos.runtime.errors import UserError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

log = logging.getLogger(__name__)

GROUPS_IN_DEFAULTS = ("experiment",)  # conf/train.yaml lists them (`experiment: null`)


def accept_plus_groups(arguments: list[str]) -> list[str]:
    """`+experiment=NAME` read as `experiment=NAME`. The group is in the defaults list, so
    `experiment=NAME` chooses it; Hydra refuses the `+` form for such a group, which users,
    scripts and older commands type."""
    plus = tuple(f"+{group}=" for group in GROUPS_IN_DEFAULTS)
    return [a[1:] if a.startswith(plus) else a for a in arguments]


def command(name: str, schema: type, check: Callable | None = None):
    """Wrap a Hydra entry point: the config's keys checked against `schema` (or by `check`)
    first, and a UserError raised anywhere inside logged as one line, exit status 1.
    `run_command` checks the command line's keys against `schema` before Hydra starts."""

    def decorate(function):
        @functools.wraps(function)
        def wrapped(cfg):
            from bert_pos.runtime.keys import check_known_keys

            try:
                if check is not None:
                    check(cfg)
                else:
                    check_known_keys(cfg, schema, name)
                return function(cfg)
            except UserError as err:
                log.error("%s", err)
                remove_unstarted_output_dir()  # a run that never started leaves no folder
                raise SystemExit(1) from None

        wrapped.command_name, wrapped.schema = name, schema  # hydra.main's wrapper copies them
        return wrapped

    return decorate


def run_command(main: Callable, *arguments) -> None:
    """`python -m bert_pos.<command>`: the `+experiment=` form read as `experiment=`, a
    misspelt key answered before Hydra starts (one line, the closest keys), and a UserError
    that reaches here (commands without Hydra) printed as one line, exit status 1."""
    sys.argv = accept_plus_groups(sys.argv)
    try:
        if getattr(main, "schema", None) is not None:
            check_command_line(main.command_name, main.schema, sys.argv[1:])
            if {"--help", "-h"} & set(sys.argv[1:]):
                print(command_help(main.command_name, sys.argv[1:]))
                return
        main(*arguments)
    except UserError as err:
        program = sys.argv[0].rsplit("/", 1)[-1].removesuffix(".py")
        print(f"{program}: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def check_command_line(name: str, schema: type, arguments: list[str]) -> None:
    """Every `key=value` on the command line names a setting of `schema` or a config group
    (a folder of conf/), else one line with the closest keys. Hydra's own answer to an unknown
    key is to suggest `+key=value`, which only adds the typo to the config."""
    from bert_pos.runtime.keys import not_a_setting, unknown_override_keys

    groups = {path.name for path in CONF_DIR.iterdir() if path.is_dir()}
    unknown = unknown_override_keys(arguments, schema, groups)
    if unknown:
        raise UserError(not_a_setting(unknown, schema, name))


def remove_unstarted_output_dir() -> None:
    """The folder Hydra made for a single run that stopped before it started. Only where
    Hydra makes one per start (`hydra.output_subdir` set: train, bench); evaluate and
    predict write into folders that are not theirs."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return
    hydra_config = HydraConfig.get()
    if hydra_config.mode == RunMode.RUN and hydra_config.output_subdir is not None:
        remove_unstarted_run_dir(Path(hydra_config.runtime.output_dir))


def remove_unstarted_run_dir(run_dir: Path) -> None:
    """Remove the folder Hydra made for a run that stopped before it started (it holds
    Hydra's `.hydra/` and the log, nothing else), and the experiment's folder above it
    (`experiments/runs/<experiment>/`, `experiments/bench/<experiment>/`) if that leaves it
    empty. A folder with anything else in it (a run being resumed) stays."""
    if not (run_dir / ".hydra").is_dir():
        return  # not a folder Hydra made for this start
    if {p.name for p in run_dir.iterdir()} <= {".hydra", "train.log", "bench.log"}:
        shutil.rmtree(run_dir)
        experiment_dir = run_dir.parent
        if experiment_dir.parent.name in ("runs", "bench") and not any(experiment_dir.iterdir()):
            experiment_dir.rmdir()


GROUPED_CONFIGS = ("train", "bench")  # the configs composed from conf/'s groups


def command_help(name: str, arguments: list[str]) -> str:
    """`--help`: the config groups and their options, then the config these arguments
    compose. Written here, not by Hydra: Hydra's copies its config store once per group it
    lists, over a second on two cores."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    config_name = name.removeprefix("bert_pos.")
    overrides = [a for a in arguments if a not in ("--help", "-h") and not a.startswith("-")]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides)
    lines = [f"python -m {name} [key=value ...]  (conf/{config_name}.yaml)", ""]
    if config_name in GROUPED_CONFIGS:
        lines.append("== Config groups (group=option, or +group=option) ==")
        for group in sorted(p for p in CONF_DIR.iterdir() if p.is_dir()):
            options = sorted(p.stem for p in group.glob("*.yaml"))
            lines.append(f"{group.name}: {', '.join(options)}")
        lines.append("")
    lines += ["== Config ==", OmegaConf.to_yaml(cfg).rstrip()]
    return "\n".join(lines)
