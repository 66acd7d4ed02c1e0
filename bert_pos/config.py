"""The typed schema of the training config and its checks.

The values live in `conf/` (the one home of defaults); these dataclasses only say which keys
exist and their types. Registered in Hydra's ConfigStore as `train_schema` and listed first in
`conf/train.yaml`'s defaults, so a misspelt key or a wrong type fails when the config is
composed, before any data or model is loaded. `check_config` adds the range and choice checks
that types cannot express; `CHOICES` is the one list of every key's allowed values (the values
themselves live in runtime/choices.py and the heads' registry). `recipe_view` flattens a config into the
keys that decide what a run computes: the HParams row, the model card and the resume check
are made from it.

Nothing here imports torch: a command checks its config before the heavy libraries load.
"""

import hashlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from bert_pos.data.checks import data_problems
from bert_pos.modeling.heads import HEADS
from bert_pos.runtime.choices import (
    COMPILE_MODES,
    CONTEXTS,
    DECODINGS,
    DEVICES,
    EVAL_LEVELS,
    EVAL_MODES,
    LABEL_STRATEGIES,
    LOSS_NORMALIZATIONS,
    NONFINITE_ACTIONS,
    POOLINGS,
    PRECISIONS,
    SCHEMES,
    SPAN_DECODINGS,
    TRACKERS,
)
from bert_pos.runtime.errors import UserError
from bert_pos.runtime.keys import check_known_keys
from bert_pos.runtime.paths import SHELL_UNSAFE, run_dir_of

# Every key with a fixed set of values, and its values: the one list the checks, the YAML
# comments and the README's tables are held to (tests/test_config.py).
CHOICES = {
    "data.scheme": SCHEMES,
    "data.label_strategy": LABEL_STRATEGIES,
    "data.context": CONTEXTS,
    "model.pooling": POOLINGS,
    "model.head": tuple(HEADS),
    "model.decode": DECODINGS,
    "model.span_decode": SPAN_DECODINGS,
    "eval.level": EVAL_LEVELS,
    "eval.mode": EVAL_MODES,
    "precision": PRECISIONS,
    "device": DEVICES,
    "compile_mode": COMPILE_MODES,
    "nonfinite.action": NONFINITE_ACTIONS,
    "loss_normalization": LOSS_NORMALIZATIONS,
}

# Which keys exist and their types; a key with a fixed set of values names its list above
# (CHOICES), and conf/*.yaml describes each value.


@dataclass
class DataConfig:
    task: str = MISSING  # ner | pos | chunk (CoNLL-2003 columns), or any name
    tasks: list[str] | None = MISSING  # several tag layers on one encoder; null: `task` alone
    task_columns: Any = MISSING  # null, or task -> its CoNLL column (int) or table column
    task_weights: Any = MISSING  # null, or task -> its weight in the summed loss (default 1)
    word_column: int = MISSING
    label_column: int | None = MISSING  # null: the CoNLL-2003 task's column
    scheme: str = MISSING  # SCHEMES
    labels: list[str] | None = MISSING  # the label list (in `scheme`); null: from the data
    hub_name: str | None = (
        MISSING  # hub dataset or folder `load_dataset` reads; used when `dir` is null
    )
    hub_config: str | None = MISSING  # e.g. a language of a multilingual dataset
    hub_revision: str | None = MISSING
    tokens_column: str = MISSING  # columns of hub, saved and JSON-lines data
    tags_column: str | None = MISSING  # null: `{task}_tags` for ner/pos/chunk, else ner_tags
    document_column: str | None = MISSING  # null: documents from -DOCSTART- rows
    multiword_surface_column: str | None = MISSING  # `_` there: a multiword token's surface row
    spans_column: str | None = MISSING  # JSON lines: the field of each row's mentions (spans)
    span_fields: list[str] = MISSING  # a mention object's start, end (exclusive) and type fields
    span_columns: list[int] | None = MISSING  # CoNLL files with a tag column per nesting level
    split_names: dict[str, str | None] = MISSING  # our split -> the hub or saved dataset's
    validation_fraction: float = MISSING  # of train, held out where a dataset has no validation
    validation_seed: int = MISSING
    dir: str | None = MISSING  # local folder of the data; takes precedence over the hub
    format: str | None = MISSING  # FORMATS (bert_pos/data/formats.py); null: from file names
    train_file: str | None = MISSING  # null: no such split
    validation_file: str | None = MISSING
    test_file: str | None = MISSING
    demo_corpus: bool = MISSING  # generate the synthetic demo corpus into the run folder
    demo_sentences: dict[str, int] = MISSING  # split -> sentences
    label_strategy: str = MISSING  # LABEL_STRATEGIES
    max_train_sentences: int | None = MISSING  # a subset, for quick experiments
    max_eval_sentences: int | None = MISSING
    batch_size: int = MISSING
    group_by_length: bool = MISSING
    group_batches: int = 50  # with group_by_length: batches sorted by length together
    pad_to_multiple_of: int | None = MISSING
    context: str = MISSING  # CONTEXTS
    context_subwords: int = MISSING  # with context=document: subwords per example in all
    num_workers: int = MISSING
    cache_dir: str | None = MISSING  # tokenized splits are kept here; null = no cache


