"""BERT with a token-classification head.

`BertTagger` is `BertModel` (no pooler) -> dropout -> linear, the same computation and the same
parameter names as `transformers.BertForTokenClassification` (`bert.*`, `classifier.*`), so a
state dict saved here loads there too. It returns logits only: the training loop owns the loss,
because gradient accumulation needs it normalised over the whole accumulated batch.
"""

import torch
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
) -> BertTagger:
    """A tagger on pretrained weights (a local folder or hub name) or on a random `BertConfig`.

    Attention runs through PyTorch's scaled-dot-product attention kernels.
    """
    if pretrained_path is not None:
        bert = BertModel.from_pretrained(
            pretrained_path, add_pooling_layer=False, attn_implementation="sdpa"
        )
    else:
        config = BertConfig(**{"vocab_size": vocab_size, **random_init})
        config._attn_implementation = "sdpa"
        bert = BertModel(config, add_pooling_layer=False)
    return BertTagger(bert, num_labels, dropout)
