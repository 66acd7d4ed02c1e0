"""The span head (bert_pos/modeling/heads/span.py): enumeration, gold spans from IOB2 tags,
flat and nested decoding, and a span tagger trained, scored, resumed and exported as the
tagging heads are."""

import itertools
import json
import re
from contextlib import nullcontext

import pytest
import torch

from bert_pos.data.labels import NER_LABELS
from bert_pos.modeling.heads.span import (
    SpanHead,
    compatible,
    decode_spans,
    enumerate_spans,
    gold_spans,
    span_types,
)
from bert_pos.scoring.spans import spans_of

ID = {label: i for i, label in enumerate(NER_LABELS)}


def test_every_span_up_to_the_width_is_enumerated_once():
    first, last = enumerate_spans(5, 3)
    spans = list(zip(first.tolist(), last.tolist()))
    expected = [(a, b) for a in range(5) for b in range(a, min(a + 3, 5))]
    assert spans == expected and len(set(spans)) == len(spans) == 12


def test_gold_spans_read_iob2_as_conlleval_does():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "B-ORG", "B-ORG", "I-MISC", "I-MISC"]
    spans = gold_spans([ID[t] for t in tags], NER_LABELS)
    types = span_types(NER_LABELS)  # 1-based ids in the order of the B- labels
    named = {(types[kind - 1], a, b) for (a, b), kind in spans.items()}
    assert named == spans_of(tags)
    assert ("LOC", 3, 3) in named and ("MISC", 6, 7) in named  # I- after O opens a span


def random_scores(n: int, types: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, types + 1, generator=generator).softmax(-1)


@pytest.mark.parametrize("seed", range(20))
def test_flat_decoding_never_overlaps_and_nested_never_crosses(seed):
    first, last = enumerate_spans(9, 4)
    scores = random_scores(len(first), 3, seed)
    scores[:, 0] *= 0.2  # most spans are candidates
    flat = decode_spans(scores, first, last, nested=False)
    nested = decode_spans(scores, first, last, nested=True)
    assert flat, "something was decoded"
    for (a, b, _), (c, d, _) in itertools.combinations(flat, 2):
        assert b < c or d < a, (a, b, c, d)
    for (a, b, _), (c, d, _) in itertools.combinations(nested, 2):
        assert b < c or d < a or (a <= c and d <= b) or (c <= a and b <= d), (a, b, c, d)
    assert set(flat) <= set(nested) or len(nested) >= len(flat)


def test_decoding_takes_the_best_span_first():
    first, last = enumerate_spans(3, 3)  # (0,0) (0,1) (0,2) (1,1) (1,2) (2,2)
    scores = torch.zeros(6, 2)
    scores[:, 0] = 1.0
    scores[1] = torch.tensor([0.1, 0.9])  # [0, 1] best
    scores[4] = torch.tensor([0.2, 0.8])  # [1, 2] overlaps it
    scores[5] = torch.tensor([0.3, 0.7])  # [2, 2] does not
    assert decode_spans(scores, first, last, nested=False) == [(0, 1, 1), (2, 2, 1)]
    scores[3] = torch.tensor([0.0, 0.95])  # [1, 1] inside [0, 1]: nests, and is best
    assert decode_spans(scores, first, last, nested=True) == [(0, 1, 1), (1, 1, 1), (2, 2, 1)]
    assert not compatible(0, 1, 1, 2, nested=True)  # crossing never stands


