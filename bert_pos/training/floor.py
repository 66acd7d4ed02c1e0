"""The model's floor: what no training loop can beat.

bert_pos's own model and optimizer, stepping on unpadded batches of the run's own training
tokens built before the clock starts: forward, loss, backward and the optimizer step, nothing
else. `bert_pos.bench` reports each side's throughput as a share of it.
"""

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from bert_pos.training.setup import setup

# The floor: steps of the run's batches, one untimed pass over them (each batch shape's kernels
# are set up once), then timed passes; the fastest counts. Measured on a 2-core CPU, three
# identical passes after 5 warm-up steps took 8.4, 7.9 and 6.8 s.
FLOOR_STEPS, FLOOR_PASSES = 60, 3


def run_floor(cfg: DictConfig, out_dir: Path) -> dict:
    """What the model itself can do: forward + backward + the optimizer step of bert_pos's own
    model and optimizer, on batches built before timing starts, with no padding, no data
    loading, no clipping, no logging; the fastest of FLOOR_PASSES passes over the same steps.
    Each floor batch holds the real tokens of one of the run's training batches (same batch
    size, same tokens), laid out as `batch size` equal rows: the run's own length distribution
    without a single padding position. Loss: cross-entropy over every token (the linear head's;
    a CRF's likelihood is not part of the floor). The model runs eager: a compiled run
    (compile=true) can pass 100% of it."""
    run, _ = setup(cfg, out_dir)
    sampler = run.loaders["train"].batch_sampler
    examples = run.loaders["train"].dataset
    # Spread evenly over the batches the run trains on (its first epoch's, up to max_steps), so
    # the floor sees the run's own mix of short and long batches.
    run_batches = sampler.batches()[: run_steps(cfg, len(sampler))]
    batches = []
    for indices in (run_batches[i * len(run_batches) // FLOOR_STEPS] for i in range(FLOOR_STEPS)):
        ids = [token for index in indices for token in examples[index]["input_ids"]]
        labels = [label for index in indices for label in examples[index]["labels"]]
        batches.append([tensor.to(run.device) for tensor in unpadded(ids, labels, len(indices))])
    model, optimizer = run.model, run.optimizer  # the eager model: no DDP, no compile
    model.train()

    def step(input_ids, labels):
        bare_step(model, optimizer, run.autocast, input_ids, torch.ones_like(input_ids), labels)

    synchronize = torch.cuda.synchronize if run.device.type == "cuda" else lambda: None
    passes = []  # the fastest pass: other work on the machine only ever slows a pass down
    for _ in range(1 + FLOOR_PASSES):  # the first is the warm-up
        synchronize()
        started = time.perf_counter()
        for input_ids, labels in batches:
            step(input_ids, labels)
        synchronize()
        passes.append(time.perf_counter() - started)
    passes = passes[1:]
    seconds = min(passes)
    tokens = sum(input_ids.numel() for input_ids, _ in batches)
    return {
        "train_tokens_per_s": tokens / seconds,
        "train_seconds": seconds,
        "steps": len(batches),
        "pass_seconds": passes,
        "mean_train_length": tokens / sum(len(input_ids) for input_ids, _ in batches),
    }


def unpadded(token_ids: list[int], labels: list[int], rows: int):
    """A batch's real tokens and their labels, one sentence after another, as `rows` equal rows
    without padding (the last fewer than `rows` tokens left out): (rows, length) tensors."""
    length = len(token_ids) // rows
    shape = (rows, length)
    return (
        torch.tensor(token_ids[: rows * length]).view(shape),
        torch.tensor(labels[: rows * length]).view(shape),
    )


def bare_step(
    model,
    optimizer,
    autocast,
    input_ids,
    attention_mask,
    labels,
    max_grad_norm: float | None = None,
) -> None:
    """The floor's optimizer step: forward, cross-entropy over the labelled tokens, backward,
    (the recipe's gradient clipping,) the optimizer step. Nothing else of the training loop."""
    with autocast:
        logits = model(input_ids, attention_mask)
    loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), reduction="sum")
    (loss / max(int((labels >= 0).sum()), 1)).backward()
    if max_grad_norm:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def run_steps(cfg: DictConfig, batches_per_epoch: int) -> int:
    """Micro-batches the run trains on in its first epoch (all of it, or up to max_steps)."""
    steps = batches_per_epoch
    if cfg.max_steps is not None:
        steps = min(steps, cfg.max_steps * cfg.grad_accum_steps)
    return steps
