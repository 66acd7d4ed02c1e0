"""Checkpoints that resume a run exactly, written so that a crash never leaves a bad one.

A training checkpoint is a folder `checkpoints/step-0001234/` holding

    model.safetensors     the weights (no pickle)
    training_state.pt     optimizer, scheduler, GradScaler, loop position, RNG states, the best
                          score so far, the per-epoch rows: tensors and plain Python values only,
                          read back with `torch.load(weights_only=True)`
    manifest.json         size and SHA-256 of both files, written last

The folder is written under a temporary name, every file is fsync'ed, then it is renamed into
place and the parent folder is fsync'ed: a checkpoint either exists whole or not at all. On
reading, the manifest is checked first, so a file damaged later (a full disk, a copy cut short)
is reported instead of loaded.
"""

import hashlib
import json
import logging
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from bert_pos.runtime.errors import UserError
from bert_pos.runtime.paths import (
    MANIFEST_FILE,
    MODEL_FILE,
    STATE_FILE,
    STEP_PREFIX,
    checkpoints_dir,
    is_step_checkpoint,
)

log = logging.getLogger(__name__)


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that is missing, incomplete or damaged; the message names it."""


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_weights(model: torch.nn.Module, path: Path, **metadata) -> None:
    """The model's weights as safetensors at `path`, atomically (temporary file, fsync,
    rename): readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    save_file(state, partial, metadata={key: str(value) for key, value in metadata.items()})
    _fsync(partial)
    os.replace(partial, path)
    _fsync(path.parent)


# ---------------------------------------------------------------- random number generators


def rng_state() -> dict:
    """Every RNG the loop draws from (dropout, shuffling), as tensors and plain values."""
    numpy_kind, numpy_keys, numpy_position, numpy_has_gauss, numpy_gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [
            numpy_kind,
            torch.from_numpy(numpy_keys.astype(np.int64)),
            numpy_position,
            numpy_has_gauss,
            numpy_gauss,
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, gauss_value = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss_value))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------- training checkpoints


def save_training_checkpoint(directory: Path, model: torch.nn.Module, state: dict) -> Path:
    """Write `model` and the loop `state` into `directory` atomically; returns `directory`."""
    partial = directory.with_name(f".{directory.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    weights = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(weights, partial / MODEL_FILE)
    torch.save(state, partial / STATE_FILE)
    manifest = {
        name: {"bytes": (partial / name).stat().st_size, "sha256": _sha256(partial / name)}
        for name in (MODEL_FILE, STATE_FILE)
    }
    (partial / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    for name in (MODEL_FILE, STATE_FILE, MANIFEST_FILE):
        _fsync(partial / name)
    _fsync(partial)
    if directory.exists():  # a rerun of the same step after a resume: replace it
        shutil.rmtree(directory)
    os.replace(partial, directory)
    _fsync(directory.parent)
    return directory


def verify_checkpoint(directory: Path) -> None:
    """Raise CheckpointError unless every file matches the manifest written with it."""
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise CheckpointError(f"{directory}: no {MANIFEST_FILE}, so the checkpoint is incomplete")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{manifest_path}: not valid JSON ({err})") from None
    for name, expected in manifest.items():
        path = directory / name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing")
        if path.stat().st_size != expected["bytes"]:
            raise CheckpointError(
                f"{path}: {path.stat().st_size} bytes, the manifest says {expected['bytes']}"
            )
        if _sha256(path) != expected["sha256"]:
            raise CheckpointError(f"{path}: SHA-256 differs from the manifest (damaged file)")


def load_training_checkpoint(directory: Path, model: torch.nn.Module) -> dict:
    """Verify `directory`, load its weights into `model`, return the loop state."""
    verify_checkpoint(directory)
    model.load_state_dict(load_file(directory / MODEL_FILE))
    return torch.load(directory / STATE_FILE, weights_only=True)


def step_checkpoints(run_dir: Path) -> list[Path]:
    """The run's step checkpoints, oldest first (temporary folders excluded)."""
    folder = checkpoints_dir(run_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{STEP_PREFIX}*") if p.is_dir())


def latest_good_checkpoint(run_dir: Path) -> Path | None:
    """The newest step checkpoint that verifies; damaged ones are reported and passed over."""
    for directory in reversed(step_checkpoints(run_dir)):
        try:
            verify_checkpoint(directory)
            return directory
        except CheckpointError as err:
            log.warning("skipping a damaged checkpoint: %s", err)
    return None


def prune_checkpoints(run_dir: Path, keep_last: int) -> None:
    """Delete all but the newest `keep_last` step checkpoints (best/ and last/ stay)."""
    for directory in step_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(directory)


def resolve_resume(resume: str | None, run_dir: Path) -> Path | None:
    """The checkpoint folder that `resume` (null | auto | a run folder | a checkpoint folder)
    points at; None to start afresh. `auto` is the latest good checkpoint of `run_dir`, or
    nothing when it has none yet (a first start of a job that may be requeued)."""
    if resume is None:
        return None
    if resume == "auto":
        return latest_good_checkpoint(run_dir)
    path = Path(resume)
    if is_step_checkpoint(path):
        return path
    if path.is_dir():
        found = latest_good_checkpoint(path)
        if found is None:
            raise CheckpointError(f"resume={resume}: no good checkpoint under {path}/checkpoints")
        return found
    raise CheckpointError(f"resume={resume}: no such run folder or checkpoint")
