"""Padding-free batches (bert_pos/modeling/packing.py): the packing indices, and a packed tagger's
logits, loss, gradients and predictions against the same tagger on the padded batch."""

import pytest
import torch
from transformers import AttentionInterface

from bert_pos.data.batching import PaddingCollator
from bert_pos.data.labels import IGNORE_INDEX, NER_LABELS
from bert_pos.modeling import packing
from bert_pos.modeling.tagger import build_model, tagger_config, tagger_from_config
from tests.helpers import TINY_BERT

VOCAB = 50
LENGTHS = [9, 1, 23, 4, 23, 2]  # subwords per sentence: a lone token, two at the batch's max


def padded_and_packed(model_type="bert", shape=None, **options):
    """The same random tagger twice: running padded, and padding-free."""
    models = []
    for padding_free in (False, True):
        torch.manual_seed(0)
        models.append(
            build_model(
                len(NER_LABELS),
                0.0,
                random_init={"model_type": model_type, **(shape or TINY_BERT)},
                vocab_size=VOCAB,
                label_names=NER_LABELS,
                padding_free=padding_free,
                **options,
            ).eval()
        )
    padded, packed = models
    packed.load_state_dict(padded.state_dict())
    return padded, packed


def example(length: int, generator: torch.Generator) -> dict:
    """A tokenized sentence of `length` subwords: [CLS] words of one or two subwords [SEP]."""
    input_ids = torch.randint(3, VOCAB, (length,), generator=generator).tolist()  # no pad id
    labels, word_starts, tags, word_index = [IGNORE_INDEX] * length, [], [], [-1] * length
    position = 1
    while position < length - 1:
        pieces = min(1 + (position % 2), length - 1 - position)
        tag = int(torch.randint(0, len(NER_LABELS), (1,), generator=generator))
        labels[position] = tag
        word_starts.append(position)
        tags.append(tag)
        word_index[position : position + pieces] = [len(tags) - 1] * pieces
        position += pieces
    return {
        "input_ids": input_ids,
        "labels": labels,
        "word_starts": word_starts,
        "tags": tags,
        "word_index": word_index,
    }


def batch_of(lengths, pad_token_id, pad_to_multiple_of=8, seed=0) -> dict:
    """A batch as the training loop gets it: PaddingCollator, padded to a multiple of 8."""
    generator = torch.Generator().manual_seed(seed)
    examples = [example(length, generator) for length in lengths]
    return PaddingCollator(pad_token_id, pad_to_multiple_of)(examples)


def forward_backward(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    model.zero_grad()
    logits = model(batch["input_ids"], batch["attention_mask"], batch["word_index"])
    loss = model.loss_sum(logits, batch)
    loss.backward()
    return logits.detach(), loss.detach()


def assert_same_gradients(padded, packed):
    packed_parameters = dict(packed.named_parameters())
    compared = 0
    for name, parameter in padded.named_parameters():
        packed_grad = packed_parameters[name].grad
        if parameter.grad is None:
            assert packed_grad is None, name
            continue
        torch.testing.assert_close(
            packed_grad,
            parameter.grad,
            rtol=1e-4,
            atol=1e-5,
            msg=lambda message, name=name: f"{name}: {message}",
        )
        compared += parameter.grad.abs().sum() > 0
    assert compared > 10  # the encoder's gradients, not only the head's


def assert_packed_equals_padded(padded, packed, batch):
    padded_logits, padded_loss = forward_backward(padded, batch)
    packed_logits, packed_loss = forward_backward(packed, batch)
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(packed_logits[real], padded_logits[real], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(packed_loss, padded_loss, rtol=1e-5, atol=1e-5)
    assert packed_logits.shape == padded_logits.shape
    assert torch.equal(packed_logits[real].argmax(-1), padded_logits[real].argmax(-1))
    assert torch.equal(
        packed.decode_words(packed_logits, batch["word_starts"]),
        padded.decode_words(padded_logits, batch["word_starts"]),
    )
    assert_same_gradients(padded, packed)


# ---------------------------------------------------------------- the packing indices


def test_pack_restarts_positions_and_unpack_puts_every_token_back():
    input_ids = torch.tensor([[11, 12, 13, 0], [21, 0, 0, 0], [31, 32, 33, 34]])
    attention_mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]])
    packed = packing.pack(input_ids, attention_mask)
    assert packed.input_ids.tolist() == [[11, 12, 13, 21, 31, 32, 33, 34]]
    assert packed.position_ids.tolist() == [[0, 1, 2, 0, 0, 1, 2, 3]]
    assert packed.cu_seqlens.tolist() == [0, 3, 4, 8] and packed.cu_seqlens.dtype == torch.int32
    assert packed.max_seqlen == 4
    assert packed.flat_index.tolist() == [0, 1, 2, 4, 8, 9, 10, 11]
    offset = packing.pack(input_ids, attention_mask, position_offset=2)  # RoBERTa: pad id 1
    assert offset.position_ids.tolist() == [[2, 3, 4, 2, 2, 3, 4, 5]]

    states = packed.input_ids[..., None].float().expand(1, 8, 3)  # (1, N, H)
    back = packing.unpack(states, packed)
    assert back.shape == (3, 4, 3)
    assert torch.equal(back[..., 0], (input_ids * attention_mask).float())  # zeros at padding


