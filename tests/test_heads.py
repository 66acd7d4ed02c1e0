"""The heads (bert_pos/modeling/heads/): the CRF, constrained decoding; subword pooling
(modeling/words.py) and layer-wise learning rates."""

import itertools

import pytest
import torch

from bert_pos.data.labels import NER_LABELS, invalid_iob2_position
from bert_pos.modeling.heads.crf import LinearChainCRF
from bert_pos.modeling.heads.paths import allowed_transitions, log_partition, path_score, viterbi
from bert_pos.modeling.tagger import build_model
from bert_pos.modeling.words import compact, pool_words
from bert_pos.training.optimization import build_optimizer
from tests.helpers import TINY_BERT

NER = NER_LABELS


def brute_force(emissions, length, transitions, start, end):
    """Score of every tag path of one sequence of `length` words."""
    scores = {}
    for path in itertools.product(range(emissions.shape[-1]), repeat=length):
        score = start[path[0]] + end[path[-1]] + sum(emissions[w, t] for w, t in enumerate(path))
        score += sum(transitions[a, b] for a, b in zip(path, path[1:]))
        scores[path] = float(score)
    return scores


@pytest.mark.parametrize("trial", range(5))
def test_viterbi_partition_and_path_score_equal_brute_force(trial):
    generator = torch.Generator().manual_seed(trial)
    batch, words, labels = 5, 4, 3
    emissions = torch.randn(batch, words, labels, generator=generator, dtype=torch.float64)
    transitions = torch.randn(labels, labels, generator=generator, dtype=torch.float64)
    start = torch.randn(labels, generator=generator, dtype=torch.float64)
    end = torch.randn(labels, generator=generator, dtype=torch.float64)
    lengths = torch.tensor([4, 1, 3, 2, 4])
    mask = torch.arange(words)[None, :] < lengths[:, None]
    tags = torch.randint(0, labels, (batch, words), generator=generator)

    best = viterbi(emissions, mask, transitions, start, end)
    partition = log_partition(emissions, mask, transitions, start, end)
    scored = path_score(emissions, tags, mask, transitions, start, end)
    for b, length in enumerate(lengths.tolist()):
        scores = brute_force(emissions[b], length, transitions, start, end)
        expected_best = max(scores, key=scores.get)
        assert tuple(best[b, :length].tolist()) == expected_best
        expected_partition = torch.tensor(list(scores.values()), dtype=torch.float64).logsumexp(0)
        assert partition[b].item() == pytest.approx(expected_partition.item(), abs=1e-9)
        assert scored[b].item() == pytest.approx(scores[tuple(tags[b, :length].tolist())])


def test_crf_likelihood_sums_to_one_and_forbids_invalid_iob2():
    labels = ["O", "B-PER", "I-PER"]
    allowed, allowed_start = allowed_transitions(labels)
    crf = LinearChainCRF(3, allowed, allowed_start)
    torch.nn.init.normal_(crf.transitions)
    emissions = torch.randn(1, 3, 3)
    mask = torch.ones(1, 3, dtype=torch.bool)
    paths = torch.tensor(list(itertools.product(range(3), repeat=3)))
    log_likelihoods = torch.stack(
        [crf.log_likelihood(emissions, path[None], mask)[0] for path in paths]
    )
    assert log_likelihoods.exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    for path, value in zip(paths.tolist(), log_likelihoods.exp().tolist(), strict=True):
        tags = [labels[t] for t in path]
        if invalid_iob2_position(tags) is not None:  # I-PER first or after O
            assert value < 1e-30, tags
    # Viterbi never picks such a path, even when the emissions ask for it
    emissions = torch.tensor([[[0.0, 0.0, 9.0], [9.0, 0.0, 0.0], [0.0, 0.0, 9.0]]])
    decoded = [labels[t] for t in crf.decode(emissions, mask)[0].tolist()]
    assert invalid_iob2_position(decoded) is None


def test_iob2_transitions():
    allowed, allowed_start = allowed_transitions(NER)
    index = {label: i for i, label in enumerate(NER)}
    assert not allowed[index["O"], index["I-PER"]]
    assert not allowed[index["B-LOC"], index["I-PER"]]
    assert allowed[index["B-PER"], index["I-PER"]] and allowed[index["I-PER"], index["I-PER"]]
    assert allowed[index["I-PER"], index["B-LOC"]] and allowed[index["O"], index["B-PER"]]
    assert not allowed_start[index["I-LOC"]] and allowed_start[index["B-LOC"]]
    pos_allowed, pos_start = allowed_transitions(["NN", "VB", "IN"])
    assert pos_allowed.all() and pos_start.all()  # no prefixes: nothing forbidden