def test_the_head_learns_spans_and_writes_them_as_tags():
    torch.manual_seed(0)
    head = SpanHead(len(NER_LABELS), NER_LABELS, "argmax", max_span_words=4)
    tags = ["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "I-ORG", "I-ORG"]
    batch = {
        "word_starts": torch.arange(1, 9)[None],
        "word_labels": torch.tensor([[ID[t] for t in tags]]),
    }
    features = torch.nn.Parameter(torch.randn(1, 10, head.input_width))
    optimizer = torch.optim.Adam([features, *head.parameters()], lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        head.loss_sum(features, batch).backward()
        optimizer.step()
    decoded = head.decode_words(features.detach(), batch["word_starts"])
    assert [NER_LABELS[i] for i in decoded[0].tolist()] == tags


# ---------------------------------------------------------------- span data, nested mentions


def test_outermost_tags_hold_what_tags_can_and_count_the_rest():
    from bert_pos.data.mentions import outermost_tags

    mentions = [(0, 3, "ORG"), (2, 3, "LOC"), (4, 5, "PER"), (4, 6, "PER"), (5, 7, "LOC")]
    tags, held = outermost_tags(mentions, 7)
    assert tags == ["B-ORG", "I-ORG", "I-ORG", "O", "B-PER", "I-PER", "O"]
    assert held == 3  # LOC inside ORG, PER inside PER, and LOC crossing PER


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"tokens": ["a", "b"], "spans": [[1, 1, "X"]]}', "empty or reversed"),
        ('{"tokens": ["a", "b"], "spans": [[2, 1, "X"]]}', "empty or reversed"),
        ('{"tokens": ["a", "b"], "spans": [[0, 3, "X"]]}', "outside the sentence's 2 words"),
        ('{"tokens": ["a", "b"], "spans": [[-1, 1, "X"]]}', "outside the sentence's 2 words"),
        ('{"tokens": ["a", "b"], "spans": [[0, 1]]}', "expected [start, end, type]"),
        ('{"tokens": ["a", "b"], "spans": [[0, 1, ""]]}', "is not a name"),
        ('{"tokens": ["a", "b"], "spans": [{"start": 0, "end": 1}]}', "no 'type' field"),
        ('{"tokens": ["a", "b"], "spans": "0-1"}', "expected a list"),
        ('{"tokens": ["a", "b"]}', "no 'spans' field (data.spans_column)"),
    ],
)
def test_a_malformed_mention_names_file_and_line(tmp_path, line, message):
    from bert_pos.data.columns import Columns
    from bert_pos.data.jsonl import read_jsonl
    from bert_pos.data.tags import DataFormatError

    path = tmp_path / "train.jsonl"
    path.write_text('{"tokens": ["ok"], "spans": []}\n' + line + "\n")
    columns = Columns("tokens", "ner_tags", None, spans="spans")
    with pytest.raises(DataFormatError, match=rf"train.jsonl:2: .*{re.escape(message)}"):
        read_jsonl(path, columns, None)


def test_a_mention_type_outside_data_labels_names_file_and_line(tmp_path):
    from bert_pos.data.columns import Columns
    from bert_pos.data.jsonl import read_jsonl
    from bert_pos.data.tags import DataFormatError

    path = tmp_path / "train.jsonl"
    path.write_text('{"tokens": ["Bank", "Kaburg"], "spans": [[0, 2, "ORG"], [1, 2, "GPE"]]}\n')
    columns = Columns("tokens", "ner_tags", None, spans="spans")
    with pytest.raises(DataFormatError, match=r"train.jsonl:1: mention 2 has the type 'GPE'"):
        read_jsonl(path, columns, ["O", "B-ORG", "I-ORG", "B-LOC", "I-LOC"])


def test_mention_objects_with_their_own_field_names_are_read(tmp_path):
    from bert_pos.data.columns import Columns
    from bert_pos.data.jsonl import read_jsonl

    path = tmp_path / "train.jsonl"
    mentions = [{"s": 0, "e": 2, "kind": "ORG"}, {"s": 1, "e": 2, "kind": "LOC"}]
    path.write_text(json.dumps({"words": ["Bank", "Kaburg"], "m": mentions}) + "\n")
    columns = Columns("words", "ner_tags", None, spans="m", span_fields=("s", "e", "kind"))
    table = read_jsonl(path, columns, None)
    assert table.mentions == [[(0, 2, "ORG"), (1, 2, "LOC")]]
    assert table.tags == [["B-ORG", "I-ORG"]]


def test_span_scores_count_exact_matches_nested_ones_too():
    from bert_pos.scoring.span_scores import span_scores

    gold = [[(0, 3, "ORG"), (2, 3, "LOC")], [(0, 1, "PER")]]
    predicted = [[(0, 3, "ORG"), (2, 3, "ORG")], [(0, 2, "PER")]]
    scores = span_scores(gold, predicted)
    # right: ORG [0,3); predicted 3, gold 3
    assert scores["precision"] == pytest.approx(1 / 3) and scores["recall"] == pytest.approx(1 / 3)
    assert scores["per_type"]["ORG"] == {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1}
    assert scores["per_type"]["LOC"]["recall"] == 0.0 and scores["per_type"]["PER"]["f1"] == 0.0


def test_on_flat_spans_exact_matching_equals_conlleval():
    from bert_pos.scoring.metrics import score_sequences
    from bert_pos.scoring.span_scores import span_scores

    gold_tags = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-MISC", "I-MISC"]]
    predicted_tags = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "O", "B-MISC", "I-MISC"]]

    def mentions(tags):
        return [[(a, b + 1, kind) for kind, a, b in spans_of(sentence)] for sentence in tags]

    ours = span_scores(mentions(gold_tags), mentions(predicted_tags))
    theirs = score_sequences(gold_tags, predicted_tags, True, "conlleval")
    for key in ("precision", "recall", "f1"):
        assert ours[key] == pytest.approx(theirs[key]), key


