"""Evaluate a trained run on any split or CoNLL file, scored as the CoNLL shared task scores.

    python -m bert_pos.evaluate run_dir=experiments/runs/baseline/2026-11-28_04-29-00 split=test
    python -m bert_pos.evaluate run_dir=... split=validation checkpoint=last mode=strict
    python -m bert_pos.evaluate run_dir=... file=path/to/other.txt      # same columns as training
    python -m bert_pos.evaluate run_dir=... split=test decode=constrained  # Viterbi, IOB2-valid

The model, tokenizer, labels and data settings come from the run folder (its `.hydra/`
config). Writes into `<run_dir>/eval/<split or file name>/`: `predictions.txt`
(`word gold predicted`, conlleval's input format), `metrics.json` (overall and per type) and
`confusion_matrix.png`; prints the per-type table.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import datasets
import hydra
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from safetensors.torch import load_file
from transformers import AutoTokenizer

from bert_pos.conll import ConllFormatError
from bert_pos.data import build_dataloaders, load_splits, resolve_label_names, tokenize_splits
from bert_pos.evaluation import evaluate_split
from bert_pos.hub import resolve_model_source
from bert_pos.labels import begin_to_inside_map, is_span_label_set
from bert_pos.metrics import format_per_type_table
from bert_pos.model import build_model
from bert_pos.train import autocast_for, context_subwords_of, pick_device

log = logging.getLogger(__name__)
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@dataclass
class EvaluateConfig:
    run_dir: str = MISSING
    split: str = MISSING  # validation | test
    file: str | None = MISSING  # a CoNLL file to score instead of a split
    checkpoint: str = MISSING  # best | last
    mode: str = MISSING  # conlleval | strict
    level: str | None = MISSING  # word | subword; null = the run's eval.level
    decode: str | None = MISSING  # argmax | constrained; null = the run's model.decode
    batch_size: int = MISSING
    device: str = MISSING
    precision: str = MISSING


ConfigStore.instance().store(name="evaluate_schema", node=EvaluateConfig)


def evaluate_run(cfg: DictConfig) -> dict:
    """Score the run's `checkpoint` on `split` (or `file`); returns the scores."""
    run_dir = Path(cfg.run_dir)
    config_path = run_dir / ".hydra" / "config.yaml"
    if not config_path.is_file():
        raise ConllFormatError(
            f"run_dir={run_dir}: no .hydra/config.yaml, so not a bert_pos run folder"
        )
    checkpoint = run_dir / "checkpoints" / cfg.checkpoint / "model.safetensors"
    if not checkpoint.is_file():
        raise ConllFormatError(f"checkpoint={cfg.checkpoint}: {checkpoint} does not exist")
    trained = OmegaConf.load(config_path)
    # Data keys added after the run was made take today's defaults.
    data = OmegaConf.merge(OmegaConf.load(CONF_DIR / "data" / "conll2003.yaml"), trained.data)
    if cfg.file is not None:
        data.dir, data.test_file = str(Path(cfg.file).parent), Path(cfg.file).name
        data.train_file = data.validation_file = None
        data.demo_corpus = False
        split, name = "test", Path(cfg.file).stem
    else:
        split, name = cfg.split, cfg.split
        for other in {"train", "validation", "test"} - {split}:
            data[f"{other}_file"] = None

    trained_decode = OmegaConf.select(trained, "model.decode", default="argmax")
    decode = cfg.decode or trained_decode
    if decode != trained_decode:  # scored apart from the run's own decoding
        name = f"{name}_{decode}"
    device = pick_device(cfg.device)
    datasets.disable_progress_bars()
    label_names = resolve_label_names(data, run_dir / "demo_corpus")
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "tokenizer")
    model = build_model(
        num_labels=len(label_names), dropout=trained.model.dropout,
        pretrained_path=resolve_model_source(trained.model),
        random_init=OmegaConf.to_container(trained.model.random_init) if trained.model.random_init else None,
        vocab_size=len(tokenizer), pretrained_weights=False,
        # options added after a run was made take their defaults
        pooling=OmegaConf.select(trained, "model.pooling", default="first"),
        head=OmegaConf.select(trained, "model.head", default="linear"),
        decode=decode, label_names=label_names,
    )  # fmt: skip
    model.load_state_dict(load_file(checkpoint))
    model.to(device)

    splits = load_splits(data, label_names, run_dir / "demo_corpus")
    if split not in splits:
        raise ConllFormatError(f"split={split}: the run's data has no such split")
    splits = datasets.DatasetDict({split: splits[split]})
    max_length = min(tokenizer.model_max_length, model.config.max_position_embeddings)
    tokenized = tokenize_splits(
        splits,
        tokenizer,
        data.label_strategy,
        begin_to_inside_map(label_names),
        max_length,
        context_subwords_of(data),  # as the run was trained: sentences alone or in context
    )
    loader = build_dataloaders(
        tokenized, batch_size=cfg.batch_size, eval_batch_size=cfg.batch_size, group_by_length=False,
        pad_token_id=tokenizer.pad_token_id, pad_to_multiple_of=8, num_workers=0, seed=0,
        pin_memory=device.type == "cuda",
    )[split]  # fmt: skip
    scores, _ = evaluate_split(
        model, loader, splits[split], label_names, is_span_label_set(label_names),
        cfg.level or trained.eval.level, cfg.mode, device, autocast_for(device, cfg.precision),
        run_dir / "eval" / name, title=f"{name}, {cfg.checkpoint} checkpoint",
    )  # fmt: skip
    log.info(
        "%s (%s checkpoint, %s):\n%s", name, cfg.checkpoint, cfg.mode, format_per_type_table(scores)
    )
    log.info("wrote %s", run_dir / "eval" / name)
    return scores


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> float:
    try:
        scores = evaluate_run(cfg)
    except ConllFormatError as err:
        log.error("%s", err)
        raise SystemExit(1) from None
    return scores.get("f1", scores["accuracy"])


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