def test_constrained_decoding_outputs_valid_iob2_where_argmax_does_not():
    torch.manual_seed(0)
    model = build_model(
        len(NER), 0.0, random_init=TINY_BERT, vocab_size=50, decode="constrained", label_names=NER
    )
    logits = torch.randn(64, 12, len(NER)) * 3
    starts = torch.arange(1, 11).expand(64, 10).clone()
    starts[5, 7:] = -1  # a shorter sentence
    starts[6, 3] = -1  # a word without subwords in the middle
    argmax = logits.gather(1, starts.clamp(min=0)[..., None].expand(-1, -1, len(NER))).argmax(-1)
    invalid_argmax = sum(
        invalid_iob2_position([NER[t] for t in row]) is not None for row in argmax.tolist()
    )
    assert invalid_argmax > 10  # random logits: argmax breaks IOB2 often
    decoded = model.decode_words(logits, starts)
    for row in range(64):
        kept = [NER[t] for t, s in zip(decoded[row].tolist(), starts[row].tolist()) if s >= 0]
        assert invalid_iob2_position(kept) is None, kept


def test_compact_moves_kept_entries_to_the_front_in_order():
    values = torch.tensor([[10, 11, 12, 13], [20, 21, 22, 23]])[..., None]
    mask = torch.tensor([[True, False, True, True], [False, False, True, False]])
    moved, prefix, positions = compact(values, mask)
    assert moved[0, :3, 0].tolist() == [10, 12, 13] and moved[1, 0, 0].item() == 22
    assert prefix.tolist() == [[True, True, True, False], [True, False, False, False]]
    assert positions[0, :3].tolist() == [0, 2, 3]


@pytest.mark.parametrize("pooling", ["mean", "first_last"])
def test_pooling_gives_each_word_its_subwords_and_their_gradients(pooling):
    hidden = torch.randn(2, 6, 4, requires_grad=True)
    # row 0: [CLS] w0 w0 w0 w1 [SEP]; row 1: [CLS] w0 w1 w1 [SEP] pad
    word_index = torch.tensor([[-1, 0, 0, 0, 1, -1], [-1, 0, 1, 1, -1, -1]])
    pooled = pool_words(hidden, word_index, pooling)
    width = 4 if pooling == "mean" else 8
    assert pooled.shape == (2, 6, width)
    if pooling == "mean":
        torch.testing.assert_close(pooled[0, 1], hidden[0, 1:4].mean(0))
        torch.testing.assert_close(pooled[0, 0], hidden[0, 0])  # [CLS] keeps its own
    else:
        torch.testing.assert_close(pooled[0, 1], torch.cat([hidden[0, 1], hidden[0, 3]]))
        torch.testing.assert_close(pooled[1, 2], torch.cat([hidden[1, 2], hidden[1, 3]]))
        torch.testing.assert_close(pooled[0, 4], torch.cat([hidden[0, 4], hidden[0, 4]]))
    pooled[0, 1].sum().backward()  # the vector a word's first subword carries
    reached = (hidden.grad[0].abs().sum(-1) > 0).tolist()
    expected = [False, True, True, True, False, False]
    if pooling == "first_last":
        expected = [False, True, False, True, False, False]  # first and last subword only
    assert reached == expected and hidden.grad[1].abs().sum() == 0


@pytest.mark.parametrize("pooling", ["mean", "first_last"])
def test_pooled_tagger_runs_forward_and_backward(pooling):
    torch.manual_seed(0)
    model = build_model(5, 0.0, random_init=TINY_BERT, vocab_size=50, pooling=pooling)
    input_ids = torch.randint(5, 50, (2, 7))
    word_index = torch.tensor([[-1, 0, 0, 1, 2, 2, -1], [-1, 0, 1, 1, -1, -1, -1]])
    logits = model(input_ids, torch.ones_like(input_ids), word_index)
    assert logits.shape == (2, 7, 5)
    logits[0, 1].sum().backward()
    assert model.classifier.weight.grad.abs().sum() > 0
    assert model.encoder.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_layer_decay_scales_each_depth():
    torch.manual_seed(0)
    model = build_model(5, 0.0, random_init=TINY_BERT, vocab_size=50)  # 2 layers
    optimizer = build_optimizer(model, 1e-3, (0.9, 0.999), 1e-8, 0.01, layer_decay=0.5)
    lr_of = {}
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            lr_of[parameter] = (group["lr"], group["weight_decay"])
    named = dict(model.named_parameters())
    assert lr_of[named["classifier.weight"]] == (1e-3, 0.01)
    assert lr_of[named["classifier.bias"]] == (1e-3, 0.0)
    assert lr_of[named["bert.encoder.layer.1.output.dense.weight"]][0] == pytest.approx(5e-4)
    assert lr_of[named["bert.encoder.layer.0.output.dense.weight"]][0] == pytest.approx(2.5e-4)
    assert lr_of[named["bert.embeddings.word_embeddings.weight"]][0] == pytest.approx(1.25e-4)
    assert len(lr_of) == len(named)  # every parameter in exactly one group
    plain = build_optimizer(model, 1e-3, (0.9, 0.999), 1e-8, 0.01)
    assert [g["lr"] for g in plain.param_groups] == [1e-3, 1e-3]


