"""Device, precision and seeding, shared by training, evaluation and prediction."""

import random
from contextlib import nullcontext

import numpy as np
import torch


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


def autocast_for(device: torch.device, precision: str):
    """The mixed-precision context for forward passes; fp32 runs without autocast."""
    if precision == "fp32":
        return nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision=fp16 needs CUDA (on CPU use precision=bf16 or fp32)")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)
