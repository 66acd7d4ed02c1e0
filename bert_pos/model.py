"""BERT with a token-classification head.

`BertTagger` is `BertModel` (no pooler) -> dropout -> linear, the same computation and the same
parameter names as `transformers.BertForTokenClassification` (`bert.*`, `classifier.*`), so a
state dict saved here loads there too. It returns logits only: the training loop owns the loss,
because gradient accumulation needs it normalised over the whole accumulated batch.
"""

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from transformers import BertConfig, BertModel


class BertTagger(nn.Module):
    def __init__(self, bert: BertModel, num_labels: int, dropout: float):
        super().__init__()
        self.bert = bert
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(bert.config.hidden_size, num_labels)
        # The initialisation BertForTokenClassification gives its fresh head.
        nn.init.normal_(self.classifier.weight, std=bert.config.initializer_range)
        nn.init.zeros_(self.classifier.bias)

    @property
    def config(self) -> BertConfig:
        return self.bert.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.classifier(self.dropout(hidden))  # (B, T, num_labels)


def build_model(
    num_labels: int,
    dropout: float,
    pretrained_path: str | None = None,
    random_init: dict | None = None,
    vocab_size: int | None = None,
    pretrained_weights: bool = True,
) -> BertTagger:
    """A tagger on pretrained weights (a local folder or hub name) or on a random `BertConfig`.

    `pretrained_weights=False` builds the pretrained model's shape only, for loading a
    fine-tuned checkpoint into it. Attention runs through PyTorch's scaled-dot-product
    attention kernels.
    """
    if pretrained_path is not None and pretrained_weights:
        bert = BertModel.from_pretrained(
            pretrained_path, add_pooling_layer=False, attn_implementation="sdpa"
        )
    elif pretrained_path is not None:
        config = BertConfig.from_pretrained(pretrained_path)
        config._attn_implementation = "sdpa"
        bert = BertModel(config, add_pooling_layer=False)
    else:
        config = BertConfig(**{"vocab_size": vocab_size, **random_init})
        config._attn_implementation = "sdpa"
        bert = BertModel(config, add_pooling_layer=False)
    return BertTagger(bert, num_labels, dropout)


def load_tagger(model_dir: str | Path) -> tuple[BertTagger, list[str]]:
    """A tagger and its label names from an exported model folder (Hugging Face layout:
    config.json with id2label, model.safetensors), such as `<run>/model`."""
    config = BertConfig.from_pretrained(model_dir)
    config._attn_implementation = "sdpa"
    label_names = [config.id2label[i] for i in range(len(config.id2label))]
    dropout = config.classifier_dropout if config.classifier_dropout is not None else 0.1
    model = BertTagger(BertModel(config, add_pooling_layer=False), len(label_names), dropout)
    model.load_state_dict(load_file(Path(model_dir) / "model.safetensors"))
    return model.eval(), label_names
