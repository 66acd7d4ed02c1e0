"""Which keys a config schema (a dataclass) has, and the closest of them to a typo: every
command answers a misspelt key, with or without `+`, in one line naming the keys it most
likely meant, before Hydra composes (`cli.check_command_line`) and after
(`check_known_keys`, for keys Hydra let through with `+`).

No torch, nothing of bert_pos: the commands call it before anything heavy loads.
"""

import dataclasses
import difflib
import typing
from typing import Any

from omegaconf import DictConfig

from bert_pos.runtime.errors import UserError


class UnknownKeyError(UserError, ValueError):
    """A key that is no setting; the message names the closest ones."""


def unknown_keys(cfg: DictConfig, schema: type, prefix: str = "") -> list[str]:
    """Keys of `cfg` that the dataclass `schema` does not have. Hydra lets `+key=value` add
    any key past the schema, and a typo added that way (`+optim.lrr=1e-3`) would otherwise
    be ignored for a whole run. Dict-typed fields (random_init, ...) take any keys."""
    hints = typing.get_type_hints(schema)
    unknown = []
    for key in cfg.keys():
        if key not in hints:
            unknown.append(f"{prefix}{key}")
        elif dataclasses.is_dataclass(hints[key]) and isinstance(cfg.get(key), DictConfig):
            unknown += unknown_keys(cfg[key], hints[key], f"{prefix}{key}.")
    return unknown


def check_known_keys(cfg: DictConfig, schema: type, command: str) -> None:
    unknown = unknown_keys(cfg, schema)
    if unknown:
        raise UnknownKeyError(not_a_setting(unknown, schema, command))


def schema_keys(schema: type, prefix: str = "") -> tuple[list[str], list[str]]:
    """The dotted keys of `schema`'s settings, and the prefixes under which any key is
    accepted (dict-typed fields such as model.random_init)."""
    keys, open_prefixes = [], []
    for name, hint in typing.get_type_hints(schema).items():
        if dataclasses.is_dataclass(hint):
            inner_keys, inner_open = schema_keys(hint, f"{prefix}{name}.")
            keys += inner_keys
            open_prefixes += inner_open
        else:
            keys.append(f"{prefix}{name}")
            if takes_any_keys(hint):
                open_prefixes.append(f"{prefix}{name}.")
    return keys, open_prefixes


def takes_any_keys(hint) -> bool:
    """A dict-typed field (`dict[str, Any] | None`, `Any`): its keys are not the schema's."""
    return hint is Any or any(
        typing.get_origin(option) is dict or option is dict or option is Any
        for option in (hint, *typing.get_args(hint))
    )


# The Hugging Face Trainer's names (TrainingArguments) of settings bert_pos names otherwise:
# what its users type first.
TRAINER_NAMES = {
    "learning_rate": "optim.lr",
    "num_train_epochs": "epochs",
    "per_device_train_batch_size": "data.batch_size",
    "per_device_eval_batch_size": "eval.batch_size",
    "gradient_accumulation_steps": "grad_accum_steps",
    "adam_epsilon": "optim.eps",
    "adam_beta1": "optim.betas",
    "adam_beta2": "optim.betas",
    "eval_steps": "eval.every_n_steps",
    "fp16": "precision",
    "bf16": "precision",
}


def closest_keys(key: str, keys: list[str]) -> list[str]:
    """The settings a misspelt `key` most likely meant: the setting of a Hugging Face
    Trainer name (`learning_rate`), or close as a whole (`max_step`), or by its last part
    (`lr` for optim.lr, `optim.lrr`)."""
    last_part = key.rsplit(".", 1)[-1]
    close = [TRAINER_NAMES[last_part]] if TRAINER_NAMES.get(last_part) in keys else []
    close += [k for k in difflib.get_close_matches(key, keys, n=3, cutoff=0.75) if k not in close]
    by_last_part = {k.rsplit(".", 1)[-1]: k for k in keys}
    for near in difflib.get_close_matches(last_part, list(by_last_part), n=3, cutoff=0.75):
        if by_last_part[near] not in close:
            close.append(by_last_part[near])
    return close[:3]


def did_you_mean(key: str, known: list[str], nothing_close: str) -> str:
    """`did you mean X or Y?` with the known names closest to `key`, else `nothing_close`."""
    close = closest_keys(key, known)
    return f"did you mean {' or '.join(close)}?" if close else nothing_close


def not_a_setting(unknown: list[str], schema: type, command: str) -> str:
    """One line for keys that are no setting: the closest existing keys, and where to see
    them all; never the `+key=` form, which would only add the typo to the config."""
    keys, _ = schema_keys(schema)
    answers = [
        f"{key}: not a setting of {command}; {did_you_mean(key, keys, 'no setting is close to it')}"
        for key in unknown
    ]
    return "; ".join(answers) + f" (`python -m {command} --cfg job` lists every key)"


def unknown_override_keys(arguments: list[str], schema: type, groups: set[str]) -> list[str]:
    """The keys of command-line overrides (`key=value`, `+key=value`, `~key`) that are neither
    a setting of `schema` nor a config group: found before Hydra composes, whose own answer
    to a typo is to suggest adding it with `+`."""
    keys, open_prefixes = schema_keys(schema)
    known = set(keys) | groups
    unknown = []
    for argument in arguments:
        if argument.startswith("-") or "=" not in argument and not argument.startswith("~"):
            continue  # -m, --cfg job, --help ...
        key = argument.split("=", 1)[0].lstrip("+~")
        if key.startswith("hydra") or "/" in key or "@" in key or key in known:
            continue  # Hydra's own settings, group paths and packages: Hydra checks them
        if any(key.startswith(prefix) for prefix in open_prefixes):
            continue
        if any(k.startswith(f"{key}.") for k in keys):
            continue  # a whole section, e.g. trainer={...}
        unknown.append(key)
    return unknown
