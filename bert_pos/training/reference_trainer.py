"""The reference side of `bert_pos.bench`: the card's recipe through `transformers.Trainer`,
as its users run it (`AutoModelForTokenClassification`, `DataCollatorForTokenClassification`,
Trainer defaults, evaluation and a checkpoint every epoch), with the same data and labels as
bert_pos and timing callbacks that change nothing in the training."""

import inspect
import time
from pathlib import Path

import datasets
import torch
from omegaconf import DictConfig, OmegaConf
from transformers import (
    AutoModelForTokenClassification,
    DataCollatorForTokenClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from bert_pos.data.encoding import align_labels
from bert_pos.data.labels import IGNORE_INDEX, begin_to_inside_map, is_span_label_set
from bert_pos.data.sources import load_splits, resolve_label_names, subset
from bert_pos.modeling.encoders import (
    load_tokenizer,
    quiet_transformers,
    random_config,
    random_model_tokenizer,
)
from bert_pos.runtime.hub import resolve_model_source
from bert_pos.scoring.metrics import score_sequences


class Timing(TrainerCallback):
    """Time to the end of the first step, the time spent evaluating, and the validation score
    against training time, evaluations excluded (the curve bert_pos's loop records too)."""

    def __init__(self, started: float, metric: str):
        self.started = started
        self.metric = metric
        self.first_step_seconds = None
        self.eval_seconds = 0.0
        self.curve = []
        self._train_started = None
        self._eval_started = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._train_started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.first_step_seconds is None:
            self.first_step_seconds = time.perf_counter() - self.started
        self._eval_started = time.perf_counter()  # an evaluation, if due, follows the step

    def on_epoch_end(self, args, state, control, **kwargs):
        self._eval_started = time.perf_counter()
        # Evaluating every N steps, bert_pos also evaluates at each epoch's end (and the last
        # step): so does this side, for curves evaluated at the same steps (the Trainer itself
        # may have evaluated this step already: the last one).
        evaluated = bool(self.curve) and self.curve[-1]["step"] == state.global_step
        if args.eval_strategy == "steps" and not evaluated:
            control.should_evaluate = True

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        seconds = time.perf_counter() - self._eval_started
        self.curve.append(
            {
                "step": state.global_step,
                "score": metrics[f"eval_{self.metric}"],
                "train_seconds": self._eval_started - self._train_started - self.eval_seconds,
            }
        )
        self.eval_seconds += seconds


class CountingTrainer(Trainer):
    """Counts real training tokens; nothing else differs from `Trainer`."""

    train_tokens = 0

    def training_step(self, model, inputs, *args, **kwargs):
        self.train_tokens += int(inputs["attention_mask"].sum())
        return super().training_step(model, inputs, *args, **kwargs)


def run_trainer(cfg: DictConfig, out_dir: Path) -> dict:
    """Train and evaluate as the card's script does; returns what the bench compares."""
    started = time.perf_counter()
    label_names, tokenizer, tokenized, model_source = tokenized_splits(cfg, out_dir)
    # As run_ner.py does before it loads the model: the new classifier's initial weights come
    # from the seed, not from whatever the process's random state happens to be.
    set_seed(cfg.seed)
    model = token_classification_model(cfg, label_names, len(tokenizer), model_source)
    span_task = is_span_label_set(label_names)
    metric = "f1" if span_task else "accuracy"
    timing = Timing(started, metric)
    trainer = CountingTrainer(
        model=model,
        args=training_arguments(cfg, out_dir),
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        data_collator=DataCollatorForTokenClassification(tokenizer),
        compute_metrics=subword_metrics(label_names, span_task),
        callbacks=[timing],
    )
    output = trainer.train()
    evaluations = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    train_seconds = output.metrics["train_runtime"] - timing.eval_seconds
    validation_tokens = sum(len(ids) for ids in tokenized["validation"]["input_ids"])
    return {
        "train_tokens_per_s": trainer.train_tokens / train_seconds,
        "eval_tokens_per_s": validation_tokens * len(evaluations) / timing.eval_seconds,
        "first_step_seconds": timing.first_step_seconds,
        "train_seconds": train_seconds,
        "eval_seconds": timing.eval_seconds,
        "steps": trainer.state.global_step,
        "final_score": evaluations[-1][f"eval_{metric}"],
        "best_score": max(entry[f"eval_{metric}"] for entry in evaluations),
        "score_name": f"val/{metric}",
        "curve": timing.curve,
    }


def tokenized_splits(cfg: DictConfig, out_dir: Path):
    """bert_pos's sentences and labels, tokenized as the card's script does (truncated at the
    model's window, as `run_ner.py` does)."""
    datasets.disable_progress_bars()
    label_names = resolve_label_names(cfg.data, out_dir / "demo_corpus")
    splits = load_splits(cfg.data, label_names, out_dir / "demo_corpus")
    splits = subset(splits, cfg.data.max_train_sentences, cfg.data.max_eval_sentences)
    model_source = resolve_model_source(cfg.model)
    if model_source is not None:
        tokenizer = load_tokenizer(cfg.model.tokenizer or model_source)  # as run_ner.py: a
        # prefix space for byte-level BPE
    else:
        tokenizer = random_model_tokenizer(
            cfg.model.random_init, splits["train"]["tokens"], out_dir / "tokenizer"
        )
    continuation = begin_to_inside_map(label_names)

    def tokenize_and_align_labels(batch):
        encoding = tokenizer(batch["tokens"], truncation=True, is_split_into_words=True)
        encoding["labels"] = [
            align_labels(encoding.word_ids(i), tags, cfg.data.label_strategy, continuation)
            for i, tags in enumerate(batch["tags"])
        ]
        return encoding

    tokenized = datasets.DatasetDict(
        {
            split: dataset.map(
                tokenize_and_align_labels, batched=True, remove_columns=dataset.column_names
            )
            for split, dataset in splits.items()
        }
    )
    return label_names, tokenizer, tokenized, model_source


def token_classification_model(
    cfg: DictConfig, label_names: list[str], vocab_size: int, model_source: str | None
):
    id2label = dict(enumerate(label_names))
    label2id = {label: i for i, label in id2label.items()}
    if model_source is not None:
        with quiet_transformers():  # the classifier is new and the pooler unused, as expected
            return AutoModelForTokenClassification.from_pretrained(
                model_source, num_labels=len(label_names), id2label=id2label, label2id=label2id
            )
    random_init = OmegaConf.to_container(cfg.model.random_init)
    config = random_config(random_init, vocab_size)
    config.update({"num_labels": len(label_names), "id2label": id2label, "label2id": label2id})
    return AutoModelForTokenClassification.from_config(config)


def subword_metrics(label_names: list[str], span_task: bool):
    def compute_metrics(prediction):
        """The card's metric: seqeval over every labelled subword."""
        predicted = prediction.predictions.argmax(-1)
        gold_tags, predicted_tags = [], []
        for gold_row, predicted_row in zip(prediction.label_ids, predicted):
            kept = [(g, p) for g, p in zip(gold_row, predicted_row) if g != IGNORE_INDEX]
            gold_tags.append([label_names[g] for g, _ in kept])
            predicted_tags.append([label_names[p] for _, p in kept])
        scores = score_sequences(gold_tags, predicted_tags, span_task)
        return {key: value for key, value in scores.items() if key != "per_type"}

    return compute_metrics


def training_arguments(cfg: DictConfig, out_dir: Path) -> TrainingArguments:
    on_cpu = cfg.device == "cpu" or not torch.cuda.is_available()
    # transformers 5 reads a ratio from a float warmup_steps; 4.x has warmup_ratio for it.
    if "warmup_ratio" in inspect.signature(TrainingArguments).parameters:
        warmup = {"warmup_ratio": cfg.optim.warmup_ratio, "warmup_steps": cfg.optim.warmup_steps}
    else:
        warmup = {"warmup_steps": cfg.optim.warmup_steps or cfg.optim.warmup_ratio}
    return TrainingArguments(
        output_dir=str(out_dir),
        learning_rate=cfg.optim.lr,
        per_device_train_batch_size=cfg.data.batch_size,
        per_device_eval_batch_size=cfg.eval.batch_size,
        gradient_accumulation_steps=cfg.grad_accum_steps,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        weight_decay=cfg.optim.weight_decay,
        adam_beta1=cfg.optim.betas[0],
        adam_beta2=cfg.optim.betas[1],
        adam_epsilon=cfg.optim.eps,
        **warmup,
        max_grad_norm=cfg.optim.max_grad_norm or 0.0,
        seed=cfg.seed,
        eval_strategy="steps" if cfg.eval.every_n_steps else "epoch",
        eval_steps=cfg.eval.every_n_steps,
        save_strategy="epoch",
        report_to="none",
        bf16=cfg.precision == "bf16",
        fp16=cfg.precision == "fp16",
        use_cpu=on_cpu,
        disable_tqdm=True,
    )
