"""Where a training step's time goes, from the model's floor up to bert_pos's whole step.

    python experiments/step_breakdown.py +experiment=baseline model=minilm data.dir=../shared/data/conll2003 \
        data.max_train_sentences=3000 [steps=40]

On the same training batches (the run's first `steps`, its own sampler and collator), each
variant below runs one step in turn, batch after batch, so a slower or busier machine slows
them alike. Printed: ms per step and real tokens/s of each, and its share of the floor.

  floor            the model's own forward, backward, fused AdamW step on unpadded batches of
                   the same tokens (bert_pos.training.floor's step)
  padded to 8      the same on the collator's batches padded to a multiple of 8
  padded (device)  ... padded to the device's multiple (1 on CPU)
  + clipping       ... with the recipe's gradient clipping (optim.max_grad_norm)
  loop step        bert_pos's whole `train_step` (loss and token counts, the non-finite check,
                   the scheduler) on the device's padding
  + data, logging  ... with the loader's collation and `log_step` (progress, TensorBoard)
"""

import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bert_pos.config import register_configs  # noqa: E402


def main(overrides: list[str]) -> None:
    from hydra import compose, initialize_config_dir
    from tqdm import tqdm

    from bert_pos.data.batching import PaddingCollator
    from bert_pos.runtime.devices import cpu_description, padding_multiple
    from bert_pos.runtime.signals import StopRequests
    from bert_pos.training.floor import bare_step, unpadded
    from bert_pos.training.loop import train_step
    from bert_pos.training.progress import log_step
    from bert_pos.training.setup import setup

    steps = next((int(o.split("=")[1]) for o in overrides if o.startswith("steps=")), 40)
    overrides = [o for o in overrides if not o.startswith("steps=")]
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides + ["data.cache_dir=null", "eval.test_at_end=false"])
    run_dir = Path("/tmp/bert_pos_step_breakdown")
    run, state = setup(cfg, run_dir)
    model, optimizer, device = run.model, run.optimizer, run.device
    loader = run.loaders["train"]
    examples = loader.dataset
    indices = loader.batch_sampler.batches()[: steps + 3]  # 3 warm-up batches
    pad_id = run.tokenizer.pad_token_id
    by_eight = [PaddingCollator(pad_id, 8)([examples[i] for i in batch]) for batch in indices]
    multiple = padding_multiple(cfg.data.pad_to_multiple_of, device)
    by_device = [
        PaddingCollator(pad_id, multiple)([examples[i] for i in batch]) for batch in indices
    ]
    floor_batches = []  # the same real tokens without padding, as the bench's floor lays them out
    for batch in by_device:
        real = batch["attention_mask"].bool()
        ids, labels = batch["input_ids"][real].tolist(), batch["labels"][real].tolist()
        floor_batches.append(unpadded(ids, labels, len(batch["input_ids"])))
    model.train()

    def bare(input_ids, attention_mask, labels, clip=False):
        bare_step(
            model,
            optimizer,
            run.autocast,
            input_ids,
            attention_mask,
            labels,
            cfg.optim.max_grad_norm if clip else None,
        )

    progress = tqdm(disable=True)
    stop = StopRequests()
    batches_of_loader = iter(loader)

    def whole(i):
        batch = next(batches_of_loader)  # the loader's own collation of the same batch
        log_step(run, state, train_step(run, state, [batch], stop), progress)

    variants = {
        "floor": lambda i: bare(
            floor_batches[i][0], torch.ones_like(floor_batches[i][0]), floor_batches[i][1]
        ),
        "padded to 8": lambda i: bare(
            by_eight[i]["input_ids"], by_eight[i]["attention_mask"], by_eight[i]["labels"]
        ),
        f"padded to {multiple} (device)": lambda i: bare(
            by_device[i]["input_ids"], by_device[i]["attention_mask"], by_device[i]["labels"]
        ),
        "+ clipping": lambda i: bare(
            by_device[i]["input_ids"],
            by_device[i]["attention_mask"],
            by_device[i]["labels"],
            clip=True,
        ),
        "loop step": lambda i: train_step(run, state, [by_device[i]], stop),
        "+ data, logging": whole,
    }
    seconds = dict.fromkeys(variants, 0.0)
    for i in range(len(indices)):
        for name, step in variants.items():
            started = time.perf_counter()
            step(i)
            if i >= 3:
                seconds[name] += time.perf_counter() - started
    real_tokens = sum(int(b["attention_mask"].sum()) for b in by_device[3:])
    floor_tokens = sum(ids.numel() for ids, _ in floor_batches[3:])
    positions = {
        8: sum(b["input_ids"].numel() for b in by_eight[3:]),
        multiple: sum(b["input_ids"].numel() for b in by_device[3:]),
    }
    print(
        f"{steps} steps of batch {cfg.data.batch_size} on {device} ({cpu_description()}), "
        f"{torch.get_num_threads()} threads, {run.cfg.precision}; real tokens {real_tokens}, "
        f"positions padded to 8: {positions[8]}, to {multiple}: {positions[multiple]}"
    )
    floor_rate = floor_tokens / seconds["floor"]
    print("| | ms per step | real tokens/s | share of the floor |\n|---|---|---|---|")
    for name, total in seconds.items():
        rate = (floor_tokens if name == "floor" else real_tokens) / total
        print(f"| {name} | {1000 * total / steps:.1f} | {rate:.0f} | {rate / floor_rate:.0%} |")


if __name__ == "__main__":
    main(sys.argv[1:])