def test_left_padded_rows_are_refused():
    with pytest.raises(ValueError, match="right-padded"):
        packing.pack(torch.tensor([[0, 5, 6]]), torch.tensor([[0, 1, 1]]))


# ---------------------------------------------------------------- packed = padded


@pytest.mark.parametrize("model_type", sorted(packing.SUPPORTED))
def test_packed_batch_gives_the_padded_logits_loss_gradients_and_predictions(model_type):
    padded, packed = padded_and_packed(model_type)
    batch = batch_of(LENGTHS, padded.config.pad_token_id)
    assert batch["input_ids"].shape == (len(LENGTHS), 24)  # padded past the longest sentence
    assert_packed_equals_padded(padded, packed, batch)


@pytest.mark.parametrize(
    "options", [{"head": "crf"}, {"pooling": "mean"}], ids=["crf", "mean_pooling"]
)
def test_packed_loss_equals_padded_with_crf_and_mean_pooling(options):
    padded, packed = padded_and_packed(**options)
    batch = batch_of(LENGTHS, padded.config.pad_token_id)
    assert_packed_equals_padded(padded, packed, batch)


@pytest.mark.parametrize("model_type", ["bert", "roberta"])
def test_a_packed_sequence_longer_than_the_position_embeddings_matches_padded(model_type):
    padded, packed = padded_and_packed(model_type)  # max_position_embeddings 64
    batch = batch_of([40] * 4, padded.config.pad_token_id)  # 160 packed tokens
    assert int(batch["attention_mask"].sum()) > padded.config.max_position_embeddings
    assert_packed_equals_padded(padded, packed, batch)


def test_packed_attention_gets_each_sentence_boundary_and_no_mask(monkeypatch):
    """The encoder call's kwargs reach every layer's attention, and the mask code builds no
    (B, 1, T, T) or (1, 1, N, N) mask: attention_mask is None there."""
    calls = []

    def spy(module, query, key, value, attention_mask, **kwargs):
        calls.append((attention_mask, kwargs.get("cu_seq_lens_q"), query.shape))
        return packing.varlen_attention_forward(module, query, key, value, attention_mask, **kwargs)

    monkeypatch.setitem(AttentionInterface._global_mapping, packing.VARLEN_ATTENTION, spy)
    _, packed = padded_and_packed()
    batch = batch_of(LENGTHS, 0)
    packed(batch["input_ids"], batch["attention_mask"])
    assert len(calls) == TINY_BERT["num_hidden_layers"]
    expected = [0, 9, 10, 33, 37, 60, 62]
    for attention_mask, cu_seqlens, shape in calls:
        assert attention_mask is None and cu_seqlens.tolist() == expected
        assert shape == (1, TINY_BERT["num_attention_heads"], 62, 16)  # (1, heads, N, D)


def test_the_varlen_kernel_branch_lays_out_tensors_as_varlen_attn_expects(monkeypatch):
    """The CUDA branch, run on the CPU: varlen_attn replaced by a reference of its documented
    contract ((N, heads, D) in and out, sentences at cu_seq_q) must give the padded logits."""

    def reference_varlen_attn(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, scale):
        assert query.shape[0] == cu_seq_q[-1] and query.is_contiguous()
        assert max_q == max_k == int(cu_seq_q.diff().max()) and torch.equal(cu_seq_q, cu_seq_k)
        bounds = cu_seq_q.tolist()
        return torch.cat(
            [
                torch.nn.functional.scaled_dot_product_attention(
                    *(t[start:end].transpose(0, 1) for t in (query, key, value)), scale=scale
                ).transpose(0, 1)
                for start, end in zip(bounds[:-1], bounds[1:])
            ]
        )

    monkeypatch.setattr(packing, "varlen_kernel_runs", lambda query, dropout: True)
    monkeypatch.setattr(packing, "varlen_attn", reference_varlen_attn)
    padded, packed = padded_and_packed()
    batch = batch_of(LENGTHS, 0)
    assert_packed_equals_padded(padded, packed, batch)


