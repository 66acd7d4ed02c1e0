"""Where a run keeps what it writes: the layout of a run folder, in one place.

    <run>/
      .hydra/config.yaml              the composed training config (Hydra)
      train.log, error.txt            the console log; why the run failed, if it did
      tokenizer/                      the tokenizer the run used
      tensorboard/                    curves, HParams, confusion matrices
      trackers.json                   the MLflow / W&B run ids, so a resumed run continues them
      checkpoints/config.json         the tagger's config (labels, shape, options), written at start
      checkpoints/{best,last}/model.safetensors
      checkpoints/step-NNNNNNN/       resumable: model.safetensors, training_state.pt, manifest.json
      eval/<split>/                   predictions.txt, metrics.json, confusion_matrix.png
      eval/<split>-<checkpoint>/      the same, written by `bert_pos.evaluate` (e.g. test-best)
      model/                          the Hugging Face export of the best checkpoint, with its card
      metrics.json                    per-evaluation rows, best, test, throughput

No heavy imports: the commands read these names before they import torch.
"""

import re
from pathlib import Path

FAILED_MARKER = "error.txt"  # written into a run folder when the run stops with an error
MODEL_FILE = "model.safetensors"
BERT_POS_ONLY_FILE = "bert_pos.safetensors"  # exports the Hugging Face classes cannot compute
STATE_FILE = "training_state.pt"
MANIFEST_FILE = "manifest.json"
STEP_PREFIX = "step-"
TAGGER_CONFIG = "config.json"  # Hugging Face config of the tagger, beside best/ and last/
TRACKERS_FILE = "trackers.json"
# What a shell or a Hydra override (`run_dir=...`) would need quoted; folder names we make
# replace it with `_`.
SHELL_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def weights_file(run_dir: Path, checkpoint: str) -> Path:
    """The weights of checkpoint `best` or `last` of a run."""
    return checkpoints_dir(run_dir) / checkpoint / MODEL_FILE


def step_checkpoint_dir(run_dir: Path, step: int) -> Path:
    return checkpoints_dir(run_dir) / f"{STEP_PREFIX}{step:07d}"


def is_step_checkpoint(path: Path) -> bool:
    return (path / MANIFEST_FILE).is_file() or (path / STATE_FILE).is_file()


def run_dir_of(resume: str | None, default: str) -> str:
    """Hydra resolver for `hydra.run.dir`: resuming a run folder (or a checkpoint inside one)
    continues in that folder; otherwise a new folder."""
    if resume is None or resume == "auto":
        return default
    path = Path(resume)
    if is_step_checkpoint(path):
        return str(path.parent.parent)  # <run>/checkpoints/step-N
    return str(path)
