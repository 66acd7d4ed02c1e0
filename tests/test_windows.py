"""Sentences longer than the model's window: trained on and scored whole, through
overlapping windows (`word_windows`) stitched back by `evaluate`."""

import json
import logging
import math
from contextlib import nullcontext

import pytest
import torch
from datasets import Dataset, DatasetDict

from bert_pos.data.batching import build_dataloaders
from bert_pos.data.encoding import tokenize_splits, word_windows
from bert_pos.data.labels import NER_LABELS, begin_to_inside_map
from bert_pos.inference.tagging import tag_sentences
from bert_pos.scoring.scorer import evaluate
from tests.helpers import (
    ID,
    SENTENCES,
    TINY_DEMO_OVERRIDES,
    FixedTagger,
    compose_config,
    example,
    loader_for,
)

CONTINUATION = begin_to_inside_map(NER_LABELS)
WINDOW = 64  # subwords: TINY_BERT's max_position_embeddings


def long_sentence(count: int = 600) -> list[str]:
    return ("The European Commission said on Thursday it disagreed with Germany .".split() * 60)[
        :count
    ]


def tag_across_cut(words, tokenizer, entity_length=6):
    """O tags but for one ORG entity across the first kept-range boundary of the windows."""
    counts = [len(tokenizer.tokenize(word)) for word in words]
    windows = word_windows(counts, WINDOW - 2)
    assert len(windows) > 2
    cut = windows[1][2]  # the first word kept from the second window
    tags = ["O"] * len(words)
    first = cut - entity_length // 2
    tags[first : first + entity_length] = ["B-ORG"] + ["I-ORG"] * (entity_length - 1)
    return tags


def splits_of(sentences: list[tuple[list[str], list[str]]]) -> DatasetDict:
    data = {
        "tokens": [words for words, _ in sentences],
        "tags": [[ID[tag] for tag in tags] for _, tags in sentences],
        "document_id": [0] * len(sentences),
        "line": list(range(1, len(sentences) + 1)),
    }
    return DatasetDict({"validation": Dataset.from_dict(data)})


def test_600_word_sentence_is_scored_whole(tiny_model, tokenizer, caplog):
    words = long_sentence()
    tags = tag_across_cut(words, tokenizer)
    short = [(s, ["O"] * len(s)) for s in SENTENCES[:3]]
    short[1] = (short[1][0], ["B-PER", "I-PER"])
    sentences = [short[0], (words, tags), *short[1:]]  # the long one is not first
    with caplog.at_level(logging.INFO, logger="bert_pos.data"):
        tokenized = tokenize_splits(splits_of(sentences), tokenizer, "first", CONTINUATION, WINDOW)
    windows = len(tokenized["validation"]) - (len(sentences) - 1)
    assert windows > 2
    assert (
        f"validation: 1 sentences longer than {WINDOW} subwords, tagged in {windows} "
        "overlapping windows"
    ) in caplog.text
    loader = build_dataloaders(tokenized, 4, 4, False, tokenizer.pad_token_id, 8, 0, 0, False)
    scores, predicted = evaluate(
        tiny_model,
        loader["validation"],
        NER_LABELS,
        True,
        "word",
        torch.device("cpu"),
        nullcontext(),
    )

    assert [len(p) for p in predicted] == [len(words) for words, _ in sentences]
    assert len(predicted[1]) == 600
    # accuracy counts every word of every sentence, all 600 of the long one included
    gold = [tag for _, sentence_tags in sentences for tag in sentence_tags]
    right = sum(g == p for g, p in zip(gold, (tag for p in predicted for tag in p)))
    assert scores["accuracy"] == pytest.approx(right / len(gold))
    # the ORG entity across the window boundary is one gold entity, not two halves
    assert scores["per_type"]["ORG"]["support"] == 1
    assert scores["support"] == 2  # with the PER of a short sentence
    # the same windows as predict: each word gets the tag its keeping window gives it
    tagged = tag_sentences(
        tiny_model, tokenizer, [words], NER_LABELS, 8, torch.device("cpu"), nullcontext()
    )[0]
    assert predicted[1] == [tag for tag, _ in tagged]


