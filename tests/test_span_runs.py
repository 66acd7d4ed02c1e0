"""The span head with the rest of training: windows (a mention across a window's kept edge
is scored from the window that holds it whole, in evaluation and in predict), document
context with data-parallel processes, and bf16 autocast."""

import json
import math
from contextlib import nullcontext

import pytest
import torch

WINDOW = 12  # subwords: most of the nested demo's sentences are cut into windows


def train_windowed_span_run(root, window: int) -> dict:
    """A span head (nested decoding) trained on the synthetic nested corpus with a model
    window of `window` subwords, in `root/run`; returns its metrics."""
    from bert_pos.data.nested_demo import write_nested_demo
    from bert_pos.train import train
    from tests.helpers import compose_config
    from tests.test_span_head import NESTED

    corpus = write_nested_demo(root / "data", {"train": 800, "validation": 100, "test": 100}, 0)
    overrides = NESTED + [
        f"data.dir={corpus}",
        "model.head=span",
        "model.span_decode=nested",
        f"model.random_init.max_position_embeddings={window}",
    ]
    return train(compose_config(overrides), root / "run")


def edge_mentions(records: list[dict], tokenizer, window: int) -> tuple[int, int, int]:
    """Of `predictions.jsonl`'s records: how many sentences are windowed, how many gold
    mentions cross a window's kept edge (their words kept by two windows), and how many of
    those were predicted."""
    from bert_pos.data.encoding import subword_counts, word_windows

    windowed = crossing = found = 0
    for record in records:
        word_ids = tokenizer(record["tokens"], is_split_into_words=True).word_ids()
        if len(word_ids) <= window:
            continue
        windowed += 1
        counts = subword_counts(word_ids, len(record["tokens"]))
        cuts = [keep_start for _, _, keep_start, _ in word_windows(counts, window - 2)][1:]
        predicted = {tuple(mention) for mention in record["predicted"]}
        for start, end, kind in record["gold"]:
            if any(start < cut < end for cut in cuts):
                crossing += 1
                found += (start, end, kind) in predicted
    return windowed, crossing, found


@pytest.mark.slow
def test_mentions_across_a_window_edge_are_found_whole(tmp_path):
    from transformers import AutoTokenizer

    from bert_pos.inference.loading import load_trained
    from bert_pos.inference.tagging import tag_tasks

    train_windowed_span_run(tmp_path, WINDOW)
    predictions = tmp_path / "run" / "eval" / "test" / "predictions.jsonl"
    written = [json.loads(line) for line in predictions.read_text().splitlines()]
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "run" / "tokenizer")
    _, crossing, found = edge_mentions(written, tokenizer, WINDOW)
    # no window's own words hold these mentions; before windows read past their kept words,
    # none of them was ever predicted
    assert crossing >= 10 and found / crossing >= 0.8, (found, crossing)

    # predict decodes each sentence from all its windows, as evaluation does
    trained = load_trained(tmp_path / "run" / "model")
    mentions = []
    tag_tasks(
        trained.model,
        trained.tokenizer,
        [record["tokens"] for record in written],
        [trained.label_names],
        16,
        torch.device("cpu"),
        nullcontext(),
        mentions,
    )
    assert [[[a, b, kind] for a, b, kind, _ in sentence] for sentence in mentions] == [
        record["predicted"] for record in written
    ]


@pytest.mark.slow
def test_two_processes_with_document_context_train_a_span_head_as_one(tmp_path):
    from tests.test_distributed import RECIPE, one_and_two_processes

    recipe = RECIPE + [
        "model.head=span",
        "optim.head_lr=1e-2",
        "data.context=document",
        "data.context_subwords=48",
        "optim.lr=1e-3",
    ]
    single, two = one_and_two_processes(recipe, tmp_path)
    for ours, theirs in zip(single["epochs"], two["epochs"], strict=True):
        assert theirs["val/loss"] == pytest.approx(ours["val/loss"], rel=1e-4)
        for key in ("val/f1", "val/precision", "val/recall"):
            assert theirs[key] == ours[key], key
    written = [
        (tmp_path / run / "eval" / "validation" / "predictions.jsonl").read_text()
        for run in ("one", "two")
    ]
    assert written[0] == written[1] and '"predicted": [[' in written[0]


@pytest.mark.slow
def test_a_span_head_trains_under_bf16_autocast(tmp_path):
    from bert_pos.train import train
    from tests.helpers import TINY_DEMO_OVERRIDES, compose_config

    overrides = ["model.head=span", "optim.head_lr=1e-2", "precision=bf16", "epochs=2"]
    rows = train(compose_config(TINY_DEMO_OVERRIDES + overrides + ["device=cpu"]), tmp_path)
    rows = rows["epochs"]
    assert all(math.isfinite(row["val/loss"]) for row in rows)
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]
