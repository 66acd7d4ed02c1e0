"""Evaluate a trained run on any split or CoNLL file, scored as the CoNLL shared task scores.

    python -m bert_pos.evaluate run_dir=experiments/runs/baseline/2026-11-28_04-29-00 split=test
    python -m bert_pos.evaluate run_dir=... split=validation checkpoint=last mode=strict
    python -m bert_pos.evaluate run_dir=... file=path/to/other.txt      # same columns as training
    python -m bert_pos.evaluate run_dir=... split=test decode=constrained  # Viterbi, IOB2-valid
    python -m bert_pos.evaluate run_dir=... model_dir=minilm-onnx   # the run's data, that model

The model, tokenizer, labels and data settings come from the run folder (its `.hydra/`
config; the model through `bert_pos.inference.loading.load_trained`, so a run killed before its export
evaluates too). Writes into `<run_dir>/eval/<split or file name>/`: `predictions.txt`
(`word gold predicted`, conlleval's input format), `metrics.json` (overall and per type) and
`confusion_matrix.png`; prints the per-type table. The work is done by
`bert_pos.inference.evaluate_run`.
"""

import logging
from dataclasses import dataclass

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from bert_pos.cli import command, run_command

log = logging.getLogger(__name__)


@dataclass
class EvaluateConfig:
    run_dir: str = MISSING
    split: str = MISSING  # validation | test
    file: str | None = MISSING  # a CoNLL file to score instead of a split
    checkpoint: str = MISSING  # best | last
    model_dir: str | None = MISSING  # a model folder to score instead (an export, ONNX)
    mode: str = MISSING  # conlleval | strict
    level: str | None = MISSING  # word | subword; null = the run's eval.level
    decode: str | None = MISSING  # argmax | constrained; null = the run's model.decode
    batch_size: int = MISSING
    device: str = MISSING
    precision: str = MISSING


ConfigStore.instance().store(name="evaluate_schema", node=EvaluateConfig)


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
@command("bert_pos.evaluate", EvaluateConfig)
def main(cfg: DictConfig) -> float:
    from bert_pos.inference.evaluate_run import evaluate_run  # torch and co.: only now

    scores = evaluate_run(cfg)
    # several tasks: the first task's score (their keys come first, after the summed loss)
    task = next((key.split("/")[0] + "/" for key in scores if "/" in key), "")
    return scores.get(f"{task}f1", scores.get(f"{task}accuracy"))


if __name__ == "__main__":
    run_command(main)
