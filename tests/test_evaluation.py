"""Scoring a tagger (bert_pos/scoring/scorer.py, predictions.py): word and subword levels,
predictions in dataset order, the predictions file round trip, the confusion matrix, bf16,
and gold labels the model cannot predict.
"""

import math
from contextlib import nullcontext

import pytest
import torch

from bert_pos.data.batching import PaddingCollator
from bert_pos.data.labels import NER_LABELS
from bert_pos.data.tasks import Task
from bert_pos.scoring.scorer import evaluate
from tests.helpers import ID, FixedTagger, example, loader_for


def run(examples, level, label_names=NER_LABELS, span_task=True):
    return evaluate(
        FixedTagger(),
        loader_for(examples),
        label_names,
        span_task,
        level,
        torch.device("cpu"),
        nullcontext(),
    )


def test_word_level_scores_first_subword_and_unaligned_words_as_O():
    # [CLS] Peter Black ##burn said [SEP]; gold: B-PER I-PER O; label strategy `all`.
    # The model gets Black right and ##burn wrong: word level counts the word as right.
    ex1 = example(
        ["O", "B-PER", "I-PER", "O", "O", "O"],
        [-100, ID["B-PER"], ID["I-PER"], ID["I-PER"], ID["O"], -100],
        word_starts=[1, 2, 4],
        word_tags=["B-PER", "I-PER", "O"],
    )
    # a word the tokenizer dropped (start -1) with gold B-LOC: predicted O, so a missed entity
    ex2 = example(
        ["O", "B-ORG", "O"],
        [-100, ID["B-ORG"], -100],
        word_starts=[1, -1],
        word_tags=["B-ORG", "B-LOC"],
    )
    scores, predictions = run([ex1, ex2], "word")
    assert predictions == [["B-PER", "I-PER", "O"], ["B-ORG", "O"]]
    assert scores["accuracy"] == pytest.approx(4 / 5)
    assert scores["precision"] == pytest.approx(1.0)
    assert scores["recall"] == pytest.approx(2 / 3)


def test_subword_level_scores_every_labelled_subword():
    ex1 = example(
        ["O", "B-PER", "I-PER", "O", "O", "O"],
        [-100, ID["B-PER"], ID["I-PER"], ID["I-PER"], ID["O"], -100],
        word_starts=[1, 2, 4],
        word_tags=["B-PER", "I-PER", "O"],
    )
    scores, predictions = run([ex1], "subword")
    assert predictions == [["B-PER", "I-PER", "O"]]  # predictions stay one per word
    assert scores["accuracy"] == pytest.approx(3 / 4)  # 4 labelled subwords, ##burn wrong
    assert scores["f1"] == pytest.approx(0.0)  # span B-PER I-PER vs gold B-PER I-PER I-PER


def test_predictions_come_back_in_dataset_order_and_loss_is_per_labelled_token():
    short = example(["O", "B-PER", "O"], [-100, ID["B-PER"], -100], [1], ["B-PER"])
    long = example(
        ["O", "B-LOC", "O", "O"], [-100, ID["B-LOC"], ID["O"], -100], [1, 2], ["B-LOC", "O"]
    )
    collate = PaddingCollator(0, 1)
    longest_first = torch.utils.data.DataLoader(
        [short, long], batch_sampler=[[1], [0]], collate_fn=collate
    )
    scores, predictions = evaluate(
        FixedTagger(), longest_first, NER_LABELS, True, "word", torch.device("cpu"), nullcontext()
    )
    assert predictions == [["B-PER"], ["B-LOC", "O"]]
    # logits are 10 on the right label, 0 elsewhere: loss = log(e^10 + 8) - 10 per token
    assert scores["loss"] == pytest.approx(math.log(math.exp(10) + 8) - 10, rel=1e-3)


