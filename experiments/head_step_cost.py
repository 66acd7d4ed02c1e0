"""What a head adds to a training step: the linear, CRF and span heads on the same batches.

    python experiments/head_step_cost.py experiment=baseline model=minilm \
        data.dir=../shared/data/conll2003 data.label_strategy=first optim.head_lr=5e-4 \
        data.max_train_sentences=2000 [steps=60]

One tagger per head, built as a run builds it (`setup`), each stepping through the same
training batches (the first `steps` of the run's own sampler) in turn, batch after batch, so
a busier machine slows them alike. Printed: ms per optimizer step of each, and its cost
against the linear head's.
"""

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bert_pos.config import register_configs  # noqa: E402

HEADS = ("linear", "crf", "span")


def main(overrides: list[str]) -> None:
    import torch
    from hydra import compose, initialize_config_dir

    from bert_pos.runtime.devices import cpu_description
    from bert_pos.runtime.signals import StopRequests
    from bert_pos.training.loop import train_step
    from bert_pos.training.setup import setup

    steps = next((int(o.split("=")[1]) for o in overrides if o.startswith("steps=")), 60)
    overrides = [o for o in overrides if not o.startswith("steps=")]
    register_configs()
    runs = {}
    for head in HEADS:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose(
                "train",
                overrides + [f"model.head={head}", "data.cache_dir=null", "eval.test_at_end=false"],
            )
        runs[head] = setup(cfg, Path(f"/tmp/bert_pos_head_step_cost/{head}"))
    batches = []
    loader = runs["linear"][0].loaders["train"]
    for batch in loader:  # the same batches for every head
        batches.append(batch)
        if len(batches) == steps + 3:  # 3 warm-up steps
            break
    stop = StopRequests()
    seconds = dict.fromkeys(HEADS, 0.0)
    for i, batch in enumerate(batches):
        for head, (run, state) in runs.items():
            run.model.train()
            started = time.perf_counter()
            train_step(run, state, [batch], stop)
            if i >= 3:
                seconds[head] += time.perf_counter() - started
    print(
        f"{steps} steps of batch {cfg.data.batch_size}, {cpu_description()}, "
        f"{torch.get_num_threads()} threads, {cfg.precision}"
    )
    print("| head | ms per step | against linear |\n|---|---|---|")
    for head in HEADS:
        print(
            f"| {head} | {1000 * seconds[head] / steps:.1f} | "
            f"{seconds[head] / seconds['linear'] - 1:+.1%} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