@pytest.mark.slow
def test_crf_with_first_last_pooling_trains_exports_and_predicts_as_evaluated(tmp_path):
    """End to end: the run's validation predictions equal what the exported model, loaded
    back, predicts for the same sentences (CRF and pooling survive the export)."""
    from transformers import AutoTokenizer

    from bert_pos.inference.loading import load_trained
    from bert_pos.inference.tagging import tag_sentences
    from bert_pos.scoring.predictions import read_predictions
    from bert_pos.train import train
    from tests.helpers import TINY_DEMO_OVERRIDES, compose_config

    overrides = TINY_DEMO_OVERRIDES + ["model.head=crf", "model.pooling=first_last"]
    metrics = train(compose_config(overrides), tmp_path)
    assert metrics["best"]["val/f1"] > 0.5  # it learns (the same recipe without CRF: ~0.6)
    trained = load_trained(tmp_path / "model")
    model, label_names = trained.model, trained.label_names
    assert model.crf is not None and model.pooling == "first_last"
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    predictions = (tmp_path / "eval" / "test" / "predictions.txt").read_text()
    sentences = [
        [line.split()[0] for line in block.splitlines()]
        for block in predictions.split("\n\n")
        if block.strip() and not block.startswith("-DOCSTART-")
    ]
    evaluated = read_predictions(tmp_path / "eval" / "test" / "predictions.txt").predicted
    cpu, no_autocast = torch.device("cpu"), torch.autocast("cpu", enabled=False)
    tagged = tag_sentences(model, tokenizer, sentences, label_names, 16, cpu, no_autocast)
    assert [[tag for tag, _ in sentence] for sentence in tagged] == evaluated
    assert all(invalid_iob2_position(tags) is None for tags in evaluated)  # Viterbi, IOB2-valid


def test_validation_loss_of_a_crf_is_its_training_objective(tokenizer):
    """train/loss of a CRF tagger is its negative log-likelihood per labelled subword; val/loss
    must be the same quantity, not the linear head's cross-entropy."""
    from contextlib import nullcontext

    from bert_pos.data.batching import PaddingCollator
    from bert_pos.data.labels import NER_LABELS
    from bert_pos.modeling.tagger import build_model
    from bert_pos.scoring.scorer import evaluate
    from tests.helpers import TINY_BERT

    torch.manual_seed(0)
    model = build_model(
        9, 0.0, random_init=TINY_BERT, vocab_size=len(tokenizer), head="crf", label_names=NER_LABELS
    ).eval()
    examples = [
        {
            "input_ids": [2, 10 + i, 20 + i, 3],
            "labels": [-100, 1, 2, -100],
            "word_starts": [1, 2],
            "tags": [1, 2],
            "word_index": [-1, 0, 1, -1],
            "sentence": i,
            "first_word": 0,
        }
        for i in range(4)
    ]
    loader = torch.utils.data.DataLoader(
        examples, batch_sampler=[[0, 1], [2, 3]], collate_fn=PaddingCollator(0, 1)
    )
    scores, _ = evaluate(
        model, loader, NER_LABELS, True, "word", torch.device("cpu"), nullcontext()
    )
    with torch.no_grad():
        batch = PaddingCollator(0, 1)(examples)
        logits = model(batch["input_ids"], batch["attention_mask"])
        nll = model.loss_sum(logits, batch).item() / 8  # 8 labelled subwords
        cross_entropy = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), batch["labels"].flatten()
        ).item()
    assert scores["loss"] == pytest.approx(nll, rel=1e-5)
    assert abs(scores["loss"] - cross_entropy) > 1e-3  # the two quantities differ


def test_every_head_in_the_registry_builds_and_is_a_config_choice():
    """A head is one module listed in `HEADS`; the config accepts exactly those names."""
    from bert_pos.config import CHOICES
    from bert_pos.modeling.heads import HEADS, build_head

    assert CHOICES["model.head"] == tuple(HEADS)
    word_starts = torch.tensor([[1, 2, 3], [1, 3, -1]])
    batch = {
        "labels": torch.full((2, 5), -100).index_fill_(1, torch.tensor([1, 2]), 0),
        "word_starts": word_starts,
        "word_labels": torch.tensor([[0, 0, 0], [0, 0, -100]]),
    }
    for name in HEADS:
        head = build_head(name, len(NER_LABELS), NER_LABELS, "argmax")
        # what the classifier gives the head: tag scores, or (span) a projection per subword
        logits = torch.randn(2, 5, getattr(head, "input_width", len(NER_LABELS)))
        assert head.loss_sum(logits, batch).dim() == 0
        assert head.decode_words(logits, word_starts).shape == (2, 3)
    with pytest.raises(ValueError, match="model.head='beam'"):
        build_head("beam", len(NER_LABELS), NER_LABELS, "argmax")