def test_the_varlen_kernel_is_not_used_on_the_cpu_or_in_fp32():
    assert not packing.varlen_kernel_runs(torch.zeros(1, 2, 5, 16, dtype=torch.bfloat16), 0.0)
    assert not packing.varlen_kernel_runs(torch.zeros(1, 2, 5, 16), 0.0)


# ---------------------------------------------------------------- what else stays the same


def test_a_switched_encoder_still_runs_padded_batches():
    """The implementation's mask function is SDPA's: a padded call stays correct."""
    padded, packed = padded_and_packed()
    batch = batch_of(LENGTHS, 0)
    with torch.no_grad():
        expected = padded.encoder(batch["input_ids"], batch["attention_mask"]).last_hidden_state
        got = packed.encoder(batch["input_ids"], batch["attention_mask"]).last_hidden_state
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(got[real], expected[real], rtol=1e-5, atol=1e-5)


def test_the_saved_config_does_not_record_padding_free_and_reloads_padded():
    padded, packed = padded_and_packed()
    config = tagger_config(packed, NER_LABELS)
    saved = config.to_json_string()
    assert "padding_free" not in saved and packing.VARLEN_ATTENTION not in saved
    assert config.to_dict() == tagger_config(padded, NER_LABELS).to_dict()
    reloaded, _ = tagger_from_config(config)
    reloaded.load_state_dict(packed.state_dict())
    reloaded.eval()
    assert not reloaded.padding_free and reloaded.config._attn_implementation == "sdpa"
    batch = batch_of(LENGTHS, 0)
    with torch.no_grad():
        expected = packed(batch["input_ids"], batch["attention_mask"])
        got = reloaded(batch["input_ids"], batch["attention_mask"])
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(got[real], expected[real], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model_type", ["deberta-v2", "modernbert"])
def test_a_family_that_cannot_pack_is_refused_at_build(model_type):
    special_ids = {
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "cls_token_id": 1,
        "sep_token_id": 2,
    }  # within the tiny vocabulary
    with pytest.raises(ValueError, match=f"model.padding_free.*{model_type}") as error:
        padded_and_packed(model_type, special_ids=special_ids)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "model_type, packs",
    [("bert", True), ("roberta", True), ("deberta-v2", False), ("modernbert", False)],
)
def test_the_default_packs_where_the_family_packs_exactly(model_type, packs):
    special_ids = {
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "cls_token_id": 1,
        "sep_token_id": 2,
    }
    model = build_model(
        len(NER_LABELS),
        0.0,
        random_init={"model_type": model_type, **TINY_BERT},
        vocab_size=VOCAB,
        label_names=NER_LABELS,
        padding_free=None,
        special_ids=special_ids,
    )
    assert model.padding_free is packs


@pytest.mark.parametrize("compiled", [False, True])
def test_the_default_recipe_trains_random_padding_free_batches_unless_compiled(tokenizer, compiled):
    from bert_pos.data.tasks import Task
    from bert_pos.runtime.distributed import Distributed
    from bert_pos.training.setup import build_tagger
    from tests.helpers import compose_config

    cfg = compose_config(["+experiment=baseline", "model=tiny", f"compile={compiled}"])
    assert cfg.data.group_by_length is False and cfg.model.padding_free is None
    tasks = [Task("ner", NER_LABELS)]
    model, _ = build_tagger(cfg, tasks, tokenizer, None, Distributed(), torch.device("cpu"))
    assert model.padding_free is not compiled  # a compiled step wants padded, bucketed shapes


@pytest.mark.slow
def test_a_padding_free_run_trains_as_the_padded_run(tmp_path):
    """The defaults' training path end to end (random batches, padding-free), against the same
    run padded: losses and scores agree within float rounding over a few steps."""
    from bert_pos.train import train
    from tests.helpers import TINY_DEMO_OVERRIDES, compose_config

    runs = {}
    for padding_free in ("null", "false"):
        cfg = compose_config(
            TINY_DEMO_OVERRIDES
            + [
                "data.group_by_length=false",
                f"model.padding_free={padding_free}",
                "max_steps=6",
                "eval.every_n_steps=3",
                "eval.test_at_end=false",
                "model.dropout=0.0",
                "+model.random_init.hidden_dropout_prob=0.0",
                "+model.random_init.attention_probs_dropout_prob=0.0",
            ]
        )
        runs[padding_free] = train(cfg, tmp_path / padding_free)
    packed, padded = runs["null"], runs["false"]
    assert [row["step"] for row in packed["epochs"]] == [3, 6]
    for got, expected in zip(packed["epochs"], padded["epochs"], strict=True):
        for key in ("train/loss", "val/loss", "val/accuracy"):
            assert got[key] == pytest.approx(expected[key], rel=1e-4, abs=1e-5), key
