"""The exported model folder (bert_pos/inference/export.py): the Hugging Face layout and logits,
the pipeline's entities against bert_pos's, the model card, and the README's snippet.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

from bert_pos.inference.loading import load_trained
from bert_pos.inference.tagging import entity_spans, tag_sentences
from tests.helpers import spaced_words

SENTENCES = [
    "Lovigal Holdings signed a deal with Vifenport Bank in Isburg .",
    "Police in Kasaburg arrested Renmi Tordun on Tuesday .",
    "Prices rose sharply last week .",
]


@pytest.mark.slow
def test_export_has_the_hugging_face_layout(trained_run):
    run_dir, metrics = trained_run
    model_dir = run_dir / "model"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    assert config["id2label"]["1"] == "B-PER" and config["label2id"]["I-MISC"] == 8
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "tokenizer.json").is_file()
    # the export holds the best checkpoint's weights
    exported = load_file(model_dir / "model.safetensors")
    best = load_file(run_dir / "checkpoints" / "best" / "model.safetensors")
    assert exported.keys() == best.keys()
    assert all(torch.equal(exported[k], best[k]) for k in best)


@pytest.mark.slow
def test_hugging_face_model_gives_our_logits(trained_run):
    model_dir = trained_run[0] / "model"
    ours = load_trained(model_dir).model
    theirs = AutoModelForTokenClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = theirs(**batch).logits
        actual = ours(batch["input_ids"], batch["attention_mask"])
    mask = batch["attention_mask"].bool()
    torch.testing.assert_close(actual[mask], expected[mask], atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_pipeline_entities_match_bert_pos_predict(trained_run):
    model_dir = trained_run[0] / "model"
    # aggregation "simple" works on the export as on any hub model
    simple = pipeline("token-classification", model=str(model_dir), aggregation_strategy="simple")
    assert any(simple(sentence) for sentence in SENTENCES)
    # "first" takes each word's tag from its first subword, as bert_pos does: same entities
    first = pipeline("token-classification", model=str(model_dir), aggregation_strategy="first")
    trained = load_trained(model_dir)
    model, label_names = trained.model, trained.label_names
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    words = [spaced_words(sentence) for sentence in SENTENCES]
    tagged = tag_sentences(
        model,
        tokenizer,
        [[w for w, _, _ in ws] for ws in words],
        label_names,
        8,
        torch.device("cpu"),
        torch.autocast("cpu", enabled=False),
    )
    compared = 0
    for sentence, sentence_words, sentence_tags in zip(SENTENCES, words, tagged):
        ours = entity_spans(sentence, sentence_words, sentence_tags)
        theirs = first(sentence)
        assert [(e["type"], e["start"], e["end"]) for e in ours] == [
            (e["entity_group"], e["start"], e["end"]) for e in theirs
        ]
        for mine, hf in zip(ours, theirs):
            assert mine["score"] == pytest.approx(float(hf["score"]), abs=1e-4)
        compared += len(ours)
    assert compared > 0


@pytest.mark.slow
def test_model_card_reports_recipe_and_results(trained_run):
    run_dir, metrics = trained_run
    card = (run_dir / "model" / "README.md").read_text()
    for expected in [
        "learning_rate: 0.003",
        "train_batch_size: 16",
        "seed: 42",
        "optimizer: AdamW with betas=(0.9,0.999) and epsilon=1e-08",
        "lr_scheduler_type: linear",
        "num_epochs: 4",
        "precision: fp32",
        "| Training Loss | Epoch | Step | Validation Loss | Precision | Recall | F1 | Accuracy |",
        "### Test results",
        "### Framework versions",
        "- Pytorch ",
    ]:
        assert expected in card
    assert f"- F1: {metrics['test']['f1']:.4f}" in card
    assert card.count("\n| ") == len(metrics["epochs"]) + 1


def python_block_after(markdown: str, heading: str) -> str:
    section = markdown.split(heading, 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.slow
def test_the_model_cards_pipeline_snippet_returns_bert_pos_spans(trained_run, capsys):
    """The card's snippet, run as it stands: its tagger gives bert_pos.predict's entity spans
    (on sentences whose words are single pipeline words), where "simple" would not."""
    from tests.helpers import predicted_spans, simple_sentences

    run_dir, _ = trained_run
    snippet = python_block_after((run_dir / "model" / "README.md").read_text(), "## How to use")
    namespace = {}
    exec(snippet, namespace)  # noqa: S102  the card's own code
    assert "entity_group" in capsys.readouterr().out
    tagger = namespace["tagger"]
    trained = load_trained(run_dir / "model")
    texts = simple_sentences(run_dir / "demo_corpus" / "test.txt", 60)
    for text, ours in zip(texts, predicted_spans(trained, texts)):
        theirs = [(e["entity_group"], e["start"], e["end"]) for e in tagger(text)]  # as returned
        assert ours == theirs, text


def test_the_readme_snippet_is_the_cards():
    from tests.helpers import ROOT

    readme = (ROOT / "README.md").read_text()
    assert (
        'aggregation_strategy="first"' in readme and 'aggregation_strategy="simple",' not in readme
    )


def test_the_readme_demo_sentence_speaks_the_demo_corpus(tmp_path):
    """The predict example must be in the demo corpus's style: every word one the demo model
    has seen in training (on "Peter Blackburn visited Paris ." it guessed `visited I-PER`)."""
    from bert_pos.data.conll import read_conll
    from bert_pos.data.demo_corpus import write_demo_corpus
    from tests.helpers import ROOT

    readme = (ROOT / "README.md").read_text()
    sentence = readme.split('echo "', 1)[1].split('"', 1)[0]
    folder = write_demo_corpus(tmp_path, {"train": 3000, "validation": 10, "test": 10}, seed=0)
    seen = {w for s in read_conll(Path(folder) / "train.txt", 3, None) for w in s.words}
    assert [word for word in sentence.split() if word not in seen] == []


@pytest.mark.parametrize("pooling", ["mean", "first_last"])
def test_a_pooled_export_is_refused_by_hugging_face_and_loaded_by_bert_pos(
    tiny_model, tokenizer, tmp_path, pooling
):
    from bert_pos.data.labels import NER_LABELS
    from bert_pos.inference.export import export_model
    from bert_pos.modeling.tagger import build_model
    from tests.helpers import TINY_BERT

    torch.manual_seed(0)
    model = build_model(9, 0.0, random_init=TINY_BERT, vocab_size=len(tokenizer), pooling=pooling)
    export_model(model, tokenizer, NER_LABELS, tmp_path / "model", "card")
    with pytest.raises(OSError, match="model.safetensors"):
        AutoModelForTokenClassification.from_pretrained(tmp_path / "model")
    loaded = load_trained(tmp_path / "model").model
    assert loaded.pooling == pooling
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)


@pytest.mark.slow
def test_every_evaluation_writes_an_interval_and_an_error_analysis(trained_run):
    run_dir, metrics = trained_run
    written = json.loads((run_dir / "eval" / "test" / "metrics.json").read_text())
    overall = written["bootstrap"]["scores"]["overall"]
    low, high = overall["interval"]
    assert (
        overall["score"] == pytest.approx(metrics["test"]["f1"]) and low <= overall["score"] <= high
    )
    assert low < high  # a real spread over resampled sentences
    errors = json.loads((run_dir / "eval" / "test" / "errors.json").read_text())
    assert "seen" in json.dumps(errors)  # split by entities seen in training
    assert (run_dir / "eval" / "validation" / "errors.md").is_file()
    card = (run_dir / "model" / "README.md").read_text()
    assert f"[{low:.4f}, {high:.4f}]" in card
