"""What the training loop carries: the state a checkpoint holds (`LoopState`),
everything built once (`Run`), and one step's result.
"""

import logging
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import datasets
import torch
from omegaconf import DictConfig

from bert_pos.data.tasks import Task
from bert_pos.runtime import distributed
from bert_pos.runtime.checkpoint import CheckpointError

log = logging.getLogger(__name__)


@dataclass
class Best:
    value: float = -math.inf  # the best validation score so far (the selection metric)
    epoch: float | None = None
    step: int | None = None


@dataclass
class LoopState:
    """Where the loop is. Stored in checkpoints as a plain dict (`to_dict`), which
    `torch.load(weights_only=True)` reads back."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # the epoch in progress
    step_in_epoch: int = 0  # optimizer steps done in it (its first step_in_epoch x accum batches)
    epoch_loss_sum: float = 0.0  # for the epoch's mean training loss
    epoch_labelled: int = 0
    best: Best = field(default_factory=Best)
    evaluations_without_gain: int = 0  # for early stopping
    skipped_steps: int = 0  # non-finite steps skipped (nonfinite.action=skip)
    epoch_rows: list[dict] = field(default_factory=list)  # one row per evaluation
    train_seconds: float = 0.0  # optimizer steps only, batch collation included
    train_tokens: int = 0  # real (non-padding) tokens
    eval_seconds: float = 0.0
    eval_tokens: int = 0
    stop_reason: str | None = None  # early stopping

    def epoch_position(self, steps_per_epoch: int) -> float:
        """Epochs done, as a fraction (1.5: halfway through the second)."""
        return self.epoch + self.step_in_epoch / steps_per_epoch

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, saved: dict, checkpoint: Path) -> "LoopState":
        """The state of a checkpoint; one written by an incompatible bert_pos is refused."""
        names = {f.name for f in fields(cls)}
        missing = names - {"stop_reason"} - saved.keys()  # stop_reason came later: optional
        if missing or saved.keys() - names:
            raise CheckpointError(
                f"{checkpoint}: its loop state has the keys {sorted(saved)}, this bert_pos "
                f"expects {sorted(names)}; resume it with the bert_pos that wrote it, or start "
                "a new run"
            )
        return cls(**{**saved, "best": Best(**saved["best"])})


@dataclass
class Run:
    """Everything `setup` builds once and the loop reads."""

    cfg: DictConfig
    run_dir: Path
    ddp: distributed.Distributed
    device: torch.device
    autocast: object  # the forward passes' mixed-precision context
    tasks: list[Task]  # every tag layer it learns (data.tasks): labels, metric, what is compared
    task_weights: list[float]  # each task's weight in the summed loss
    select: str  # the validation score that selects the best checkpoint (eval.select)
    splits: datasets.DatasetDict  # sentences
    tokenizer: object
    model: torch.nn.Module  # the tagger; evaluation and checkpoints use it
    step_model: torch.nn.Module  # what training steps call: the tagger, under DDP / compile
    loaders: dict
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    accum: int  # micro-batches per optimizer step
    steps_per_epoch: int
    total_steps: int
    loss_divisor: float | None  # loss_normalization=average: fixed; None: per window
    trackers: object  # trackers.Trackers: TensorBoard and the other `loggers`
    started: float  # perf_counter at the start of setup
    mean_train_length: float
    validation_tokens: int  # real tokens of one pass over validation, for eval tokens/s
    validation_golds: list  # per task: every word's gold label, per validation sentence
    validation_mentions: list | None  # span data: every validation sentence's gold mentions
    first_step_seconds: float | None = None  # from the start of setup to the end of step 1
    loop_seconds: float = 0.0  # steps, evaluations, checkpoints
    first_step: int = 0  # the step this process started from (resumed runs: the checkpoint's)
    last_progress_line: float = 0.0  # perf_counter of the last progress line in the log
    # per task: (surface, type) of its training entities, for error reports (None: no spans)
    seen_entities: list = field(default_factory=list)
    # split -> (CoNLL-U file, each task's predicted column)
    conllu_sources: dict = field(default_factory=dict)
    loop_started: float = 0.0  # perf_counter when this process's training loop began
    loop_eval_seconds: float = 0.0  # evaluations since then (resumed runs: this session's)
    # Validation score against training time, evaluations excluded (this session's clock):
    # [{"step", "train_seconds", "score"}], for time to accuracy (bert_pos.bench).
    curve: list[dict] = field(default_factory=list)
    # The latest validation evaluation (step, scores, predicted tags): its details (predictions,
    # bootstrap interval, error tables, confusion matrix) are written once, when the loop ends.
    last_validation: tuple | None = None

    @property
    def task(self) -> Task:
        """The run's first task (its only one, unless data.tasks lists several)."""
        return self.tasks[0]


@dataclass
class StepResult:
    loss: float  # mean over the window's labelled tokens
    grad_norm: float
    tokens: int  # real tokens of the window, over all processes
    seconds: float
    stop_signal: str | None  # SIGTERM / SIGINT received by any process
