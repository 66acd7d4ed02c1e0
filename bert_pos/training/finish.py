"""After the loop: the results table, the best checkpoint on test, the export and
metrics.json.
"""

import json
import logging
import time

from safetensors.torch import load_file

from bert_pos.data.pipeline import document_context_subwords
from bert_pos.inference.export import export_model, model_card
from bert_pos.runtime.paths import weights_file
from bert_pos.scoring.details import evaluate_split
from bert_pos.scoring.metrics import format_per_type_table, format_results_table
from bert_pos.scoring.scorer import task_scores
from bert_pos.training.state import LoopState, Run

log = logging.getLogger(__name__)


def finish(run: Run, state: LoopState) -> dict:
    """The card's table on the console; the best checkpoint scored on test, exported with
    its model card; everything in metrics.json (returned)."""
    metrics = summary(run, state)
    log.info("results:\n%s", format_results_table(state.epoch_rows))
    run.model.load_state_dict(load_file(weights_file(run.run_dir, "best")))
    if run.cfg.eval.test_at_end and "test" in run.loaders:
        metrics["test"], bootstrap = evaluate_test(run, state)
        if bootstrap is not None:  # computed on the first data-parallel process only
            metrics["test_bootstrap"] = bootstrap
    elif run.cfg.eval.test_at_end:
        log.info("no test split: nothing scored on test (data.test_file names one)")
    final_metrics = {f"hparams/best_val_{run.select}": state.best.value}
    if "test" in metrics:
        final_metrics[f"hparams/test_{run.select}"] = metrics["test"][run.select]
    if not run.ddp.is_main:
        metrics["wall_seconds"] = time.perf_counter() - run.started
        return metrics
    run.trackers.finish(run.cfg, state.epoch_rows, final_metrics)
    run.trackers.close()
    cfg = run.cfg
    base_model = cfg.model.name_or_path or cfg.model.package or "a randomly initialised BERT"
    export_dir = run.run_dir / "model"
    context = document_context_subwords(cfg.data)  # predict gives the model what it trained on
    export_model(
        run.model,
        run.tokenizer,
        run.task.label_names,
        export_dir,
        model_card(cfg, metrics, base_model, str(export_dir.resolve())),
        context,
    )
    if len(run.tasks) > 1:  # each task alone, as a standard token-classification model
        for index, task in enumerate(run.tasks):
            card = model_card(
                cfg, metrics, base_model, str((export_dir / task.name).resolve()), task
            )
            view = run.model.task_view(index)
            export_model(
                view, run.tokenizer, task.label_names, export_dir / task.name, card, context
            )
    metrics["wall_seconds"] = time.perf_counter() - run.started
    (run.run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log.info(
        "best val/%s %.4f at step %d; wrote %s",
        run.select,
        state.best.value,
        state.best.step,
        run.run_dir,
    )
    return metrics


def summary(run: Run, state: LoopState) -> dict:
    cfg, metric = run.cfg, run.select
    return {
        "experiment": cfg.experiment_name,
        "task": cfg.data.task,
        "tasks": [task.name for task in run.tasks],
        "eval_level": cfg.eval.level,
        "selection_metric": f"val/{metric}",
        "best": {
            "epoch": state.best.epoch,
            "step": state.best.step,
            f"val/{metric}": state.best.value,
        },
        "epochs": state.epoch_rows,
        "final": state.epoch_rows[-1],
        "steps": state.step,
        "train_seconds": state.train_seconds,  # optimizer steps only, batch collation included
        "train_tokens": state.train_tokens,
        "train_tokens_per_s": state.train_tokens / state.train_seconds,
        "loop_seconds": run.loop_seconds,
        "mean_train_length": run.mean_train_length,
        "first_step_seconds": run.first_step_seconds,
        "eval_seconds": state.eval_seconds,
        "eval_tokens_per_s": state.eval_tokens / state.eval_seconds,
        "curve": run.curve,
        "label_names": run.task.label_names,
        "task_label_names": {task.name: task.label_names for task in run.tasks},
        "world_size": run.ddp.world_size,
        "global_batch_size": cfg.data.batch_size * run.ddp.world_size * run.accum,
    }


def evaluate_test(run: Run, state: LoopState) -> tuple[dict, dict | None]:
    """The best checkpoint (loaded into `run.model`) on the test split: its scores, and their
    bootstrap 95% interval (None on data-parallel processes but the first)."""
    scores, figures, bootstrap = evaluate_split(
        run.model,
        run.loaders["test"],
        run.splits["test"],
        run.tasks,
        run.cfg.eval.level,
        run.cfg.eval.mode,
        run.device,
        run.autocast,
        run.run_dir / "eval" / "test",
        title=f"test, best checkpoint (step {state.best.step})",
        write=run.ddp.is_main,
        seen_entities=run.seen_entities,
        conllu=run.conllu_sources.get("test"),
        weights=run.task_weights,
    )
    for prefix, figure in (figures or {}).items():
        run.trackers.add_figure(f"test/{prefix}confusion_matrix", figure, state.step)
    for key, value in scores.items():
        if not key.endswith("per_type"):
            run.trackers.add_scalar(f"test/{key}", value, state.step)
    for index, task in enumerate(run.tasks):
        table = format_per_type_table(task_scores(scores, run.tasks, index))
        name = f" {task.name}" if len(run.tasks) > 1 else ""
        log.info("test%s, best checkpoint:\n%s", name, table)
    return scores, bootstrap