def test_predictions_file_round_trip_keeps_documents(tmp_path):
    from bert_pos.scoring.predictions import read_predictions, write_predictions

    sentences = [["EU", "rejects"], ["Peter"], ["BRUSSELS"]]
    gold = [["B-ORG", "O"], ["B-PER"], ["B-LOC"]]
    predicted = [["B-ORG", "O"], ["O"], ["B-LOC"]]
    write_predictions(tmp_path / "p.txt", sentences, gold, predicted, [0, 0, 1])
    text = (tmp_path / "p.txt").read_text()
    assert text.startswith("-DOCSTART- O O\n\nEU B-ORG B-ORG\nrejects O O\n\nPeter B-PER O\n\n")
    assert text.count("-DOCSTART-") == 2
    read = read_predictions(tmp_path / "p.txt")
    assert (read.gold, read.predicted) == (gold, predicted)


def test_confusion_matrix_counts():
    from bert_pos.scoring.details import confusion_matrix

    counts = confusion_matrix([["B-PER", "O", "O"]], [["B-LOC", "O", "<none>"]], NER_LABELS)
    assert counts[ID["B-PER"], ID["B-LOC"]] == 1 and counts[ID["O"], ID["O"]] == 1
    assert counts.sum() == 2


def test_bf16_evaluation_agrees_with_fp32(tiny_model, tokenizer):
    """CPU bf16 autocast scores like fp32 on a tiny model: logits within bf16's precision,
    the same predicted word tags almost everywhere, and the same loss to two digits."""
    from tests.helpers import SENTENCES

    generator = torch.Generator().manual_seed(0)
    examples = []
    for words in SENTENCES:
        encoding = tokenizer(words, is_split_into_words=True)
        starts = [encoding.word_ids().index(w) for w in range(len(words))]
        tags = torch.randint(0, len(NER_LABELS), (len(words),), generator=generator).tolist()
        labels = [-100] * len(encoding["input_ids"])
        for start, tag in zip(starts, tags):
            labels[start] = tag
        examples.append(
            {
                "input_ids": encoding["input_ids"],
                "labels": labels,
                "word_starts": starts,
                "tags": tags,
            }
        )
    loader = loader_for(examples, batch_size=4)
    cpu = torch.device("cpu")
    fp32, fp32_tags = evaluate(tiny_model, loader, NER_LABELS, True, "word", cpu, nullcontext())
    bf16, bf16_tags = evaluate(
        tiny_model,
        loader,
        NER_LABELS,
        True,
        "word",
        cpu,
        torch.autocast("cpu", dtype=torch.bfloat16),
    )
    batch = next(iter(loader))
    with torch.inference_mode():
        logits32 = tiny_model(batch["input_ids"], batch["attention_mask"])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits16 = tiny_model(batch["input_ids"], batch["attention_mask"]).float()
    assert torch.allclose(logits32, logits16, atol=0.05, rtol=0.02)
    assert bf16["loss"] == pytest.approx(fp32["loss"], rel=1e-2)
    same = sum(a == b for x, y in zip(fp32_tags, bf16_tags) for a, b in zip(x, y))
    assert same >= 0.95 * sum(len(x) for x in fp32_tags)
    assert bf16["accuracy"] == pytest.approx(fp32["accuracy"], abs=0.05)


# ---------------------------------------------------------------- gold the model cannot predict

# "Paris on 22 August": B-LOC O B-DATE I-DATE, where DATE is no label of the model (its words
# have word label IGNORE_INDEX) and "August" maps to no subword: [CLS] Paris on 22 [SEP].
UNSEEN_GOLD = [["B-LOC", "O", "B-DATE", "I-DATE"]]
UNSEEN_EXAMPLE = {
    "input_ids": [ID["O"], ID["B-LOC"], ID["O"], ID["O"], ID["O"]],  # FixedTagger's predictions
    "labels": [-100, ID["B-LOC"], ID["O"], -100, -100],
    "word_starts": [1, 2, 3, -1],
    "tags": [ID["B-LOC"], ID["O"], -100, -100],
}