@dataclass
class ModelConfig:
    name_or_path: str | None = MISSING  # hub name or local folder of pretrained weights
    package: str | None = MISSING  # a Python package whose `model/` folder holds them
    random_init: dict[str, Any] | None = MISSING  # shape fields (+ model_type): random weights
    tokenizer: str | None = MISSING  # null: the model's own (or one built from the data)
    dropout: float = MISSING
    pooling: str = MISSING  # POOLINGS
    head: str = MISSING  # HEADS
    task_heads: Any = MISSING  # null, or with data.tasks: task -> its head (HEADS)
    decode: str = MISSING  # DECODINGS
    max_span_words: int = MISSING  # head=span: the longest span it scores, in words
    span_decode: str = MISSING  # SPAN_DECODINGS
    padding_free: bool | None = MISSING  # pack each batch's real tokens; null: where exact


@dataclass
class OptimConfig:
    lr: float = MISSING
    betas: list[float] = MISSING
    eps: float = MISSING
    weight_decay: float = MISSING
    warmup_ratio: float = MISSING
    warmup_steps: int = MISSING
    max_grad_norm: float | None = MISSING
    layer_decay: float | None = MISSING  # layer-wise lr decay: layer l of L gets lr x decay^(L-l)
    head_lr: float | None = MISSING  # the layers above the encoder; null: lr


@dataclass
class EvalConfig:
    batch_size: int = MISSING
    every_n_steps: int | None = MISSING
    level: str = MISSING  # EVAL_LEVELS
    mode: str = MISSING  # EVAL_MODES
    test_at_end: bool = MISSING
    select: str | None = MISSING  # the score selecting the best checkpoint; null: the first task's


@dataclass
class CheckpointConfig:
    every_n_steps: int | None = MISSING  # also between epoch ends; null = at epoch ends only
    keep_last: int = MISSING  # step checkpoints kept (best/ and last/ always stay)


@dataclass
class EarlyStoppingConfig:
    patience: int | None = MISSING  # evaluations without improvement before stopping
    min_delta: float = MISSING  # smallest gain of the selection metric that counts


@dataclass
class NonFiniteConfig:
    action: str = MISSING  # NONFINITE_ACTIONS
    max_skipped: int = MISSING  # with skip: stop once more steps than this were skipped


@dataclass
class MlflowConfig:
    tracking_uri: str = MISSING  # any MLflow tracking URI; the default is a local SQLite file


@dataclass
class WandbConfig:
    project: str = MISSING
    entity: str | None = MISSING
    mode: str | None = MISSING  # online | offline | disabled; null = WANDB_MODE, else online


