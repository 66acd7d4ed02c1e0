"""Device, precision and seeding, shared by training, evaluation and prediction."""

import logging
import os
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


# oneDNN runs CPU matmuls; capped below AVX512_CORE_BF16 (ONEDNN_MAX_CPU_ISA) it emulates bf16
# even on a CPU that has the instructions: measured 2.5x (AVX512_CORE) to 30x (AVX2) slower.
ONEDNN_ISAS_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI")


def onednn_isa_cap() -> str | None:
    """The instruction-set cap given to oneDNN by environment variable, if any."""
    value = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return value.strip().upper() if value else None


def cpu_runs_bf16_natively(flags: set[str] | None = None, onednn_cap: str | None = None) -> bool:
    """AVX512-BF16 or AMX, not capped away: without them CPU bf16 autocast is emulated, 10-40x
    slower than fp32. `onednn_cap` defaults to the environment's."""
    flags = cpu_flags() if flags is None else flags
    onednn_cap = onednn_isa_cap() if onednn_cap is None else onednn_cap
    return bool({"avx512_bf16", "amx_bf16"} & flags) and onednn_cap not in ONEDNN_ISAS_WITHOUT_BF16


def cpu_description(flags: set[str] | None = None) -> str:
    """What decides CPU speed: the kernels' instruction set and native bf16, e.g.
    `AVX512, AVX512-BF16`, `AVX2, no native bf16` or `AVX2, AVX512-BF16 unused: oneDNN capped at AVX2`."""
    flags = cpu_flags() if flags is None else flags
    native = [
        name
        for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"))
        if flag in flags
    ]
    bf16 = " and ".join(native) if native else "no native bf16"
    if native and not cpu_runs_bf16_natively(flags):
        bf16 += f" unused: oneDNN capped at {onednn_isa_cap()}"
    return f"{torch.backends.cpu.get_cpu_capability()}, {bf16}"


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
            "there, 10-40x slower than fp32; use precision=fp32 (or precision=auto)",
            cpu_description(flags),
        )
    return precision


def padding_multiple(configured: int | None, device: torch.device) -> int:
    """`data.pad_to_multiple_of`, or where it is null the device's: 8 on CUDA, where tensor
    cores want lengths in multiples of 8, 1 on CPU, where every padding position is extra work
    (a multiple of 8 cost MiniLM 7-9% of its training throughput at the card's batch of 8)."""
    if configured is not None:
        return configured
    return 8 if device.type == "cuda" else 1


def autocast_for(device: torch.device, precision: str):
    """The mixed-precision context for forward passes (`precision` as `resolve_precision`
    gives it); fp32 runs without autocast."""
    if precision == "fp32":
        return nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision=fp16 needs CUDA (on CPU use precision=bf16 or fp32)")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)