def test_layered_conll_reads_every_level_as_mentions(tmp_path):
    from bert_pos.data.mentions import read_layered_conll, tag_mentions

    path = tmp_path / "train.tsv"
    rows = [
        "1 Universität B-ORG O",
        "2 von I-ORG O",
        "3 Kaburg I-ORG B-LOC",
        "4 tagt O O",
    ]
    path.write_text("\n".join(rows) + "\n\n")
    (sentence,) = read_layered_conll(path, [2, 3], 1, "iob2")
    assert sentence.words == ["Universität", "von", "Kaburg", "tagt"]
    assert sentence.mentions == [(0, 3, "ORG"), (2, 3, "LOC")]
    assert sentence.labels == ["B-ORG", "I-ORG", "I-ORG", "O"]
    tags = ["I-PER", "B-PER", "O", "I-LOC", "I-LOC", "B-LOC"]
    assert {(k, a, b - 1) for a, b, k in tag_mentions(tags)} == spans_of(tags)


def test_a_window_trains_on_the_mentions_that_start_at_its_kept_words():
    from types import SimpleNamespace

    from bert_pos.data.encoding import piece_mentions

    mentions = [[0, 2, 1], [3, 6, 2], [4, 5, 3], [7, 10, 2], [7, 12, 1], [8, 9, 1]]
    piece = SimpleNamespace(keep_start=2, keep_end=8, window_end=11)
    # those that start at a kept word (2..7) and end in the window (word 10 at most)
    assert piece_mentions(mentions, piece) == [[1, 3, 2], [2, 2, 3], [5, 7, 2]]


NESTED = [
    "data=spans",
    "data.batch_size=16",
    "model=tiny",
    "model.random_init.hidden_size=64",
    "model.random_init.intermediate_size=128",
    "optim.lr=3e-3",
    "epochs=4",
    "data.cache_dir=null",
    "device=cpu",
]


@pytest.fixture(scope="module")
def nested_corpus(tmp_path_factory):
    from bert_pos.data.nested_demo import write_nested_demo

    return write_nested_demo(
        tmp_path_factory.mktemp("nested"), {"train": 800, "validation": 100, "test": 100}, 0
    )


@pytest.mark.slow
def test_the_span_head_learns_nested_mentions_a_tagger_cannot_hold(nested_corpus, tmp_path):
    from bert_pos.train import train
    from tests.helpers import compose_config

    common = NESTED + [f"data.dir={nested_corpus}"]
    spans = train(
        compose_config(common + ["model.head=span", "model.span_decode=nested"]), tmp_path / "span"
    )
    tagger = train(compose_config(common + ["model.head=linear"]), tmp_path / "linear")
    gold = [
        json.loads(line)["spans"]
        for line in (nested_corpus / "test.jsonl").read_text().splitlines()
    ]
    outermost = sum(
        not any(c <= a and b <= d and (c, d) != (a, b) for c, d, _ in sentence)
        for sentence in gold
        for a, b, _ in sentence
    )
    ceiling = outermost / sum(len(s) for s in gold)  # a flat tagger's best recall
    assert tagger["test"]["recall"] <= ceiling + 1e-9
    assert spans["test"]["f1"] > tagger["test"]["f1"] and spans["test"]["recall"] > ceiling
    written = [
        json.loads(line)
        for line in (tmp_path / "span" / "eval" / "test" / "predictions.jsonl")
        .read_text()
        .splitlines()
    ]
    assert len(written) == 100 and all(set(r) == {"tokens", "gold", "predicted"} for r in written)
    assert [r["gold"] for r in written] == [sorted(g) for g in gold]
    errors = json.loads((tmp_path / "span" / "eval" / "test" / "errors.json").read_text())
    assert sum(errors["gold"].values()) == sum(len(s) for s in gold)  # nested ones too
    from bert_pos.scoring.span_scores import span_scores

    rescored = span_scores([r["gold"] for r in written], [r["predicted"] for r in written])
    assert rescored["f1"] == pytest.approx(spans["test"]["f1"])
    recorded = json.loads((tmp_path / "span" / "eval" / "test" / "metrics.json").read_text())
    overall = recorded["bootstrap"]["scores"]["overall"]
    assert recorded["bootstrap"]["level"] == "mention"
    assert overall["score"] == pytest.approx(spans["test"]["f1"])
    assert overall["interval"][0] <= overall["score"] <= overall["interval"][1]
    # compare reads both runs' mentions, nested ones too
    from bert_pos.compare import main as compare

    result = compare([str(tmp_path / "linear"), str(tmp_path / "span"), "samples=200"])
    difference = result["scores"]["overall"]["difference"]
    assert result["unit"] == "sentence" and result["a"].endswith("predictions.jsonl")
    assert difference == pytest.approx(spans["test"]["f1"] - tagger["test"]["f1"])


