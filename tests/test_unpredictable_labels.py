"""A label that only validation and test hold, through a real (tiny) training run: the model
cannot predict it, so it is no label of the model (head, id2label) and carries no loss, and it
is still scored as gold everywhere (scores, predictions.txt, the confusion matrix): each of its
entities a miss. How the splits carry it: bert_pos/data/sources.py."""

import json
import math

import pytest
from omegaconf import OmegaConf

from bert_pos.data.demo_corpus import write_demo_corpus
from bert_pos.train import train
from tests.helpers import TINY_DEMO_OVERRIDES, compose_config, run_evaluate


def corpus_with_a_type_absent_from_train(directory):
    """The demo corpus, its LOC entities renamed DATE in validation and test."""
    write_demo_corpus(directory, {"train": 120, "validation": 30, "test": 30}, seed=0)
    for split in ("validation", "test"):
        path = directory / f"{split}.txt"
        path.write_text(path.read_text().replace("-LOC\n", "-DATE\n"))
    return directory


def run_config(corpus, overrides: list[str]):
    """The tiny demo recipe, one epoch, on `corpus` with a label set read from its train file."""
    return compose_config(
        TINY_DEMO_OVERRIDES
        + [
            "data.demo_corpus=false",
            f"data.dir={corpus}",
            "data.task=entities",
            "data.label_column=3",
            "epochs=1",
            *overrides,
        ]
    )


def gold_and_predicted(predictions: str) -> list[tuple[str, str]]:
    rows = [line.split() for line in predictions.splitlines() if line.strip()]
    return [(row[1], row[2]) for row in rows if row[0] != "-DOCSTART-"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        ["data.label_strategy=first"],
        ["model.head=crf"],  # the CRF's chain skips the DATE words
        ["data.label_strategy=all"],  # continuation subwords of such words stay ignored
    ],
)
def test_training_with_a_type_only_validation_and_test_hold(tmp_path, caplog, overrides):
    corpus = corpus_with_a_type_absent_from_train(tmp_path / "corpus")
    run = tmp_path / "run"
    metrics = train(run_config(corpus, overrides), run)

    assert f"validation ({corpus / 'validation.txt'}): " in caplog.text
    assert "word(s) have the gold label 'B-DATE'" in caplog.text
    id2label = json.loads((run / "model" / "config.json").read_text())["id2label"]
    assert "B-DATE" not in id2label.values() and "B-LOC" in id2label.values()
    assert metrics["label_names"] == list(id2label.values())

    final = metrics["final"]
    assert math.isfinite(final["val/loss"]) and final["val/DATE/f1"] == 0.0
    for split in ("validation", "test"):
        pairs = gold_and_predicted((run / "eval" / split / "predictions.txt").read_text())
        dates = [predicted for gold, predicted in pairs if gold.endswith("-DATE")]
        assert dates and not any(tag.endswith("-DATE") for tag in dates)
    assert metrics["test"]["per_type"]["DATE"]["support"] > 0
    assert metrics["test"]["per_type"]["DATE"]["recall"] == 0.0


@pytest.mark.slow
def test_the_evaluate_command_scores_the_unseen_type_as_training_did(tmp_path):
    corpus = corpus_with_a_type_absent_from_train(tmp_path / "corpus")
    run = tmp_path / "run"
    cfg = run_config(corpus, [])
    metrics = train(cfg, run)
    (run / ".hydra").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    run_evaluate(f"run_dir={run}", "split=test")
    scores = json.loads((run / "eval" / "test-best" / "metrics.json").read_text())
    assert scores["f1"] == pytest.approx(metrics["test"]["f1"], abs=1e-9)
    assert scores["per_type"]["DATE"] == metrics["test"]["per_type"]["DATE"]
