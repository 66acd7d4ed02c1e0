"""Where an evaluation's time goes: the model's forward passes, the scoring, and each of the
details `evaluation.write_details` adds (predictions file, bootstrap interval, span error
tables, confusion matrix), beside the floor: the encoder alone on the same batches.

    python experiments/eval_parts.py experiment=baseline model=minilm data.dir=../shared/data/conll2003 \
        eval.level=subword [data.max_eval_sentences=500]

The run's validation split, its loader (eval.batch_size), the model as `setup` builds it
(untrained head: the tags are near-random, so the error tables are as long as they get).
Each part is timed twice; the faster counts.
"""

import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bert_pos.config import register_configs  # noqa: E402


def fastest(function, repeats: int = 2) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def main(overrides: list[str]) -> None:
    import matplotlib.pyplot as plt
    from hydra import compose, initialize_config_dir

    from bert_pos.runtime.devices import cpu_description
    from bert_pos.scoring.details import (
        confusion_matrix,
        plot_confusion_matrix,
        word_level_bootstrap,
    )
    from bert_pos.scoring.error_analysis import write_error_report
    from bert_pos.scoring.predictions import write_predictions
    from bert_pos.scoring.scorer import evaluate
    from bert_pos.training.setup import setup

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides + ["data.cache_dir=null", "eval.test_at_end=false"])
    out_dir = Path(tempfile.mkdtemp(prefix="bert_pos_eval_parts_"))
    run, _ = setup(cfg, out_dir)
    loader, sentences = run.loaders["validation"], run.splits["validation"]
    gold = run.validation_golds[0]
    run.model.eval()

    @torch.inference_mode()
    def forward_only():
        for batch in loader:
            with run.autocast:
                run.model(batch["input_ids"], batch["attention_mask"], batch["word_index"])

    @torch.inference_mode()
    def encoder_only():  # the floor: transformers' encoder alone on the same batches
        for batch in loader:
            with run.autocast:
                run.model.encoder(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                )

    def scores_only():
        return evaluate(
            run.model,
            loader,
            run.task.label_names,
            run.task.spans,
            cfg.eval.level,
            run.device,
            run.autocast,
            cfg.eval.mode,
            gold,
        )

    tokens = sum(int(batch["attention_mask"].sum()) for batch in loader)
    encoder_seconds, _ = fastest(encoder_only)
    forward_seconds, _ = fastest(forward_only)
    evaluate_seconds, (_, predicted) = fastest(scores_only)
    labels = run.task.label_names

    def confusion_image():
        figure = plot_confusion_matrix(confusion_matrix(gold, predicted, labels), labels, "t")
        figure.savefig(out_dir / "c.png", dpi=120)
        plt.close(figure)

    parts = {
        "predictions.txt": lambda: write_predictions(
            out_dir / "p.txt", sentences["tokens"], gold, predicted, sentences["document_id"]
        ),
        "bootstrap interval (1,000 resamples)": lambda: word_level_bootstrap(
            gold, predicted, run.task.spans
        ),
        "span error tables": lambda: write_error_report(
            out_dir / "e.json", out_dir / "e.md", sentences["tokens"], gold, predicted
        ),
        "confusion matrix (PNG)": confusion_image,
    }
    print(
        f"{len(sentences)} validation sentences, {tokens} tokens, eval batch "
        f"{cfg.eval.batch_size}, {torch.get_num_threads()} threads, CPU: {cpu_description()}"
    )
    print(f"{'part':<40} {'seconds':>8}")
    print(f"{'the encoder alone (the floor)':<40} {encoder_seconds:>8.2f}")
    print(f"{'forward passes':<40} {forward_seconds:>8.2f}")
    print(
        f"{'scoring (evaluate() less the forward)':<40} {evaluate_seconds - forward_seconds:>8.2f}"
    )
    print(f"{'evaluate() in all':<40} {evaluate_seconds:>8.2f}")
    for name, function in parts.items():
        print(f"{name:<40} {fastest(function)[0]:>8.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
