"""Everything the loop needs, built once in the order that fixes the random draws:
data and tokenizer, the tagger, loaders, optimizer and schedule, the state.
"""

import logging
import math
import statistics
import time
from pathlib import Path

import datasets
import torch
from omegaconf import DictConfig, OmegaConf
from torch.nn.parallel import DistributedDataParallel as DDP

from bert_pos.data.columns import conllu_source
from bert_pos.data.formats import DataSource
from bert_pos.data.mentions import gold_mentions
from bert_pos.data.pipeline import Batching, EncodingOptions, encode_and_batch
from bert_pos.data.sources import gold_labels, subset
from bert_pos.data.task_sources import load_task_splits, resolve_tasks
from bert_pos.data.tasks import Task, selection_key, task_weights
from bert_pos.modeling.encoders import load_tokenizer, max_length_of, random_model_tokenizer
from bert_pos.modeling.tagger import build_model, tagger_config
from bert_pos.runtime import distributed
from bert_pos.runtime.devices import (
    autocast_for,
    cpu_description,
    padding_multiple,
    pick_device,
    resolve_precision,
    seed_everything,
)
from bert_pos.runtime.hub import check_hub_access, resolve_model_source
from bert_pos.runtime.paths import TAGGER_CONFIG, checkpoints_dir
from bert_pos.scoring.error_analysis import training_entities
from bert_pos.training.optimization import build_optimization, labelled_tokens
from bert_pos.training.resume import resume_or_start
from bert_pos.training.state import LoopState, Run
from bert_pos.training.trackers import open_trackers, sweep_folder

log = logging.getLogger(__name__)


def setup(cfg: DictConfig, run_dir: Path) -> tuple[Run, LoopState]:
    """Everything the loop needs, in the order that fixes the random draws: data and
    tokenizer, model (its random head), loaders, optimizer and schedule; then the state,
    fresh or from the checkpoint `cfg.resume` points at."""
    started = time.perf_counter()
    ddp = distributed.setup(cfg.device)  # one process unless launched by torchrun
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device, ddp.local_rank)
    tasks, splits, tokenizer, model_source = load_data_and_tokenizer(cfg, run_dir, ddp)
    model, step_model = build_tagger(cfg, tasks, tokenizer, model_source, ddp, device)
    if ddp.is_main:  # with the tokenizer, a run folder loads at any checkpoint (loading.py)
        save_tagger_config(model, checkpoints_dir(run_dir) / TAGGER_CONFIG)
    options = EncodingOptions.of(cfg.data, tasks, max_length_of(tokenizer, model.config))
    with distributed.main_first():  # rank 0 fills the cache, the others read it
        tokenized, loaders = encode_and_batch(
            splits, tokenizer, options, batching_of(cfg, tokenizer, device, ddp), cfg.data.cache_dir
        )
    # The loader draws a seed from the global RNG each time it is iterated; its own generator
    # keeps that draw from shifting the dropout masks of a resumed run.
    loaders["train"].generator = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch, total_steps = count_steps(cfg, len(loaders["train"]), ddp.world_size)
    precision = resolve_precision(cfg.precision, device)  # auto: what the device runs natively
    log.info("precision %s on %s (%s)", precision, device, device_description(device))
    optimizer, scheduler, scaler = build_optimization(cfg, model, total_steps, device, precision)
    loss_divisor = None  # loss_normalization=batch: each window's own labelled tokens
    if cfg.loss_normalization == "average":
        loss_divisor = labelled_tokens(tokenized["train"]) / steps_per_epoch
    run = Run(
        cfg=cfg,
        run_dir=run_dir,
        ddp=ddp,
        device=device,
        autocast=autocast_for(device, precision),
        tasks=tasks,
        task_weights=task_weights(cfg.data, tasks),
        select=selection_key(tasks, cfg.eval.select),
        splits=splits,
        tokenizer=tokenizer,
        model=model,
        step_model=step_model,
        loaders=loaders,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        accum=cfg.grad_accum_steps,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        loss_divisor=loss_divisor,
        trackers=None,
        started=started,
        mean_train_length=statistics.fmean(len(ids) for ids in tokenized["train"]["input_ids"]),
        validation_tokens=sum(len(ids) for ids in tokenized["validation"]["input_ids"]),
        validation_golds=[gold_labels(splits["validation"], t.label_names, t.key) for t in tasks],
        validation_mentions=validation_mentions(cfg, splits, tasks),
        seen_entities=[seen_entities(splits["train"], task) for task in tasks],
        conllu_sources=conllu_sources(cfg.data, splits),
    )
    state, resumed = resume_or_start(run)
    run.first_step, run.last_progress_line = state.step, time.perf_counter()
    run.trackers = open_trackers(cfg, run_dir, state.step, resumed, run.ddp.is_main, sweep_folder())
    return run, state


