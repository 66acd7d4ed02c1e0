"""One way to a trained tagger, for every command that uses one (evaluate, predict, export).

    trained = load_trained("experiments/runs/demo/<time>")                      # its export
    trained = load_trained("experiments/runs/demo/<time>", checkpoint="last")   # any checkpoint
    trained = load_trained("experiments/runs/demo/<time>/model")                # an export
    trained = load_trained("minilm-onnx")               # an ONNX folder (bert_pos.export)

A run folder writes the tagger's config (`checkpoints/config.json`) and its tokenizer when
training starts, so a run killed before its export can still be loaded at `best` or `last`.
Run folders from before that file existed are rebuilt from their training config.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoConfig, PreTrainedTokenizerFast

from bert_pos.data.pipeline import document_context_subwords
from bert_pos.inference.onnx_model import ONNX_FILE, is_onnx_folder, load_onnx
from bert_pos.modeling.encoders import load_tokenizer
from bert_pos.modeling.tagger import CONTEXT_KEY, Tagger, build_model, tagger_from_config
from bert_pos.runtime.errors import UserError
from bert_pos.runtime.paths import (
    BERT_POS_ONLY_FILE,
    MODEL_FILE,
    TAGGER_CONFIG,
    checkpoints_dir,
    weights_file,
)

log = logging.getLogger(__name__)
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


class TrainedModelError(UserError, ValueError):
    """A path that holds no trained model (or not the checkpoint asked for)."""


@dataclass
class Trained:
    model: Tagger  # in eval mode, on the CPU
    tokenizer: PreTrainedTokenizerFast
    label_names: list[str]
    weights: Path  # the safetensors file the weights came from
    step: int | None  # the optimizer step of those weights, where recorded
    run_config: DictConfig | None  # the training config, when loaded from a run folder

    @property
    def task_names(self) -> list[str | None]:
        """The tagger's tasks: a multi-task tagger names them; a one-task tagger's is its run's
        data.task (None from an export, which does not record it)."""
        names = self.model.task_names
        if names[0] is None and self.run_config is not None:
            return [self.run_config.data.task]
        return names

    @property
    def context_subwords(self) -> int | None:
        """The document context the tagger was trained with (subwords per example), from its
        run's config or its export's; None: it reads each sentence alone."""
        if self.run_config is not None:
            return document_context_subwords(run_data_config(self.run_config))
        return getattr(self.model.config, CONTEXT_KEY, None)


def load_trained(
    path: str | Path, checkpoint: str | None = None, decode: str | None = None
) -> Trained:
    """The tagger at `path`: an exported model folder (Hugging Face layout), or a run folder.

    From a run folder, `checkpoint=None` takes its export `model/` when there is one, else
    the `best` checkpoint; `best` or `last` take that checkpoint. `decode` overrides the
    model's decoding (`argmax` or `constrained`; it changes no weights).
    """
    path = Path(path)
    if is_onnx_folder(path):
        if checkpoint is not None:
            raise TrainedModelError(f"checkpoint={checkpoint}: {path} is an ONNX folder, not a run")
        model, label_names = load_onnx(path, decode)
        return Trained(model, load_tokenizer(path), label_names, path / ONNX_FILE, None, None)
    is_run = (path / ".hydra" / "config.yaml").is_file()
    if not is_run and (path / "config.json").is_file():
        if checkpoint is not None:
            raise TrainedModelError(f"checkpoint={checkpoint}: {path} is an export, not a run")
        return load_export(path, decode)
    if not is_run:
        raise TrainedModelError(
            f"{path}: neither an exported model folder (config.json) nor a run folder "
            "(.hydra/config.yaml)"
        )
    run_config = OmegaConf.load(path / ".hydra" / "config.yaml")
    if checkpoint is None and (path / "model" / "config.json").is_file():
        trained = load_export(path / "model", decode)
        trained.run_config = run_config
        return trained
    return load_checkpoint(path, checkpoint or "best", run_config, decode)


def load_export(model_dir: Path, decode: str | None) -> Trained:
    model, label_names = tagger_from_config(AutoConfig.from_pretrained(model_dir), decode=decode)
    weights = model_dir / MODEL_FILE
    if not weights.is_file():  # pooled taggers, which only bert_pos computes
        weights = model_dir / BERT_POS_ONLY_FILE
    model.load_state_dict(load_file(weights))
    tokenizer = load_tokenizer(model_dir)
    return Trained(model.eval(), tokenizer, label_names, weights, step_of(weights), None)


def load_checkpoint(
    run_dir: Path, checkpoint: str, run_config: DictConfig, decode: str | None
) -> Trained:
    weights = weights_file(run_dir, checkpoint)
    if not weights.is_file():
        raise TrainedModelError(f"checkpoint={checkpoint}: {weights} does not exist")
    tokenizer = load_tokenizer(run_dir / "tokenizer")
    saved_config = checkpoints_dir(run_dir) / TAGGER_CONFIG
    if saved_config.is_file():
        model, label_names = tagger_from_config(
            AutoConfig.from_pretrained(saved_config), decode=decode
        )
    else:
        model, label_names = rebuild_from_training_config(run_dir, run_config, tokenizer, decode)
    model.load_state_dict(load_file(weights))
    return Trained(model.eval(), tokenizer, label_names, weights, step_of(weights), run_config)


def rebuild_from_training_config(
    run_dir: Path, run_config: DictConfig, tokenizer, decode: str | None
) -> tuple[Tagger, list[str]]:
    """The tagger's shape from a run's training config (runs without checkpoints/config.json)."""
    from bert_pos.data.sources import resolve_label_names
    from bert_pos.runtime.hub import resolve_model_source

    model_config = run_config.model
    label_names = resolve_label_names(run_data_config(run_config), run_dir / "demo_corpus")
    random_init = model_config.random_init
    model = build_model(
        num_labels=len(label_names),
        dropout=model_config.dropout,
        pretrained_path=resolve_model_source(model_config),
        random_init=OmegaConf.to_container(random_init) if random_init else None,
        vocab_size=len(tokenizer),
        pretrained_weights=False,
        # options added after a run was made take their defaults
        pooling=OmegaConf.select(model_config, "pooling", default="first"),
        head=OmegaConf.select(model_config, "head", default="linear"),
        decode=decode or OmegaConf.select(model_config, "decode", default="argmax"),
        label_names=label_names,
    )
    return model, label_names


def run_data_config(run_config: DictConfig) -> DictConfig:
    """A run's data settings; keys added to bert_pos after the run was made take today's
    defaults."""
    defaults = OmegaConf.load(CONF_DIR / "data_common.yaml")
    return OmegaConf.merge(defaults, run_config.data)


def step_of(weights: Path) -> int | None:
    """The optimizer step recorded in a checkpoint's metadata (None for exports)."""
    with safe_open(str(weights), framework="pt") as handle:
        step = (handle.metadata() or {}).get("step")
    return int(step) if step is not None else None