@dataclass
class TrainConfig:
    experiment_name: str = MISSING
    seed: int = MISSING
    epochs: int = MISSING
    max_steps: int | None = MISSING
    grad_accum_steps: int = MISSING
    precision: str = MISSING  # PRECISIONS
    device: str = MISSING  # DEVICES
    log_every_n_steps: int = MISSING
    progress_every_s: float = MISSING  # log files: a progress line at least this often
    compile: bool = MISSING  # torch.compile the model for training steps
    compile_mode: str = MISSING  # COMPILE_MODES
    resume: str | None = MISSING  # null | auto | a run folder | a checkpoint folder
    loss_normalization: str = MISSING  # LOSS_NORMALIZATIONS
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    nonfinite: NonFiniteConfig = field(default_factory=NonFiniteConfig)
    loggers: list[str] = MISSING  # TRACKERS: where the curves go
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)


@dataclass
class ReferenceSideConfig:
    """How the bench runs the Hugging Face Trainer side; null = as bert_pos runs."""

    precision: str | None = None  # e.g. fp32: the Trainer's default, as the card's users run it
    eval_batch_size: int | None = None  # e.g. 8: the card's per_device_eval_batch_size


@dataclass
class BenchConfig(TrainConfig):
    trainer: ReferenceSideConfig = field(default_factory=ReferenceSideConfig)
    seeds: list[int] | None = None  # each side once per seed; null = [seed]
    targets: list[float] = field(default_factory=lambda: [0.5, 0.9, 0.98])  # shares of the
    # Trainer's final validation score (mean over seeds): time to reach each


MAX_FOLDER_NAME = 200  # characters; most file systems allow 255 bytes per name


def sweep_subdir(override_dirname: str, seed: int) -> str:
    """A multirun job's folder: its overrides, then always the seed, e.g.
    `optim.lr-3e-05+max_steps-60/seed-1` (train.yaml joins key and value with `-`, overrides
    with `+`).

    Anything a shell or a Hydra override (`run_dir=...`) would need quoted (`/` in a path, `=`,
    `,`, brackets, spaces) becomes `_`, so each job is exactly one folder level plus its seed,
    inside the sweep folder, and its path can be typed as it is. A name too long for a file
    system (Optuna's floats add up) keeps its first characters and ends in a hash of the whole.
    """
    name = SHELL_UNSAFE.sub("_", override_dirname)
    if len(name) > MAX_FOLDER_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:12]
        name = f"{name[: MAX_FOLDER_NAME - 13]}~{digest}"
    return f"{name}/seed-{seed}" if name else f"seed-{seed}"


def register_configs() -> None:
    # the training schema only; the bench registers its own (bench.py)
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
    if not OmegaConf.has_resolver("sweep_subdir"):
        OmegaConf.register_new_resolver("sweep_subdir", sweep_subdir)
    if not OmegaConf.has_resolver("run_dir_of"):
        OmegaConf.register_new_resolver("run_dir_of", run_dir_of)


WORD_HEADS = {"crf", "span"}  # heads that score words, not subwords

POSITIVE = [
    "model.max_span_words",
    "optim.lr",
    "epochs",
    "grad_accum_steps",
    "log_every_n_steps",
    "data.batch_size",
    "eval.batch_size",
    "checkpoint.keep_last",
    "data.context_subwords",
]
NON_NEGATIVE = [
    "progress_every_s",
    "optim.eps",
    "optim.weight_decay",
    "optim.warmup_ratio",
    "optim.warmup_steps",
    "data.num_workers",
    "early_stopping.min_delta",
    "nonfinite.max_skipped",
]
POSITIVE_OR_NULL = [
    "max_steps",
    "data.pad_to_multiple_of",
    "eval.every_n_steps",
    "data.max_train_sentences",
    "data.max_eval_sentences",
    "optim.max_grad_norm",
    "optim.head_lr",
    "checkpoint.every_n_steps",
    "early_stopping.patience",
]


class ConfigError(UserError, ValueError):
    """A config value out of range; the message names the key."""


