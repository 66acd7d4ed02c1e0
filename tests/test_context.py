"""Document context: neighbouring sentences fill each example, unlabelled."""

import json

import pytest
import torch
from datasets import Dataset, DatasetDict

from bert_pos.data.batching import PaddingCollator, build_dataloaders
from bert_pos.data.encoding import tokenize_splits
from bert_pos.data.labels import (
    IGNORE_INDEX,
    NER_LABELS,
    begin_to_inside_map,
    invalid_iob2_position,
)
from bert_pos.scoring.predictions import read_predictions
from bert_pos.scoring.scorer import evaluate
from tests.helpers import SENTENCES

# two documents: sentences 0-3 and 4-7; the third "document" (8-9) has unknown boundaries
DOCUMENTS = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]


def split_with_documents(document_ids=DOCUMENTS):
    tags = [
        [(i + w) % 3 and 1 or 0 for w in range(len(words))] for i, words in enumerate(SENTENCES)
    ]
    return DatasetDict(
        {
            "validation": Dataset.from_dict(
                {
                    "tokens": SENTENCES,
                    "tags": tags,
                    "document_id": document_ids,
                    "line": list(range(len(SENTENCES))),
                }
            )
        }
    )


def tokenized(tokenizer, context_subwords, document_ids=DOCUMENTS, max_length=64):
    splits = split_with_documents(document_ids)
    return tokenize_splits(
        splits, tokenizer, "first", begin_to_inside_map(NER_LABELS), max_length, context_subwords
    )["validation"]


@pytest.mark.parametrize("budget", [12, 24, 40])
def test_context_words_carry_no_labels_and_every_word_is_scored_once(tokenizer, budget):
    alone, in_context = tokenized(tokenizer, None), tokenized(tokenizer, budget)
    assert len(alone) == len(in_context) == len(SENTENCES)
    grew = 0
    for plain, wide in zip(alone, in_context, strict=True):
        assert len(wide["input_ids"]) <= max(budget, len(plain["input_ids"]))
        grew += len(wide["input_ids"]) > len(plain["input_ids"])
        # the same words, labels and tags, each at its own first subword
        assert wide["tags"] == plain["tags"] and wide["sentence"] == plain["sentence"]

        def labelled(example):
            pairs = zip(example["input_ids"], example["labels"], strict=True)
            return [(token, label) for token, label in pairs if label != IGNORE_INDEX]

        assert labelled(wide) == labelled(plain)
        for start, plain_start in zip(wide["word_starts"], plain["word_starts"], strict=True):
            assert wide["input_ids"][start] == plain["input_ids"][plain_start]
            assert wide["labels"][start] != IGNORE_INDEX
        # the target sentence sits whole inside, context around it is unlabelled
        offset = wide["word_starts"][0] - plain["word_starts"][0]
        inner = plain["input_ids"][1:-1]
        assert wide["input_ids"][1 + offset : 1 + offset + len(inner)] == inner
        context = [
            p
            for p in range(1, len(wide["input_ids"]) - 1)
            if not 1 + offset <= p < 1 + offset + len(inner)
        ]
        assert all(wide["labels"][p] == IGNORE_INDEX for p in context)
        assert all(wide["word_index"][p] == -1 for p in context)
    # every sentence with room got context (each has neighbours in its document)
    assert grew == sum(len(plain["input_ids"]) < budget for plain in alone) > 0


def test_context_stays_inside_the_document(tokenizer):
    in_context = tokenized(tokenizer, 64)
    alone = tokenized(tokenizer, None)
    inner = [example["input_ids"][1:-1] for example in alone]
    for sentence, example in enumerate(in_context):
        document = DOCUMENTS[sentence]
        same = [s for s, d in enumerate(DOCUMENTS) if d == document]
        # with room for all of it, the example is exactly its document's sentences in order
        expected = [i for s in same for i in inner[s]]
        assert example["input_ids"][1:-1] == expected


def test_unknown_document_boundaries_use_the_file_order_with_a_warning(tokenizer, caplog):
    in_context = tokenized(tokenizer, 64, document_ids=[-1] * len(SENTENCES))
    assert "document boundaries unknown" in caplog.text
    alone = tokenized(tokenizer, None)
    # sentence 3's context reaches into sentence 4 (another article in DOCUMENTS)
    assert len(in_context[3]["input_ids"]) == 64
    assert in_context[3]["input_ids"] != alone[3]["input_ids"]


def test_evaluation_in_context_scores_every_word_once(tokenizer, tiny_model):
    label_names = NER_LABELS
    for budget in (None, 24):
        examples = DatasetDict({"validation": tokenized(tokenizer, budget)})
        loader = build_dataloaders(examples, 4, 4, True, tokenizer.pad_token_id, 8, 0, 0, False)[
            "validation"
        ]
        scores, predicted = evaluate(
            tiny_model,
            loader,
            label_names,
            True,
            "word",
            torch.device("cpu"),
            torch.autocast("cpu", enabled=False),
        )
        assert [len(words) for words in predicted] == [len(words) for words in SENTENCES]
        assert scores["loss"] > 0


def test_collator_pads_the_word_index(tokenizer):
    examples = list(tokenized(tokenizer, 24))[:3]
    batch = PaddingCollator(tokenizer.pad_token_id, 8)(examples)
    assert batch["word_index"].shape == batch["input_ids"].shape
    assert (batch["word_index"][batch["attention_mask"] == 0] == -1).all()


@pytest.mark.slow
def test_a_run_in_document_context_is_evaluated_in_context_again(tmp_path):
    """Training and `bert_pos.evaluate` encode the same way: the CLI reproduces the run's
    best validation F1 (a sentence-level re-encoding would give another number), and
    constrained decoding on the same checkpoint is written apart."""
    from omegaconf import OmegaConf

    from bert_pos.train import train
    from tests.helpers import TINY_DEMO_OVERRIDES, compose_config, run_evaluate

    overrides = TINY_DEMO_OVERRIDES + ["data.context=document", "data.context_subwords=48"]
    cfg = compose_config(overrides)
    metrics = train(cfg, tmp_path)
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / ".hydra" / "config.yaml")
    run_evaluate(f"run_dir={tmp_path}", "split=validation", "batch_size=7")
    scores = json.loads((tmp_path / "eval" / "validation-best" / "metrics.json").read_text())
    assert scores["f1"] == pytest.approx(metrics["best"]["val/f1"], abs=1e-9)
    run_evaluate(f"run_dir={tmp_path}", "split=validation", "decode=constrained")
    constrained = tmp_path / "eval" / "validation-best-constrained" / "predictions.txt"
    predicted = read_predictions(constrained).predicted
    assert all(invalid_iob2_position(tags) is None for tags in predicted)
