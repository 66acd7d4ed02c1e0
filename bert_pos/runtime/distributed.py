"""Data-parallel training across processes with `torch.distributed` (DDP).

    torchrun --nproc_per_node=2 -m bert_pos.train +experiment=baseline   # 2 GPUs (or CPU processes)

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; a job of several
tasks started by the submitit launcher (a SLURM job, or its local executor) gets them from
submitit. Without them the run is a single process and every helper here is a no-op, so the
training loop reads the same either way.
GPUs communicate with NCCL, CPU processes with gloo.
"""

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from bert_pos.runtime.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Distributed:
    rank: int = 0  # this process among all processes
    world_size: int = 1
    local_rank: int = 0  # this process on its node: which GPU it drives

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes logs, TensorBoard, checkpoints, the export and metrics."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def environment_from_launcher() -> None:
    """A multi-task job started by the submitit launcher (on SLURM, or its local executor)
    has submitit's variables, not torchrun's: derive torchrun's (the first node's host as
    the master) from them."""
    if "RANK" in os.environ or os.environ.get("SUBMITIT_EXECUTOR") not in ("slurm", "local"):
        return
    from submitit import JobEnvironment
    from submitit.helpers import TorchDistributedEnvironment

    if JobEnvironment().num_tasks > 1:
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def setup(device_kind: str) -> Distributed:
    """Join the process group when launched by torchrun (or submitit); else a single process.

    `device_kind` is the config's device: cuda (or auto with GPUs) uses NCCL and this
    process's GPU, cpu uses gloo.
    """
    environment_from_launcher()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    context = Distributed(int(os.environ["RANK"]), world_size, int(os.environ["LOCAL_RANK"]))
    if not dist.is_initialized():
        use_cuda = device_kind != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(context.local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return context


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def sum_over_ranks(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums across ranks (float64, so token counts stay exact)."""
    if not is_distributed():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def gather_lists(items: list) -> list:
    """Every rank's `items` concatenated in rank order, on every rank (picklable items)."""
    if not is_distributed():
        return items
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, items)
    return [item for part in gathered for item in part]


def broadcast(value, source: int = 0):
    """Rank `source`'s `value` on every rank (any picklable object)."""
    if not is_distributed():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=source)
    return holder[0]


def barrier() -> None:
    if is_distributed():
        dist.barrier()


class PeerFailed(UserError, RuntimeError):
    """Another process failed in a block all must pass; its own error file says why."""


def all_succeeded(succeeded: bool) -> bool:
    """Whether every rank succeeded: a collective every rank must reach, in place of a barrier,
    so a rank that failed releases the others instead of leaving them waiting (under a
    cluster's launcher, until the job's time limit)."""
    if not is_distributed():
        return succeeded
    device = (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend() == "nccl"
        else torch.device("cpu")
    )
    flag = torch.tensor([int(succeeded)], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


@contextmanager
def together(what: str):
    """A block every rank enters and leaves together: if it raises on one rank, the others
    raise PeerFailed at its end instead of waiting for that rank."""
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        if not all_succeeded(succeeded) and succeeded:
            raise PeerFailed(f"another process failed while {what}; see its error file")


@contextmanager
def main_first(what: str = "preparing the data"):
    """Rank 0 runs the block first (downloads, cache and tokenizer files), the others after
    it, reading what it wrote instead of writing the same files at the same time. If rank 0
    fails in it, the others stop too (PeerFailed) instead of waiting."""
    rank = dist.get_rank() if is_distributed() else 0
    if rank != 0:
        if not all_succeeded(True):
            raise PeerFailed(f"rank 0 failed while {what}; see its error.txt")
        yield
        return
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        all_succeeded(succeeded)