def check_config(cfg: DictConfig, schema: type | None = None) -> None:
    """Known keys only (`schema`: TrainConfig, or the bench's), then range and choice checks;
    each failure names the config key."""
    check_known_keys(
        cfg, schema or TrainConfig, "bert_pos.train" if schema is None else "bert_pos.bench"
    )
    problems = []
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            problems.append(f"{key}={value!r}: expected one of {', '.join(allowed)}")
    for key in POSITIVE:
        if OmegaConf.select(cfg, key) <= 0:
            problems.append(f"{key}={OmegaConf.select(cfg, key)}: must be > 0")
    for key in NON_NEGATIVE:
        if OmegaConf.select(cfg, key) < 0:
            problems.append(f"{key}={OmegaConf.select(cfg, key)}: must be >= 0")
    for key in POSITIVE_OR_NULL:
        value = OmegaConf.select(cfg, key)
        if value is not None and value <= 0:
            problems.append(f"{key}={value}: must be > 0 or null")
    if cfg.optim.warmup_ratio > 1:
        problems.append(f"optim.warmup_ratio={cfg.optim.warmup_ratio}: must be within [0, 1]")
    if cfg.optim.warmup_ratio > 0 and cfg.optim.warmup_steps > 0:
        problems.append("optim.warmup_ratio and optim.warmup_steps are both set: choose one")
    if len(cfg.optim.betas) != 2 or not all(0 <= b < 1 for b in cfg.optim.betas):
        problems.append(f"optim.betas={list(cfg.optim.betas)}: expected two values in [0, 1)")
    if not 0 <= cfg.model.dropout < 1:
        problems.append(f"model.dropout={cfg.model.dropout}: must be within [0, 1)")
    sources = [cfg.model.name_or_path, cfg.model.package, cfg.model.random_init]
    if sum(source is not None for source in sources) != 1:
        problems.append(
            "model: set exactly one of model.name_or_path, model.package, model.random_init"
        )
    problems += data_problems(cfg.data)
    layer_decay = cfg.optim.layer_decay
    if layer_decay is not None and not 0 < layer_decay <= 1:
        problems.append(f"optim.layer_decay={layer_decay}: must be within (0, 1] or null")
    problems += task_problems(cfg)
    word_level = {
        "model.pooling": cfg.model.pooling != "first",
        "model.head": cfg.model.head in WORD_HEADS
        or bool(WORD_HEADS & set((cfg.model.task_heads or {}).values())),
    }
    for key, needs_first in word_level.items():
        if needs_first and cfg.data.label_strategy != "first":
            problems.append(
                f"{key}={OmegaConf.select(cfg, key)} works on words: it needs "
                "data.label_strategy=first"
            )
    problems += tracker_problems(list(cfg.loggers))
    if len(problems) == 1:
        raise ConfigError(f"invalid config: {problems[0]}")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def task_problems(cfg: DictConfig) -> list[str]:
    """Per-task settings name tasks of data.tasks and known heads; weights are >= 0."""
    names = list(cfg.data.tasks or [cfg.data.task])
    problems = []
    for key in ("data.task_columns", "data.task_weights", "model.task_heads"):
        unknown = sorted(set(OmegaConf.select(cfg, key) or {}) - set(names))
        if unknown:
            problems.append(f"{key}: {', '.join(unknown)} is not among the run's tasks {names}")
    for task, head in (cfg.model.task_heads or {}).items():
        if head not in HEADS:
            problems.append(f"model.task_heads.{task}={head!r}: expected one of {', '.join(HEADS)}")
    for task, weight in (cfg.data.task_weights or {}).items():
        if weight < 0:
            problems.append(f"data.task_weights.{task}={weight}: must be >= 0")
    return problems


def tracker_problems(loggers: list[str]) -> list[str]:
    """Known trackers, each once, and their packages installed (an optional extra each)."""
    problems = []
    unknown = [name for name in loggers if name not in TRACKERS]
    if unknown or len(set(loggers)) != len(loggers):
        problems.append(f"loggers={loggers}: expected distinct names of {', '.join(TRACKERS)}")
    for name in loggers:
        package = TRACKERS.get(name)
        if package and importlib.util.find_spec(package) is None:
            problems.append(
                f"loggers=[...,{name}]: the {package} package is not installed: "
                f'pip install "bert_pos[{name}]"'
            )
    return problems