def validation_mentions(cfg: DictConfig, splits, tasks: list[Task]) -> list | None:
    """Span data's validation mentions; with a span head on tag data, the gold tags' spans
    (its evaluations are scored, and written, as mentions)."""
    heads = cfg.model.task_heads or {}
    span_head = tasks[0].spans and heads.get(tasks[0].name, cfg.model.head) == "span"
    tags = gold_labels(splits["validation"], tasks[0].label_names) if span_head else None
    return gold_mentions(splits["validation"], tags)


def save_tagger_config(model, config_file: Path) -> None:
    config_file.parent.mkdir(exist_ok=True)
    tagger_config(model, model.label_names).to_json_file(config_file)


def conllu_sources(data: DictConfig, splits) -> dict:
    """split -> (its CoNLL-U file, the predicted column of each task), for the splits read
    from CoNLL-U."""
    sources = {split: conllu_source(data, split) for split in splits}
    return {split: source for split, source in sources.items() if source is not None}


def log_span_coverage(train: datasets.Dataset, task: Task, max_span_words: int) -> None:
    """How many training mentions the span head can represent (`model.max_span_words`); the
    longer ones are never predicted, so scored as missed."""
    from bert_pos.modeling.heads.span import gold_spans

    lengths = [
        b - a + 1 for tags in train[task.tags_column] for a, b in gold_spans(tags, task.label_names)
    ]
    longer = sum(length > max_span_words for length in lengths)
    log.info(
        "span head: %d of %d training mentions (%.2f%%) have at most %d words "
        "(model.max_span_words); %d longer ones (up to %d words) are never predicted",
        len(lengths) - longer,
        len(lengths),
        100 * (len(lengths) - longer) / max(len(lengths), 1),
        max_span_words,
        longer,
        max(lengths, default=0),
    )


def batching_of(cfg: DictConfig, tokenizer, device: torch.device, ddp) -> Batching:
    """How this process's batches are laid out (`data.*`, `eval.batch_size`, the device)."""
    return Batching(
        batch_size=cfg.data.batch_size,
        eval_batch_size=cfg.eval.batch_size,
        pad_token_id=tokenizer.pad_token_id,
        pad_to_multiple_of=padding_multiple(cfg.data.pad_to_multiple_of, device),
        group_by_length=cfg.data.group_by_length,
        group_batches=cfg.data.group_batches,
        num_workers=cfg.data.num_workers,
        seed=cfg.seed,
        pin_memory=device.type == "cuda",
        num_shards=ddp.world_size,
        shard=ddp.rank,
    )


def count_steps(cfg: DictConfig, train_batches: int, world_size: int) -> tuple[int, int]:
    """(optimizer steps per epoch, in all): one step per `grad_accum_steps` micro-batches, an
    epoch's last window possibly shorter; `max_steps` caps the total."""
    accum = cfg.grad_accum_steps
    steps_per_epoch = math.ceil(train_batches / accum)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    log.info(
        "%d optimizer steps (%d per epoch), global batch %d = %d per process x %d "
        "processes x %d accumulation",
        total_steps,
        steps_per_epoch,
        cfg.data.batch_size * world_size * accum,
        cfg.data.batch_size,
        world_size,
        accum,
    )
    return steps_per_epoch, total_steps


def device_description(device: torch.device) -> str:
    return cpu_description() if device.type == "cpu" else torch.cuda.get_device_name(device)


def seen_entities(train: datasets.Dataset, task: Task) -> set | None:
    """(surface, type) of every training entity of `task`, for the seen/unseen error tables;
    None for tag sets without spans."""
    if not task.spans:
        return None
    if "mentions" in train.column_names:  # span data: every mention, nested ones too
        return {
            (" ".join(words[a:b]), kind)
            for words, rows, kinds in zip(
                train["tokens"], train["mentions"], train["mention_types"]
            )
            for (a, b, _), kind in zip(rows, kinds, strict=True)
        }
    label_names = task.label_names
    tags = [
        [label_names[t] if t >= 0 else "O" for t in sentence]
        for sentence in train[task.tags_column]
    ]
    return training_entities(train["tokens"], tags)


