"""Export a trained tagger in the Hugging Face layout, with a model card.

`<run>/model/` holds config.json (with id2label/label2id), model.safetensors, the tokenizer
files and README.md, so `AutoModelForTokenClassification.from_pretrained(<run>/model)` and
`pipeline("token-classification", model=<run>/model)` load it as they load any hub model, and
`bert_pos.inference.loading.load_trained` loads it with bert_pos's options (CRF, pooling, decoding),
which the Hugging Face class would ignore.
"""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from safetensors.torch import save_file

from bert_pos.modeling.tagger import Tagger, tagger_config
from bert_pos.runtime.paths import BERT_POS_ONLY_FILE, MODEL_FILE
from bert_pos.runtime.recipe import recipe_view
from bert_pos.scoring.metrics import format_results_table


def export_model(
    model: Tagger,
    tokenizer,
    label_names: list[str],
    directory: Path,
    card: str,
    context_subwords: int | None = None,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    tagger_config(model, label_names, context_subwords).save_pretrained(directory)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, directory / weights_file_name(model), metadata={"format": "pt"})
    tokenizer.save_pretrained(directory)
    (directory / "README.md").write_text(card)
    return directory


def weights_file_name(model: Tagger) -> str:
    """`model.safetensors`, which the Hugging Face classes load; with mean or first_last
    pooling they cannot compute the tagger (no pooling; first_last's head is twice as wide),
    and with several tasks they would compute the first task only, so the weights go to
    `bert_pos.safetensors` and `from_pretrained` refuses to load the folder (no
    model.safetensors) instead of loading something else. (Each task of such a tagger is
    exported on its own too, in the Hugging Face layout.)"""
    standard = model.pooling == "first" and not model.more_tasks and model.head_type != "span"
    return MODEL_FILE if standard else BERT_POS_ONLY_FILE


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def dataset_name(data: DictConfig) -> str:
    """What the card says the model was trained on."""
    if data.demo_corpus:
        return "the synthetic bert_pos demo corpus"
    if data.dir is not None:
        return "CoNLL-2003" if "conll2003" in str(data.dir) else f"the files in {data.dir}"
    name = "CoNLL-2003" if data.hub_name == "eriktks/conll2003" else f"`{data.hub_name}`"
    return f"{name} ({data.hub_config})" if data.hub_config else name


def trainer_style_hyperparameters(cfg: DictConfig, metrics: dict) -> list[str]:
    """The hyperparameter lines of a Hugging Face Trainer card (the reference card's)."""
    accum, processes = cfg.grad_accum_steps, metrics.get("world_size", 1)
    lines = [
        f"learning_rate: {cfg.optim.lr:g}",
        f"train_batch_size: {cfg.data.batch_size}",
        f"eval_batch_size: {cfg.eval.batch_size}",
        f"seed: {cfg.seed}",
    ]
    if processes > 1:
        lines.append(f"distributed_type: multi-process (DDP), num_processes: {processes}")
    if accum > 1:
        lines.append(f"gradient_accumulation_steps: {accum}")
    if accum > 1 or processes > 1:
        lines.append(f"total_train_batch_size: {cfg.data.batch_size * accum * processes}")
    warmup = (
        f"lr_scheduler_warmup: {cfg.optim.warmup_steps} steps"
        if cfg.optim.warmup_steps
        else f"lr_scheduler_warmup_ratio: {cfg.optim.warmup_ratio:g}"
    )
    return lines + [
        f"optimizer: AdamW with betas=({cfg.optim.betas[0]},{cfg.optim.betas[1]}) and "
        f"epsilon={cfg.optim.eps:g}, weight decay {cfg.optim.weight_decay:g} "
        "(none on biases and LayerNorm weights)",
        "lr_scheduler_type: linear",
        warmup,
        f"num_epochs: {cfg.epochs}",
        f"precision: {cfg.precision}",
    ]


def usage_snippet(cfg: DictConfig, model_dir: str) -> list[str]:
    """The pipeline call that returns bert_pos.predict's spans: `first` gives each word its
    first subword's tag, as bert_pos decodes (`simple` would split words whose continuation
    subwords were never trained)."""
    example = (
        "Sator said on Monday that Isvello Motors would open an office in Viport ."
        if cfg.data.demo_corpus
        else "EU rejects German call to boycott British lamb ."
    )
    return [
        "```python",
        "from transformers import pipeline",
        "",
        f'tagger = pipeline("token-classification", model="{model_dir}", '
        'aggregation_strategy="first")',
        f'print(tagger("{example}"))',
        "```",
    ]


SCORE_NAMES = [
    ("loss", "Loss"),
    ("precision", "Precision"),
    ("recall", "Recall"),
    ("f1", "F1"),
    ("accuracy", "Accuracy"),
]
FRAMEWORKS = [
    ("Transformers", "transformers"),
    ("Pytorch", "torch"),
    ("Datasets", "datasets"),
    ("Tokenizers", "tokenizers"),
    ("bert_pos", "bert_pos"),
]