@pytest.mark.parametrize("level, accuracy", [("word", 2 / 4), ("subword", 2 / 3)])
def test_a_gold_label_the_model_cannot_predict_is_scored_as_a_missed_entity(level, accuracy):
    scores, predictions = evaluate(
        FixedTagger(),
        loader_for([UNSEEN_EXAMPLE]),
        NER_LABELS,
        True,
        level,
        torch.device("cpu"),
        nullcontext(),
        gold=UNSEEN_GOLD,
    )
    # the last word is unaligned and unpredictable, and still one of the sentence's words
    assert predictions == [["B-LOC", "O", "O", "O"]]
    assert scores["accuracy"] == pytest.approx(accuracy)  # subword level: no August subword
    assert scores["precision"] == pytest.approx(1.0) and scores["recall"] == pytest.approx(0.5)
    assert scores["per_type"]["DATE"]["recall"] == 0.0
    assert scores["per_type"]["DATE"]["support"] == 1
    # no loss on the DATE words: cross-entropy over the two labelled subwords
    assert scores["loss"] == pytest.approx(math.log(math.exp(10) + 8) - 10, rel=1e-3)
    with pytest.raises(ValueError, match="gold label is IGNORE_INDEX, and no gold labels"):
        evaluate(
            FixedTagger(),
            loader_for([UNSEEN_EXAMPLE]),
            NER_LABELS,
            True,
            level,
            torch.device("cpu"),
            nullcontext(),
        )


def test_windows_name_unpredictable_gold_by_their_place_in_the_sentence():
    """Two windows of one sentence: the second one's unpredictable word is word 3."""
    first = {key: UNSEEN_EXAMPLE[key][:3] for key in ("input_ids", "labels")}
    first.update(word_starts=[1, 2], tags=[ID["B-LOC"], ID["O"]], sentence=0, first_word=0)
    second = {
        "input_ids": [ID["O"], ID["O"], ID["O"]],
        "labels": [-100, -100, -100],
        "word_starts": [1, -1],
        "tags": [-100, -100],
        "sentence": 0,
        "first_word": 2,
    }
    gold = [["B-LOC", "O", "B-DATE", "I-DATE"]]
    scores, predictions = evaluate(
        FixedTagger(),
        loader_for([second, first]),
        NER_LABELS,
        True,
        "word",
        torch.device("cpu"),
        nullcontext(),
        gold=gold,
    )
    assert predictions == [["B-LOC", "O", "O", "O"]]
    assert scores["per_type"]["DATE"]["support"] == 1 and scores["recall"] == pytest.approx(0.5)


def test_evaluate_split_writes_unpredictable_gold_and_gives_it_confusion_rows(tmp_path, caplog):
    from bert_pos.data.conll import Sentence
    from bert_pos.data.sources import sentences_dataset
    from bert_pos.scoring.details import evaluate_split

    sentence = Sentence(["Paris", "on", "22", "August"], UNSEEN_GOLD[0], 0, 1)
    sentences = sentences_dataset([sentence], NER_LABELS, "validation (v.txt)")
    assert "validation (v.txt): 1 word(s) have the gold label 'I-DATE'" in caplog.text
    assert sentences["tags"] == [UNSEEN_EXAMPLE["tags"]]
    scores, figures, _ = evaluate_split(
        FixedTagger(),
        loader_for([UNSEEN_EXAMPLE]),
        sentences,
        [Task("ner", NER_LABELS)],
        "word",
        "conlleval",
        torch.device("cpu"),
        nullcontext(),
        tmp_path,
        "validation",
    )
    assert (tmp_path / "predictions.txt").read_text() == (
        "-DOCSTART- O O\n\nParis B-LOC B-LOC\non O O\n22 B-DATE O\nAugust I-DATE O\n\n"
    )
    assert scores["per_type"]["DATE"]["support"] == 1
    rows = [label.get_text() for label in figures[""].axes[0].get_yticklabels()]
    assert rows == NER_LABELS + ["B-DATE", "I-DATE"]
    assert (tmp_path / "confusion_matrix.png").is_file()