def load_data_and_tokenizer(cfg: DictConfig, run_dir: Path, ddp):
    """The tasks (each with its label names), sentences of each split, the tokenizer, and
    where the pretrained weights are (None: random init). Fails fast where they would need an
    absent network."""
    model_source = resolve_model_source(cfg.model)
    from_hub = DataSource.of(cfg.data).kind == "hub"
    check_hub_access(
        model_name=model_source if cfg.model.package is None else None,
        dataset_name=cfg.data.hub_name if from_hub else None,
    )
    demo_corpus_dir = run_dir / "demo_corpus"
    datasets.disable_progress_bars()
    # data-parallel: rank 0 writes the demo corpus and the tokenizer, the others read them
    with distributed.main_first():
        tasks = resolve_tasks(cfg.data, demo_corpus_dir)
        splits = load_task_splits(cfg.data, tasks, demo_corpus_dir)
        splits = subset(splits, cfg.data.max_train_sentences, cfg.data.max_eval_sentences)
        if cfg.model.tokenizer is not None or model_source is not None:
            tokenizer = load_tokenizer(cfg.model.tokenizer or model_source)
        elif ddp.is_main:  # a random model: a vocabulary of its family's kind, from the data
            tokenizer = random_model_tokenizer(
                cfg.model.random_init, splits["train"]["tokens"], run_dir / "tokenizer"
            )
        else:
            tokenizer = load_tokenizer(run_dir / "tokenizer")  # rank 0's
    log.info("sentences: %s", {split: len(dataset) for split, dataset in splits.items()})
    for task in tasks:
        if (cfg.model.task_heads or {}).get(task.name, cfg.model.head) == "span":
            log_span_coverage(splits["train"], task, cfg.model.max_span_words)
    if not tokenizer.is_fast:
        raise ValueError("a fast tokenizer is needed (word_ids() maps subwords to words)")
    if ddp.is_main:
        tokenizer.save_pretrained(run_dir / "tokenizer")
    return tasks, splits, tokenizer, model_source


def build_tagger(
    cfg: DictConfig,
    tasks: list[Task],
    tokenizer,
    model_source: str | None,
    ddp,
    device: torch.device,
):
    """The tagger on `device`, and what training steps call: it under DDP and torch.compile."""
    random_init = cfg.model.random_init
    padding_free = cfg.model.padding_free
    if padding_free is None and cfg.compile:
        # a compiled step wants few shapes: padded batches (data.pad_to_multiple_of buckets them)
        padding_free = False
    label_names, heads = tasks[0].label_names, cfg.model.task_heads or {}
    more_tasks = [
        {"name": t.name, "labels": t.label_names, "head": heads.get(t.name, cfg.model.head)}
        for t in tasks[1:]
    ]
    model = build_model(
        num_labels=len(label_names),
        dropout=cfg.model.dropout,
        pretrained_path=model_source,
        random_init=OmegaConf.to_container(random_init) if random_init else None,
        vocab_size=len(tokenizer),
        pooling=cfg.model.pooling,
        head=heads.get(tasks[0].name, cfg.model.head),
        decode=cfg.model.decode,
        label_names=label_names,
        special_ids=special_ids(tokenizer),
        padding_free=padding_free,
        task_name=tasks[0].name if more_tasks else None,
        more_tasks=more_tasks,
        span_options={
            "max_span_words": cfg.model.max_span_words,
            "span_decode": cfg.model.span_decode,
        },
    ).to(device)
    log.info(
        "model: %.1fM parameters%s",
        sum(p.numel() for p in model.parameters()) / 1e6,
        ", padding-free batches" if model.padding_free else "",
    )
    step_model = model  # evaluation always runs the eager model
    if ddp.enabled:
        # Same weights everywhere (DDP also copies rank 0's); dropout masks differ per rank.
        step_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        torch.manual_seed(cfg.seed + ddp.rank)
    if cfg.compile:
        # One compiled graph per (batch, length) shape; buckets keep the count small, and the
        # cache must hold them all or every new shape would evict an old one and recompile.
        torch._dynamo.config.cache_size_limit = 64
        step_model = torch.compile(step_model, mode=cfg.compile_mode, dynamic=False)
    return model, step_model


def special_ids(tokenizer) -> dict:
    """The tokenizer's special-token ids, for a random model's config (padding index, and
    RoBERTa's position offset, follow the padding id)."""
    ids = {
        f"{role}_id": getattr(tokenizer, f"{role}_id", None)
        for role in ("pad_token", "bos_token", "eos_token", "cls_token", "sep_token")
    }
    return {key: value for key, value in ids.items() if value is not None}