@pytest.mark.slow
def test_a_span_run_resumes_bit_exactly_and_its_export_predicts_the_same(nested_corpus, tmp_path):

    from omegaconf import OmegaConf
    from safetensors.torch import load_file

    from bert_pos.inference.loading import load_trained
    from bert_pos.train import train
    from tests.helpers import compose_config
    from tests.test_resume import kill_at

    overrides = NESTED + [
        f"data.dir={nested_corpus}",
        "model.head=span",
        "epochs=2",
        "checkpoint.every_n_steps=10",
        "eval.test_at_end=false",
    ]
    cfg = compose_config(overrides)
    reference = train(cfg, tmp_path / "reference")
    (tmp_path / "reference" / ".hydra").mkdir()  # as the command saves it: a run folder
    OmegaConf.save(cfg, tmp_path / "reference" / ".hydra" / "config.yaml")
    kill_at(tmp_path / "run", 23, overrides)
    resumed = train(compose_config(overrides + ["resume=auto"]), tmp_path / "run")
    assert resumed["epochs"] == reference["epochs"]
    ours = load_file(tmp_path / "run" / "checkpoints" / "last" / "model.safetensors")
    theirs = load_file(tmp_path / "reference" / "checkpoints" / "last" / "model.safetensors")
    assert any(key.startswith("span_head.") for key in ours)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    # the export loads with its span head and tags as the run's best checkpoint does
    from bert_pos.inference.tagging import tag_sentences

    exported = load_trained(tmp_path / "reference" / "model")
    best = load_trained(tmp_path / "reference", checkpoint="best")
    assert exported.model.head_type == "span" and exported.model.span_options["max_span_words"] == 8
    sentences = [
        json.loads(line)["tokens"]
        for line in (nested_corpus / "validation.jsonl").read_text().splitlines()
    ]
    tagged = [
        tag_sentences(
            t.model, t.tokenizer, sentences, t.label_names, 16, torch.device("cpu"), nullcontext()
        )
        for t in (exported, best)
    ]
    assert tagged[0] == tagged[1] and any(tag != "O" for s in tagged[0] for tag, _ in s)
    assert (tmp_path / "reference" / "model" / "bert_pos.safetensors").is_file()
    assert not (tmp_path / "reference" / "model" / "model.safetensors").exists()


@pytest.mark.slow
def test_predict_prints_the_span_heads_nested_mentions_with_offsets(nested_corpus, tmp_path):
    from omegaconf import OmegaConf

    from bert_pos.train import train
    from tests.helpers import compose_config, run_command

    cfg = compose_config(
        NESTED + [f"data.dir={nested_corpus}", "model.head=span", "model.span_decode=nested"]
    )
    train(cfg, tmp_path / "run")
    (tmp_path / "run" / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / "run" / ".hydra" / "config.yaml")
    text = tmp_path / "in.txt"
    line = "Police at Kaburg Airport arrested Mika Dorn on Tuesday ."
    text.write_text(line + "\n")
    out = tmp_path / "out.jsonl"
    result = run_command(
        "predict", f"model_dir={tmp_path / 'run'}", f"input={text}", "format=jsonl", f"output={out}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(out.read_text())
    for entity in record["entities"]:  # offsets map back to the exact characters
        assert line[entity["start"] : entity["end"]] == entity["text"]
    spans = [(e["start"], e["end"]) for e in record["entities"]]
    for (a, b), (c, d) in itertools.combinations(spans, 2):  # nested or apart, never crossing
        assert b <= c or d <= a or (a <= c and d <= b) or (c <= a and b <= d)


@pytest.mark.slow
def test_a_flat_span_run_scores_its_mentions_as_conlleval_scores_its_tags(tmp_path):
    from bert_pos.scoring.metrics import score_sequences
    from bert_pos.scoring.predictions import read_predictions
    from bert_pos.train import train
    from tests.helpers import TINY_DEMO_OVERRIDES, compose_config

    overrides = TINY_DEMO_OVERRIDES + [
        "data.demo_sentences={train: 400, validation: 60, test: 60}",
        "model.head=span",
        "optim.head_lr=1e-2",
    ]
    metrics = train(compose_config(overrides), tmp_path)
    assert 0.0 < metrics["test"]["f1"] < 1.0  # something right, something wrong
    written = read_predictions(tmp_path / "eval" / "test" / "predictions.txt")
    conlleval = score_sequences(written.gold, written.predicted, True, "conlleval")
    for key in ("precision", "recall", "f1"):
        assert metrics["test"][key] == pytest.approx(conlleval[key]), key
    mentions = (tmp_path / "eval" / "test" / "predictions.jsonl").read_text().splitlines()
    assert len(mentions) == 60
