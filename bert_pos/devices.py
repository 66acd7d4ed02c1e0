"""Device, precision and seeding, shared by training, evaluation and prediction."""

import logging
import random
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too


def pick_device(device: str, local_rank: int = 0) -> torch.device:
    """The config's device; a data-parallel process on GPUs takes GPU `local_rank`."""
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but no CUDA device is available; use device=auto or cpu")
    if device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank)


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def cpu_runs_bf16_natively(flags: set[str] | None = None) -> bool:
    """AVX512-BF16 or AMX: without them CPU bf16 autocast is emulated, 20-40x slower than fp32."""
    flags = cpu_flags() if flags is None else flags
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def resolve_precision(precision: str, device: torch.device, flags: set[str] | None = None) -> str:
    """`auto`: bf16 where the device runs it natively, fp16 (with loss scaling) on GPUs without
    bf16, else fp32. bf16 asked for on a CPU that would emulate it runs, with a warning."""
    if device.type == "cuda":
        if precision == "auto":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return precision
    native = cpu_runs_bf16_natively(flags)
    if precision == "auto":
        return "bf16" if native else "fp32"
    if precision == "bf16" and not native:
        log.warning(
            "precision=bf16 on a CPU without AVX512-BF16 or AMX (this one: %s): bf16 is emulated "
            "there, 20-40x slower than fp32; use precision=fp32 (or precision=auto)",
            torch.backends.cpu.get_cpu_capability(),
        )
    return precision


def autocast_for(device: torch.device, precision: str):
    """The mixed-precision context for forward passes (`precision` as `resolve_precision`
    gives it); fp32 runs without autocast."""
    if precision == "fp32":
        return nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision=fp16 needs CUDA (on CPU use precision=bf16 or fp32)")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)
