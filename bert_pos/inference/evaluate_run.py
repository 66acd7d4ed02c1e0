"""Score a trained run folder's checkpoint on a split or a file, as
`python -m bert_pos.evaluate` asks.
"""

import logging
from pathlib import Path

import datasets
from omegaconf import DictConfig, OmegaConf

from bert_pos.data.columns import conllu_source, label_view
from bert_pos.data.conll import ConllFormatError
from bert_pos.data.pipeline import Batching, EncodingOptions, encode_and_batch
from bert_pos.data.task_sources import load_task_splits
from bert_pos.data.tasks import Task, task_data_configs, task_key, task_weights
from bert_pos.inference.loading import TrainedModelError, load_trained, run_data_config
from bert_pos.modeling.encoders import max_length_of
from bert_pos.runtime.devices import autocast_for, padding_multiple, pick_device, resolve_precision
from bert_pos.runtime.paths import FAILED_MARKER, SHELL_UNSAFE
from bert_pos.scoring.details import evaluate_split
from bert_pos.scoring.metrics import format_per_type_table
from bert_pos.scoring.scorer import task_scores

log = logging.getLogger(__name__)


def evaluate_run(cfg: DictConfig) -> dict:
    """Score a run's `checkpoint` on `split` (or on `file`) as `python -m bert_pos.evaluate`
    is asked (its config: conf/evaluate.yaml); returns the scores."""
    run_dir = Path(cfg.run_dir)
    trained = load_run_checkpoint(run_dir, cfg.checkpoint, cfg.decode, cfg.model_dir)
    data, split = data_to_score(trained.run_config, cfg.file, cfg.split)
    level = cfg.level or trained.run_config.eval.level
    settings = evaluation_settings(cfg, trained, level)
    name = folder_name(settings, trained)
    device = pick_device(cfg.device)
    model, tokenizer = trained.model.to(device), trained.tokenizer
    datasets.disable_progress_bars()
    tasks = trained_tasks(data, model)
    splits = load_task_splits(data, tasks, run_dir / "demo_corpus")
    if split not in splits:
        raise ConllFormatError(f"split={split}: the run's data has no such split")
    splits = datasets.DatasetDict({split: splits[split]})
    batching = Batching(
        batch_size=cfg.batch_size,
        eval_batch_size=cfg.batch_size,
        pad_token_id=tokenizer.pad_token_id,
        # as trained
        pad_to_multiple_of=padding_multiple(data.get("pad_to_multiple_of", 8), device),
        pin_memory=device.type == "cuda",
    )
    options = EncodingOptions.of(data, tasks, max_length_of(tokenizer, model.config))
    _, loaders = encode_and_batch(splits, tokenizer, options, batching)  # encoded as trained
    scores, _, _ = evaluate_split(
        model,
        loaders[split],
        splits[split],
        tasks,
        level,
        cfg.mode,
        device,
        autocast_for(device, resolve_precision(cfg.precision, device)),
        run_dir / "eval" / name,
        title=f"{name}, {what_was_scored(cfg)}",
        settings=settings,
        conllu=conllu_source(data, split),
        weights=task_weights(data, tasks),
    )
    for index, task in enumerate(tasks):
        table = format_per_type_table(task_scores(scores, tasks, index))
        named = f" {task.name}" if len(tasks) > 1 else ""
        log.info("%s%s (%s, %s):\n%s", name, named, what_was_scored(cfg), cfg.mode, table)
    log.info("wrote %s", run_dir / "eval" / name)
    return scores


def what_was_scored(cfg: DictConfig) -> str:
    return f"{cfg.checkpoint} checkpoint" if cfg.model_dir is None else f"model {cfg.model_dir}"


def trained_tasks(data: DictConfig, model) -> list[Task]:
    """The run's tasks with the trained model's label names (data/tasks.py)."""
    configs = task_data_configs(data)
    return [
        Task(one.task, labels, label_view(one), task_key(index, one.task))
        for index, (one, labels) in enumerate(zip(configs, model.task_label_names, strict=True))
    ]


def data_to_score(run_config: DictConfig, file: str | None, split: str):
    """The run's data settings narrowed to the one split to score (or to `file`, read as the
    run read its test file), and that split's name."""
    data = run_data_config(run_config)
    if file is not None:
        data.dir, data.test_file = str(Path(file).parent), Path(file).name
        data.train_file = data.validation_file = None
        data.demo_corpus = False
        return data, "test"
    for other in {"train", "validation", "test"} - {split}:
        data[f"{other}_file"] = None
    return data, split


def load_run_checkpoint(run_dir: Path, checkpoint: str, decode: str | None, model_dir=None):
    """The run's checkpoint (or the model in `model_dir`, with the run's training config);
    where there is none and the run failed, the message says why."""
    if model_dir is not None:
        trained = load_trained(model_dir, decode=decode)
        trained.run_config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
        return trained
    try:
        return load_trained(run_dir, checkpoint=checkpoint, decode=decode)
    except TrainedModelError as err:
        failed = run_dir / FAILED_MARKER
        if not failed.is_file():
            raise
        reason = failed.read_text().strip().splitlines()[-1]  # the exception's line
        raise TrainedModelError(f"{err}; the run failed ({failed}): {reason}") from None


def evaluation_settings(cfg: DictConfig, trained, level: str) -> dict:
    """What an evaluation scored, and how: recorded in its metrics.json."""
    return {
        "split": None if cfg.file is not None else cfg.split,
        "file": None if cfg.file is None else str(Path(cfg.file).resolve()),
        "checkpoint": cfg.checkpoint if cfg.model_dir is None else None,
        "model_dir": None if cfg.model_dir is None else str(Path(cfg.model_dir).resolve()),
        "step": trained.step,
        "mode": cfg.mode,
        "level": level,
        "decode": trained.model.decoding,
    }


def folder_name(settings: dict, trained) -> str:
    """`eval/<name>` of an evaluation: the split (or `file-<stem>`, never a split's folder),
    the checkpoint, and the values of the settings that differ from the run's own evaluation,
    joined by `-`: `test-best`, `test-last-strict-subword`, `file-extra-best-constrained`.
    Nothing in it needs quoting in a shell or a Hydra override. The checkpoint is always
    named: the run's own `eval/validation` holds its latest in-training evaluation, not a
    checkpoint's."""
    run = trained.run_config
    stem = SHELL_UNSAFE.sub("_", Path(settings["file"]).stem) if settings["file"] else None
    model = settings["model_dir"] and SHELL_UNSAFE.sub("_", Path(settings["model_dir"]).name)
    parts = [settings["split"] or f"file-{stem}", settings["checkpoint"] or f"model-{model}"]
    defaults = {
        "mode": "conlleval",
        "level": run.eval.level,
        "decode": run.model.get("decode", "argmax"),
    }
    parts += [settings[key] for key, default in defaults.items() if settings[key] != default]
    return "-".join(parts)
