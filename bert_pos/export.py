"""Export a trained tagger for inference outside training: ONNX, optionally int8.

    python -m bert_pos.export run_dir=experiments/runs/baseline/<time> format=onnx output=minilm-onnx
    python -m bert_pos.export run_dir=... format=onnx quantize=int8 output=minilm-onnx-int8

`run_dir` is a run folder (its export `model/`, or `checkpoint=best|last`) or an exported
model folder. The output folder runs with `python -m bert_pos.predict model_dir=<output>` and
`python -m bert_pos.evaluate run_dir=<run> model_dir=<output>` through ONNX Runtime (the
optional extra `bert_pos[onnx]`); see bert_pos/inference/onnx_model.py for what is in the
graph and what is decoded outside it, exactly as in PyTorch. A run's Hugging Face export is
its `model/` folder, written when training ends.
"""

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from bert_pos.cli import command, run_command
from bert_pos.runtime.errors import UserError

log = logging.getLogger(__name__)
FORMATS = ("onnx",)
QUANTIZE = ("none", "int8")


@dataclass
class ExportConfig:
    run_dir: str = MISSING  # a run folder, or an exported model folder
    checkpoint: str | None = MISSING  # null: the run's export (else best) | best | last
    format: str = MISSING  # onnx
    quantize: str = MISSING  # none | int8 (dynamic quantization of the weights)
    output: str = MISSING  # the folder to write


ConfigStore.instance().store(name="export_schema", node=ExportConfig)


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
@command("bert_pos.export", ExportConfig)
def main(cfg: DictConfig) -> str:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    for key, allowed in (("format", FORMATS), ("quantize", QUANTIZE)):
        if cfg[key] not in allowed:
            raise UserError(f"{key}={cfg[key]}: expected one of {', '.join(allowed)}")
    if not Path(cfg.run_dir).is_dir():
        raise UserError(f"run_dir={cfg.run_dir}: no such folder (a run or its model/)")
    from bert_pos.inference.loading import load_trained  # torch and co.: only now
    from bert_pos.inference.onnx_model import export_onnx, require_onnx

    require_onnx()
    trained = load_trained(cfg.run_dir, checkpoint=cfg.checkpoint)
    written = export_onnx(trained, Path(cfg.output), cfg.quantize)
    log.info("wrote %s (ONNX, quantize=%s)", written, cfg.quantize)
    return str(written)


if __name__ == "__main__":
    run_command(main)
