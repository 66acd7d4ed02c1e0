"""The tagger module (bert_pos/modeling/tagger.py): logits, padding that changes nothing, and
weights that load into BertForTokenClassification and back.
"""

import torch
from safetensors.torch import load_file, save_file
from transformers import BertConfig, BertForTokenClassification

from bert_pos.modeling.tagger import build_model
from tests.helpers import TINY_BERT


def test_logits_shape(tiny_model):
    input_ids = torch.randint(5, 50, (3, 11))
    attention_mask = torch.ones_like(input_ids)
    assert tiny_model(input_ids, attention_mask).shape == (3, 11, 9)


def test_state_dict_loads_into_bert_for_token_classification(tmp_path, tiny_model):
    save_file(tiny_model.state_dict(), tmp_path / "model.safetensors")
    config = BertConfig(**{**tiny_model.config.to_dict(), "num_labels": 9})
    reference = BertForTokenClassification(config).eval()
    missing, unexpected = reference.load_state_dict(
        load_file(tmp_path / "model.safetensors"), strict=False
    )
    assert missing == [] and unexpected == []
    input_ids = torch.randint(5, 50, (2, 7))
    attention_mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    ours = tiny_model(input_ids, attention_mask)
    theirs = reference(input_ids=input_ids, attention_mask=attention_mask).logits
    torch.testing.assert_close(ours, theirs)


def test_padding_does_not_change_real_token_logits(tiny_model):
    input_ids = torch.randint(5, 50, (1, 6))
    alone = tiny_model(input_ids, torch.ones_like(input_ids))
    padded_ids = torch.cat([input_ids, torch.zeros(1, 4, dtype=torch.long)], 1)
    padded = tiny_model(padded_ids, torch.tensor([[1] * 6 + [0] * 4]))
    torch.testing.assert_close(alone, padded[:, :6], atol=1e-5, rtol=1e-5)


def test_pretrained_folder_round_trip(tmp_path):
    model = build_model(5, 0.1, random_init=TINY_BERT, vocab_size=60)
    model.encoder.save_pretrained(tmp_path / "bert")
    reloaded = build_model(5, 0.1, pretrained_path=str(tmp_path / "bert"))
    for name, tensor in model.encoder.state_dict().items():
        torch.testing.assert_close(reloaded.encoder.state_dict()[name], tensor)
