"""Every encoder family through the same code: BERT, RoBERTa, XLM-R, DeBERTa-v2/v3, ELECTRA,
DistilBERT, ModernBERT, as tiny random models with tokenizers of their kind built offline."""

import json
from contextlib import nullcontext

import pytest
import torch

from bert_pos.data.conll import read_conll
from bert_pos.data.encoding import (
    bare_marker_ids,
    encode_sentences,
    special_token_counts,
    tokenize_splits,
)
from bert_pos.data.labels import NER_LABELS, begin_to_inside_map
from bert_pos.data.vocabularies import build_tokenizer
from bert_pos.modeling.encoders import TOKENIZER_KINDS, layer_depth, load_tokenizer
from bert_pos.modeling.tagger import build_model
from bert_pos.training.setup import special_ids
from tests.helpers import (
    FAMILIES,
    SENTENCES,
    TINY_BERT,
    TINY_DEMO_OVERRIDES,
    compose_config,
    export_logits,
    pipeline_spans,
    predicted_spans,
    simple_sentences,
)

WORDS = [["Peter", "Blackburn", "visited", "Paris", "."]] + SENTENCES  # the vocabulary's
UNSEEN = ["Peter", "Germanrepresentativecommission", "visited", "Paris", "."]  # a new word


def family_tokenizer(model_type, directory):
    kind = TOKENIZER_KINDS.get(model_type, "wordpiece")
    build_tokenizer(kind, model_type, WORDS * 20, directory / model_type)
    return load_tokenizer(directory / model_type)


def tiny_model(model_type, tokenizer, **options):
    torch.manual_seed(0)
    return build_model(
        9,
        0.0,
        random_init={"model_type": model_type, **TINY_BERT},
        vocab_size=len(tokenizer),
        special_ids=special_ids(tokenizer),
        label_names=NER_LABELS,
        **options,
    ).eval()


@pytest.mark.parametrize("model_type", FAMILIES)
def test_every_word_has_one_first_subword_of_its_own(model_type, tmp_path):
    tokenizer = family_tokenizer(model_type, tmp_path)
    words = UNSEEN
    (piece,) = encode_sentences(tokenizer, [words], 64)[0]
    starts = piece.word_starts(len(words))
    markers = bare_marker_ids(tokenizer)
    assert piece.word_ids.count(1) > 2  # the unseen word is split into many pieces
    for word, start in enumerate(starts):
        assert start >= 0 and piece.word_ids[start] == word  # at a piece of its own word
        assert piece.input_ids[start] not in markers  # never a lone start marker
        assert word not in piece.word_ids[:start]  # the first one
    leading, trailing = special_token_counts(tokenizer)
    assert (leading, trailing) == (1, 1)
    assert piece.word_ids[:leading] == [None] and piece.word_ids[-trailing:] == [None]


def test_a_word_the_tokenizer_drops_gets_no_position(tmp_path):
    tokenizer = family_tokenizer("bert", tmp_path)
    words = ["Peter", "\u200b", "said"]  # BERT's normalizer removes the zero-width space
    (piece,) = encode_sentences(tokenizer, [words], 64)[0]
    assert piece.word_starts(3)[1] == -1 and 1 not in piece.word_ids


def test_a_byte_level_tokenizer_saved_without_prefix_space_gets_one(tmp_path):
    """The hub's default for RoBERTa-style tokenizers, add_prefix_space=False, tokenizes every
    pre-split word as if it continued the previous one (no `Ġ`)."""
    family_tokenizer("roberta", tmp_path)
    path = tmp_path / "roberta" / "tokenizer.json"
    state = json.loads(path.read_text())
    state["pre_tokenizer"]["add_prefix_space"] = False
    path.write_text(json.dumps(state))
    from transformers import AutoTokenizer

    words = ["Peter", "visited", "Paris"]
    plain = AutoTokenizer.from_pretrained(tmp_path / "roberta")
    assert not any(t.startswith("Ġ") for t in plain(words, is_split_into_words=True).tokens())
    fixed = load_tokenizer(tmp_path / "roberta").tokenize(words, is_split_into_words=True)
    firsts = [t for t in fixed if t.startswith("Ġ")]
    assert len(firsts) == 3 and firsts[0].startswith("ĠP")  # the first word too


@pytest.mark.parametrize("model_type", FAMILIES)
def test_a_long_sentence_is_cut_into_windows_that_keep_each_word_once(model_type, tmp_path):
    tokenizer = family_tokenizer(model_type, tmp_path)
    words = [w for sentence in SENTENCES for w in sentence] * 3  # 132 words
    pieces = encode_sentences(tokenizer, [words], 32)[0]
    assert len(pieces) > 2 and all(len(p.input_ids) <= 32 for p in pieces)
    kept = [w for p in pieces for w in range(p.keep_start, p.keep_end)]
    assert kept == list(range(len(words)))
    for piece in pieces:
        assert all(start >= 0 for start in piece.word_starts(len(words)))