def test_subword_level_scores_each_labelled_subword_once(tiny_model, tokenizer):
    words = long_sentence()
    tags = tag_across_cut(words, tokenizer)
    for strategy in ("first", "all"):
        tokenized = tokenize_splits(
            splits_of([(words, tags)]), tokenizer, strategy, CONTINUATION, WINDOW
        )
        whole = tokenize_splits(splits_of([(words, tags)]), tokenizer, strategy, CONTINUATION, 4096)
        labelled = sum(label != -100 for label in whole["validation"][0]["labels"])
        loader = build_dataloaders(tokenized, 4, 4, False, tokenizer.pad_token_id, 8, 0, 0, False)
        scores, predicted = evaluate(
            tiny_model,
            loader["validation"],
            NER_LABELS,
            True,
            "subword",
            torch.device("cpu"),
            nullcontext(),
        )
        assert len(predicted[0]) == 600
        assert scores["per_type"]["ORG"]["support"] == 1
        assert labelled >= 600 and math.isfinite(scores["loss"])


def conll_file(path, sentences):
    lines = ["-DOCSTART- -X- -X- O", ""]
    for words, tags in sentences:
        lines += [f"{word} NN O {tag}" for word, tag in zip(words, tags)] + [""]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_training_and_evaluation_on_a_600_word_sentence(tmp_path):
    """The real training path, with a model window of 64 subwords: the long sentence is
    trained on (finite loss) and every one of its words is predicted and scored."""
    from transformers import AutoTokenizer

    from bert_pos.train import train

    words = long_sentence()
    # every word of the long sentence is frequent, so one subword each: windows of 62 words
    tags = ["O"] * 600
    tags[40:52] = ["B-ORG"] + ["I-ORG"] * 11  # across the first boundary, word 46
    short = [
        (["Peter", "Blackburn", "said", "."], ["B-PER", "I-PER", "O", "O"]),
        (["Germany", "'s", "representative", "said", "."], ["B-LOC", "O", "O", "O", "O"]),
        (["The", "European", "Union", "said", "."], ["O", "B-ORG", "I-ORG", "O", "O"]),
    ]
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    conll_file(data_dir / "train.txt", short * 10 + [(words, tags)])
    conll_file(data_dir / "validation.txt", [short[0], (words, tags), *short[1:]])
    cfg = compose_config(
        TINY_DEMO_OVERRIDES
        + [
            f"data.dir={data_dir}",
            "data.test_file=null",
            "data.batch_size=4",
            "epochs=1",
            f"model.random_init.max_position_embeddings={WINDOW}",
        ]
    )
    run_dir = tmp_path / "run"
    metrics = train(cfg, run_dir)

    assert all(
        math.isfinite(row["train/loss"]) and math.isfinite(row["val/loss"])
        for row in metrics["epochs"]
    )
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "tokenizer")
    counts = [len(tokenizer.tokenize(word)) for word in words]
    assert sum(counts) + 2 > WINDOW
    cuts = [keep_start for _, _, keep_start, _ in word_windows(counts, WINDOW - 2)]
    assert any(40 < cut < 52 for cut in cuts)  # the entity does cross a window boundary

    blocks = (run_dir / "eval" / "validation" / "predictions.txt").read_text().split("\n\n")
    rows = [[line.split() for line in block.splitlines()] for block in blocks]
    rows = [r for r in rows if r and r[0][0] != "-DOCSTART-"]
    assert [len(r) for r in rows] == [4, 600, 5, 5]
    assert [row[0] for row in rows[1]] == words and [row[1] for row in rows[1]] == tags
    scores = json.loads((run_dir / "eval" / "validation" / "metrics.json").read_text())
    assert scores["per_type"]["ORG"]["support"] == 2  # the long one once, and the Union
    assert scores["support"] == 4

    # predict decodes the long sentence as evaluation did, window by window, also by Viterbi
    from contextlib import nullcontext

    from bert_pos.inference.loading import load_trained
    from bert_pos.inference.tagging import tag_sentences

    for decode in ("argmax", "constrained"):
        trained = load_trained(run_dir / "model", decode=decode)
        (tagged,) = tag_sentences(
            trained.model,
            trained.tokenizer,
            [words],
            trained.label_names,
            4,
            torch.device("cpu"),
            nullcontext(),
        )
        scored = evaluate_long_sentence(trained, run_dir, words, tags)
        assert [tag for tag, _ in tagged] == scored, decode
    predicted = [[row[2] for row in r] for r in rows]
    gold = [[row[1] for row in r] for r in rows]
    right = sum(g == p for gs, ps in zip(gold, predicted) for g, p in zip(gs, ps))
    assert scores["accuracy"] == pytest.approx(right / 614)


