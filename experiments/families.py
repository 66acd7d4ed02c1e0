"""Every encoder family on the demo corpus: trains, exports, matches the pipeline, windows,
document context, CRF. Tiny random models (2 layers, 64 wide) with vocabularies of each
family's kind built from the training words; prints a Markdown table.

    python experiments/families.py [epochs] [families...]     # from the repository root

Per family: a run of sentences alone (val F1 of the best checkpoint), its export loaded by
`AutoModelForTokenClassification` (largest logit difference from bert_pos's), the spans of
`pipeline(aggregation_strategy="first")` against `bert_pos.predict`'s on the validation
sentences whose words are single pipeline words, a 310-word sentence tagged whole in windows
(words tagged / words); a run with document context (val F1); and a run with the CRF head
(val F1; whether its export predicts exactly what evaluation scored on test).
"""

import logging
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bert_pos.data.conll import read_conll  # noqa: E402
from bert_pos.inference.loading import load_trained  # noqa: E402
from bert_pos.inference.tagging import tag_sentences  # noqa: E402
from bert_pos.scoring.predictions import read_predictions  # noqa: E402
from bert_pos.train import train  # noqa: E402
from tests.helpers import (  # noqa: E402
    FAMILIES,
    SENTENCES,
    compose_config,
    export_logits,
    pipeline_spans,
    predicted_spans,
    simple_sentences,
)

SHAPE = [
    "model.random_init.hidden_size=64",
    "model.random_init.intermediate_size=128",
    "data.cache_dir=null",
]


def pipeline_parity(run_dir: Path, trained) -> str:
    """Sentences whose pipeline spans equal bert_pos.predict's, of the simple ones."""
    from transformers import pipeline

    tagger = pipeline(
        "token-classification", model=str(run_dir / "model"), aggregation_strategy="first"
    )
    texts = simple_sentences(run_dir / "demo_corpus" / "validation.txt")
    same = sum(
        ours == pipeline_spans(tagger, text)
        for text, ours in zip(texts, predicted_spans(trained, texts))
    )
    return f"{same}/{len(texts)}"


def family_row(model_type: str, epochs: int, folder: Path) -> str:
    started = time.perf_counter()
    common = ["+experiment=demo", f"model.random_init.model_type={model_type}", f"epochs={epochs}"]
    run_dir = folder / model_type
    metrics = train(compose_config(common + SHAPE), run_dir)
    trained = load_trained(run_dir / "model")
    ours, theirs = export_logits(trained, run_dir / "model", SENTENCES[:5])
    difference = (ours - theirs).abs().max().item()
    long_sentence = [w for sentence in SENTENCES for w in sentence] * 5
    (tags,) = tag_sentences(
        trained.model,
        trained.tokenizer,
        [long_sentence],
        trained.label_names,
        4,
        torch.device("cpu"),
        nullcontext(),
    )
    windows = f"{sum(p > 0 for _, p in tags)}/{len(long_sentence)}"
    parity = pipeline_parity(run_dir, trained)

    context = train(
        compose_config(common + SHAPE + ["data.context=document"]), folder / f"{model_type}_context"
    )
    crf_dir = folder / f"{model_type}_crf"
    crf_metrics = train(compose_config(common + SHAPE + ["model.head=crf"]), crf_dir)
    crf = load_trained(crf_dir / "model")
    test = read_conll(crf_dir / "demo_corpus" / "test.txt", 3, None)
    tagged = tag_sentences(
        crf.model,
        crf.tokenizer,
        [s.words for s in test],
        crf.label_names,
        16,
        torch.device("cpu"),
        nullcontext(),
    )
    scored = read_predictions(crf_dir / "eval" / "test" / "predictions.txt").predicted
    crf_same = [[tag for tag, _ in sentence] for sentence in tagged] == scored
    seconds = time.perf_counter() - started
    return (
        f"| {model_type} | {metrics['best']['val/f1']:.4f} | {difference:.1e} | {parity} | "
        f"{windows} | {context['best']['val/f1']:.4f} | {crf_metrics['best']['val/f1']:.4f}, export {'=' if crf_same else '≠'} "
        f"evaluation | {seconds:.0f} |"
    )


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    families = sys.argv[2:] or FAMILIES
    print(
        f"demo corpus (3,000 / 500 / 500 sentences), {epochs} epochs, lr 1e-3, CPU "
        f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads\n"
    )
    print(
        "| family | val F1 | export: max logit difference | pipeline spans = predict | "
        "310-word sentence tagged | document context: val F1 | CRF: val F1 | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for model_type in families:
            print(family_row(model_type, epochs, Path(folder)), flush=True)


if __name__ == "__main__":
    main()