@pytest.mark.parametrize("model_type", FAMILIES)
def test_document_context_keeps_the_familys_special_tokens_at_the_ends(model_type, tmp_path):
    from datasets import Dataset, DatasetDict

    tokenizer = family_tokenizer(model_type, tmp_path)
    splits = DatasetDict(
        {
            "train": Dataset.from_dict(
                {
                    "tokens": SENTENCES[:4],
                    "tags": [[0] * len(s) for s in SENTENCES[:4]],
                    "document_id": [0] * 4,
                    "line": [1] * 4,
                }
            )
        }
    )
    alone = tokenize_splits(splits, tokenizer, "first", begin_to_inside_map(NER_LABELS), 128)
    context = tokenize_splits(splits, tokenizer, "first", begin_to_inside_map(NER_LABELS), 128, 100)
    for own, with_context in zip(alone["train"], context["train"]):
        ids = with_context["input_ids"]
        assert ids[0] == own["input_ids"][0] and ids[-1] == own["input_ids"][-1]
        assert len(ids) > len(own["input_ids"])  # neighbours were added
        labelled = [label for label in with_context["labels"] if label != -100]
        assert labelled == [label for label in own["labels"] if label != -100]


@pytest.mark.parametrize("model_type", FAMILIES)
def test_layer_decay_finds_each_familys_layers(model_type, tmp_path):
    model = tiny_model(model_type, family_tokenizer(model_type, tmp_path))
    layers, prefix = model.config.num_hidden_layers, model.encoder_name
    depths = {name: layer_depth(name, layers, prefix) for name, _ in model.named_parameters()}
    assert set(depths.values()) == set(range(layers + 2))
    assert all(
        depths[name] == 0
        for name in depths
        if "word_embeddings" in name or "tok_embeddings" in name
    )
    assert depths["classifier.weight"] == layers + 1


@pytest.mark.slow
@pytest.mark.parametrize("model_type", FAMILIES)
def test_each_family_learns_exports_and_predicts_as_the_pipeline(model_type, tmp_path):
    from transformers import pipeline

    from bert_pos.inference.loading import load_trained
    from bert_pos.inference.tagging import tag_sentences
    from bert_pos.train import train

    overrides = [
        f"model.random_init.model_type={model_type}",
        "data.context=document",
        "data.context_subwords=48",
    ]
    metrics = train(compose_config(TINY_DEMO_OVERRIDES + overrides), tmp_path)
    rows = metrics["epochs"]
    assert metrics["best"]["val/f1"] > 0.2 and rows[-1]["train/loss"] < rows[0]["train/loss"]

    trained = load_trained(tmp_path / "model")
    ours, theirs = export_logits(trained, tmp_path / "model", SENTENCES[:4])
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)

    tagger = pipeline(
        "token-classification", model=str(tmp_path / "model"), aggregation_strategy="first"
    )
    texts = simple_sentences(tmp_path / "demo_corpus" / "validation.txt", 40)
    for text, spans in zip(texts, predicted_spans(trained, texts)):
        assert spans == pipeline_spans(tagger, text), text

    long_sentence = [w for sentence in SENTENCES for w in sentence] * 5  # 220 words, 2+ windows
    (long_tags,) = tag_sentences(
        trained.model,
        trained.tokenizer,
        [long_sentence],
        trained.label_names,
        4,
        torch.device("cpu"),
        nullcontext(),
    )
    assert len(long_tags) == len(long_sentence) and all(p > 0 for _, p in long_tags)


@pytest.mark.slow
@pytest.mark.parametrize("model_type", FAMILIES)
def test_each_family_trains_a_crf_that_predicts_what_evaluation_scored(model_type, tmp_path):
    from bert_pos.inference.loading import load_trained
    from bert_pos.inference.tagging import tag_sentences
    from bert_pos.scoring.predictions import read_predictions
    from bert_pos.train import train

    overrides = [f"model.random_init.model_type={model_type}", "model.head=crf", "epochs=2"]
    train(compose_config(TINY_DEMO_OVERRIDES + overrides), tmp_path)
    trained = load_trained(tmp_path / "model")
    assert trained.model.crf is not None
    sentences = read_conll(tmp_path / "demo_corpus" / "test.txt", 3, None)
    tagged = tag_sentences(
        trained.model,
        trained.tokenizer,
        [s.words for s in sentences],
        trained.label_names,
        16,
        torch.device("cpu"),
        nullcontext(),
    )
    scored = read_predictions(
        tmp_path / "eval" / "test" / "predictions.txt"
    ).predicted  # best weights
    assert [[tag for tag, _ in sentence] for sentence in tagged] == scored


@pytest.mark.slow
def test_a_pretrained_roberta_folder_saved_without_prefix_space_fine_tunes(tmp_path):
    """The pretrained path of another family: a RoBERTa folder as the hub has it (weights,
    config, a byte-level tokenizer with add_prefix_space=False) fine-tunes and exports."""
    from transformers import AutoModelForTokenClassification

    from bert_pos.train import train

    tokenizer = family_tokenizer("roberta", tmp_path)
    model = tiny_model("roberta", tokenizer)
    folder = tmp_path / "roberta-pretrained"
    model.encoder.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    state = json.loads((folder / "tokenizer.json").read_text())
    state["pre_tokenizer"]["add_prefix_space"] = False
    (folder / "tokenizer.json").write_text(json.dumps(state))
    cfg = compose_config(
        TINY_DEMO_OVERRIDES + ["model.random_init=null", "epochs=1", f"model.name_or_path={folder}"]
    )
    metrics = train(cfg, tmp_path / "run")
    assert metrics["steps"] > 0
    saved = json.loads((tmp_path / "run" / "tokenizer" / "tokenizer.json").read_text())
    assert saved["pre_tokenizer"]["add_prefix_space"] is True  # trained with the prefix space
    exported = AutoModelForTokenClassification.from_pretrained(tmp_path / "run" / "model")
    assert type(exported).__name__ == "RobertaForTokenClassification"