def test_windows_are_stitched_back_in_order():
    # sentence 0 in two windows: words 0-2 kept from the first, 3-4 from the second, whose
    # input also holds word 2 as context (unlabelled). The B-LOC I-LOC entity crosses the cut.
    first = example(
        ["O", "O", "B-PER", "B-LOC", "O"],
        [-100, ID["O"], ID["B-PER"], ID["B-LOC"], -100],
        [1, 2, 3],
        ["O", "B-PER", "B-LOC"],
    )
    second = example(
        ["O", "B-LOC", "I-LOC", "O", "O"],
        [-100, -100, ID["I-LOC"], ID["O"], -100],
        [2, 3],
        ["I-LOC", "O"],
    )
    other = example(["O", "B-ORG", "O"], [-100, ID["B-ORG"], -100], [1], ["B-ORG"])
    first.update(sentence=0, first_word=0)
    second.update(sentence=0, first_word=3)
    other.update(sentence=1, first_word=0)
    for order in ([second, other, first], [first, second, other], [other, first, second]):
        for level in ("word", "subword"):
            scores, predicted = evaluate(
                FixedTagger(),
                loader_for(order),
                NER_LABELS,
                True,
                level,
                torch.device("cpu"),
                nullcontext(),
            )
            assert predicted == [["O", "B-PER", "B-LOC", "I-LOC", "O"], ["B-ORG"]]
            assert scores["support"] == 3 and scores["f1"] == pytest.approx(1.0)
            assert scores["accuracy"] == pytest.approx(1.0)


def test_a_gap_or_overlap_between_windows_is_an_error():
    first = example(["O", "O", "O"], [-100, ID["O"], -100], [1], ["O"])
    first.update(sentence=0, first_word=0)
    for misplaced in (2, 0):  # word 1 missing; word 0 given twice
        second = example(["O", "O", "O"], [-100, ID["O"], -100], [1], ["O"])
        second.update(sentence=0, first_word=misplaced)
        with pytest.raises(ValueError, match="sentence 0 has a piece from word"):
            evaluate(
                FixedTagger(),
                loader_for([first, second]),
                NER_LABELS,
                True,
                "word",
                torch.device("cpu"),
                nullcontext(),
            )


def evaluate_long_sentence(trained, run_dir, words, tags):
    """Evaluation's predicted tags for one sentence, through the training encoder."""
    from contextlib import nullcontext

    from datasets import Dataset, DatasetDict

    from bert_pos.data.batching import build_dataloaders
    from bert_pos.data.labels import begin_to_inside_map
    from bert_pos.modeling.encoders import max_length_of
    from bert_pos.scoring.scorer import evaluate

    ids = {label: i for i, label in enumerate(trained.label_names)}
    splits = DatasetDict(
        {
            "validation": Dataset.from_dict(
                {
                    "tokens": [words],
                    "tags": [[ids[t] for t in tags]],
                    "document_id": [0],
                    "line": [1],
                }
            )
        }
    )
    encoded = tokenize_splits(
        splits,
        trained.tokenizer,
        "first",
        begin_to_inside_map(trained.label_names),
        max_length_of(trained.tokenizer, trained.model.config),
    )
    loader = build_dataloaders(
        encoded, 4, 4, False, trained.tokenizer.pad_token_id, 8, 0, 0, False
    )["validation"]
    _, predicted = evaluate(
        trained.model, loader, trained.label_names, True, "word", torch.device("cpu"), nullcontext()
    )
    return predicted[0]
