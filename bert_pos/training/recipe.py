"""The training recipe, written out: build everything, run the loop, finish.

    run, state = setup(cfg, run_dir)   # data, tokenizer, model, optimizer, trackers, resume
    train_loop(run, state)             # optimizer steps, evaluations, checkpoints, stops
    metrics = finish(run, state)       # summary, test on the best checkpoint, export

The path of one batch: data/sources.py reads sentences, data/encoding.py turns them into
subword examples, data/batching.py pads a batch of them; `train_step` (loop.py) runs forward
and loss (modeling/tagger.py) over the micro-batches of one optimizer step, backward, clipping
and the step; `evaluate_and_select` scores validation (scoring/scorer.py) and keeps the best
weights; `save_resumable` writes a checkpoint (resume.py); `finish` exports
(inference/export.py).
"""

from pathlib import Path

from omegaconf import DictConfig

from bert_pos.training.finish import finish
from bert_pos.training.loop import train_loop
from bert_pos.training.setup import setup


def run_recipe(cfg: DictConfig, run_dir: Path) -> dict:
    """Train as `cfg` (already checked) says, writing into `run_dir`; returns metrics.json."""
    run, state = setup(cfg, run_dir)
    try:
        train_loop(run, state)
        return finish(run, state)
    except BaseException:
        run.trackers.close(failed=True)  # MLflow and W&B mark the run failed, not running
        raise