def model_card(
    cfg: DictConfig, metrics: dict, base_model: str, model_dir: str = ".", task=None
) -> str:
    """A model card in the layout of the Hugging Face Trainer's cards (the reference card's),
    with every setting of the recipe (the config's flat view) below the Trainer's lines, and
    the pipeline call that tags as bert_pos does (`model_dir`: where the export is). A run
    with several tasks: the card of the whole tagger lists every task's scores; `task`: the
    card of that task's own export."""
    best = next(row for row in metrics["epochs"] if row["step"] == metrics["best"]["step"])
    names = metrics.get("tasks") or [cfg.data.task]
    prefixes = card_prefixes(names, task)
    validation = card_validation(best, prefixes, task)
    data = dataset_name(cfg.data)
    head = HEAD_WORDS[head_of(cfg, task.name if task is not None else names[0])]
    described, labels_line = card_tasks(metrics, names, task)
    sections = [
        "---",
        "library_name: transformers",
        "pipeline_tag: token-classification",
        "tags: [token-classification, bert_pos]",
        f"base_model: {base_model}",
        "---",
        "",
        f"# {cfg.experiment_name}" + (f" ({task.name})" if task is not None else ""),
        "",
        f"This model is a fine-tuned version of {base_model} on {data} "
        f"({described}), trained with bert_pos. It achieves the following results "
        f"on the validation set (checkpoint of epoch {best['epoch']:g}, scored at "
        f"{cfg.eval.level} level):",
        *validation,
        "",
        "## Model description",
        "",
        f"A BERT encoder with dropout and {head}; {labels_line}",
        "",
        "## Training procedure",
        "",
        "### Training hyperparameters",
        "",
        "The following hyperparameters were used during training:",
        *[f"- {line}" for line in trainer_style_hyperparameters(cfg, metrics)],
        "",
        "Every setting of the bert_pos recipe:",
        "",
        *[f"- `{key}`: {value}" for key, value in recipe_view(cfg).items()],
        "",
        "## How to use",
        "",
        *usage_snippet(cfg, model_dir),
        "",
        "### Training results",
        "",
        format_results_table(metrics["epochs"]),
        "",
    ]
    sections += test_results(metrics, prefixes)
    sections += ["### Framework versions", ""]
    sections += [f"- {name} {_version(package)}" for name, package in FRAMEWORKS]
    return "\n".join(sections + [""])


HEAD_WORDS = {
    "linear": "a linear token-classification head",
    "crf": "a linear-chain CRF token-classification head over the words",
    "span": "a span-classification head (every span of up to model.max_span_words words)",
}


def head_of(cfg: DictConfig, task: str) -> str:
    """The head a task of the run has (`model.task_heads`, else `model.head`)."""
    return (OmegaConf.select(cfg, "model.task_heads") or {}).get(task, cfg.model.head)


def card_validation(best: dict, prefixes: list[str], task) -> list[str]:
    """The card's validation scores: each task's (`prefixes`), and AllTags where there is one."""
    lines = [
        f"- {prefix}{title}: {best[f'val/{prefix}{key}']:.4f}"
        for prefix in prefixes
        for key, title in SCORE_NAMES
        if f"val/{prefix}{key}" in best
    ]
    if task is None and "val/alltags/accuracy" in best:
        lines.append(f"- AllTags accuracy: {best['val/alltags/accuracy']:.4f}")
    return lines


def card_tasks(metrics: dict, names: list[str], task) -> tuple[str, str]:
    """What a card says the model tags, and its labels."""
    if len(names) > 1 and task is None:
        counts = metrics.get("task_label_names", {})
        described = "tasks " + ", ".join(f"`{name}`" for name in names) + ", on one encoder"
        labels = ", ".join(f"{name} {len(counts.get(name, []))}" for name in names)
        return described, (
            f"one head per task; label counts: {labels}. Each task is also exported on its "
            "own, in the Hugging Face layout, in the subfolder named after it."
        )
    if task is not None:
        return f"task `{task.name}`", "labels: " + ", ".join(
            f"`{n}`" for n in task.label_names
        ) + "."
    name, label_names = names[0], metrics["label_names"]
    return f"task `{name}`", "labels: " + ", ".join(f"`{n}`" for n in label_names) + "."


def card_prefixes(names: list[str], task) -> list[str]:
    """The score-key prefixes a card shows: "" for a one-task run, `<task>/` otherwise."""
    if task is not None:
        return [f"{task.name}/"]
    return [f"{name}/" for name in names] if len(names) > 1 else [""]


def test_results(metrics: dict, prefixes: list[str] = ("",)) -> list[str]:
    """The card's test section: the best checkpoint's scores and their bootstrap interval."""
    if "test" not in metrics:
        return []
    test = metrics["test"]
    lines = ["### Test results", ""]
    for prefix in prefixes:
        lines += [
            f"- {prefix}{title}: {test[prefix + key]:.4f}"
            for key, title in SCORE_NAMES
            if prefix + key in test
        ]
        bootstrap = metrics.get("test_bootstrap")
        if bootstrap is not None and prefix:  # several tasks: one interval per task
            bootstrap = bootstrap.get(prefix[:-1])
        if bootstrap is not None:
            overall = bootstrap["scores"]["overall"]
            low, high = overall["interval"]
            lines.append(
                f"- {prefix}95% interval of the word-level "
                f"{'F1' if prefix + 'f1' in test else 'accuracy'} "
                f"({overall['score']:.4f}), 1,000 bootstrap resamples of the test "
                f"sentences: [{low:.4f}, {high:.4f}]"
            )
    return lines + [""]
