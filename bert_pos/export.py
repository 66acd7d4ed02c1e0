"""Export a trained tagger in the Hugging Face layout, with a model card.

`<run>/model/` holds config.json (with id2label/label2id), model.safetensors, the tokenizer
files and README.md, so `AutoModelForTokenClassification.from_pretrained(<run>/model)` and
`pipeline("token-classification", model=<run>/model)` load it as they load any hub model.
"""

import copy
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from omegaconf import DictConfig
from safetensors.torch import save_file

from bert_pos.metrics import format_results_table


def export_model(model: torch.nn.Module, tokenizer, label_names: list[str], directory: Path,
                 card: str) -> Path:  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    config = copy.deepcopy(model.bert.config)
    config.architectures = ["BertForTokenClassification"]
    config.id2label = dict(enumerate(label_names))
    config.label2id = {label: i for i, label in enumerate(label_names)}
    config.classifier_dropout = model.dropout.p
    options = {"pooling": model.pooling, "head": model.head, "decode": model.decoding}
    if options != {"pooling": "first", "head": "linear", "decode": "argmax"}:
        # Read back by bert_pos.model.load_tagger; Hugging Face's class would ignore the CRF,
        # the pooling and the decoding, so this export runs with bert_pos only.
        config.bert_pos = options
        config.architectures = ["BertTagger (bert_pos)"]
    config.save_pretrained(directory)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, directory / "model.safetensors", metadata={"format": "pt"})
    tokenizer.save_pretrained(directory)
    (directory / "README.md").write_text(card)
    return directory


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def model_card(cfg: DictConfig, metrics: dict, base_model: str) -> str:
    """A model card in the layout of the Hugging Face Trainer's cards (the reference card's)."""
    best = next(row for row in metrics["epochs"] if row["step"] == metrics["best"]["step"])
    score_names = [("loss", "Loss"), ("precision", "Precision"), ("recall", "Recall"),
                   ("f1", "F1"), ("accuracy", "Accuracy")]  # fmt: skip
    validation = [
        f"- {title}: {best[f'val/{key}']:.4f}" for key, title in score_names if f"val/{key}" in best
    ]
    data = (
        "CoNLL-2003" if cfg.data.dir is None or "conll2003" in str(cfg.data.dir) else cfg.data.dir
    )
    if cfg.data.demo_corpus:
        data = "the synthetic bert_pos demo corpus"
    accum = cfg.grad_accum_steps
    hyperparameters = [
        f"learning_rate: {cfg.optim.lr:g}",
        f"train_batch_size: {cfg.data.batch_size}",
        f"eval_batch_size: {cfg.eval.batch_size}",
        f"seed: {cfg.seed}",
    ]
    processes = metrics.get("world_size", 1)
    if processes > 1:
        hyperparameters.append(f"distributed_type: multi-process (DDP), num_processes: {processes}")
    if accum > 1:
        hyperparameters.append(f"gradient_accumulation_steps: {accum}")
    if accum > 1 or processes > 1:
        hyperparameters.append(f"total_train_batch_size: {cfg.data.batch_size * accum * processes}")
    hyperparameters += [
        f"optimizer: AdamW with betas=({cfg.optim.betas[0]},{cfg.optim.betas[1]}) and "
        f"epsilon={cfg.optim.eps:g}, weight decay {cfg.optim.weight_decay:g} "
        "(none on biases and LayerNorm weights)",
        "lr_scheduler_type: linear",
        f"lr_scheduler_warmup: {cfg.optim.warmup_steps} steps"
        if cfg.optim.warmup_steps else f"lr_scheduler_warmup_ratio: {cfg.optim.warmup_ratio:g}",
        f"num_epochs: {cfg.epochs}",
        f"precision: {cfg.precision}",
        f"max_grad_norm: {cfg.optim.max_grad_norm}",
        f"label_strategy: {cfg.data.label_strategy} (which subwords carry the loss)",
        f"loss_normalization: {cfg.loss_normalization}",
    ]  # fmt: skip
    extras = {
        "context": f"document ({cfg.data.context_subwords} subwords per example)"
        if cfg.data.context == "document" else None,
        "pooling": cfg.model.pooling if cfg.model.pooling != "first" else None,
        "head": "linear-chain CRF over words" if cfg.model.head == "crf" else None,
        "decoding": "constrained Viterbi (valid IOB2)" if cfg.model.decode == "constrained" else None,
        "layer_decay": cfg.optim.layer_decay,
    }  # fmt: skip
    hyperparameters += [f"{key}: {value}" for key, value in extras.items() if value is not None]
    sections = [
        "---",
        "library_name: transformers",
        "pipeline_tag: token-classification",
        "tags: [token-classification, bert_pos]",
        f"base_model: {base_model}",
        "---",
        "",
        f"# {cfg.experiment_name}",
        "",
        f"This model is a fine-tuned version of {base_model} on {data} "
        f"(task `{cfg.data.task}`), trained with bert_pos. It achieves the following results "
        f"on the validation set (checkpoint of epoch {best['epoch']:g}, scored at "
        f"{cfg.eval.level} level):",
        *validation,
        "",
        "## Model description",
        "",
        "A BERT encoder with dropout and a linear token-classification head "
        "(`BertForTokenClassification`); labels: " + ", ".join(f"`{n}`" for n in metrics["label_names"]) + ".",
        "",
        "## Training procedure",
        "",
        "### Training hyperparameters",
        "",
        "The following hyperparameters were used during training:",
        *[f"- {line}" for line in hyperparameters],
        "",
        "### Training results",
        "",
        format_results_table(metrics["epochs"]),
        "",
    ]  # fmt: skip
    if "test" in metrics:
        test = metrics["test"]
        sections += ["### Test results", ""]
        sections += [f"- {title}: {test[key]:.4f}" for key, title in score_names if key in test]
        sections.append("")
    sections += [
        "### Framework versions",
        "",
        f"- Transformers {_version('transformers')}",
        f"- Pytorch {_version('torch')}",
        f"- Datasets {_version('datasets')}",
        f"- Tokenizers {_version('tokenizers')}",
        f"- bert_pos {_version('bert_pos')}",
        "",
    ]
    return "\n".join(sections)
