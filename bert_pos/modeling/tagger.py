"""An encoder with a token-classification head.

`Tagger` is an encoder of any family (`BertModel` by default, no pooler) -> dropout -> linear,
the same computation and the same parameter names as the family's `*ForTokenClassification`
(`bert.*` or `roberta.*`, ..., `classifier.*`), so a state dict saved here loads there too.
It returns logits only: the training loop owns the loss, because gradient accumulation needs
it normalised over the whole accumulated batch.

Options beyond that (`model.pooling`, `model.head`, `model.decode`; their checkpoints need
bert_pos to run, the Hugging Face class would ignore the extra parts):
- pooling: a word's logits from its first subword (`first`, BERT's recipe), from the mean of
  its subwords (`mean`), or from its first and last subwords concatenated (`first_last`);
- head: `crf` adds a linear-chain CRF over each sentence's words (trained by its likelihood,
  decoded by Viterbi), with IOB2 transitions that cannot occur (I-X after O or B-Y) forbidden;
- decode: `constrained` runs Viterbi over the linear head's log-probabilities with the same
  forbidden transitions, a CRF's decoding without its training.

Several tasks (`data.tasks`): one encoder pass, then a classifier and a head per task. The
first task's are `classifier` and the head above; each further task's sit in `task_classifiers`
and `task_heads` under its name, and its labels, name and head are saved in the config
(`tagger_config`). `forward(..., all_tasks=True)` returns every task's logits, in task order.

`model.padding_free` is no option of the model but of how it runs: the encoder computes a
padded batch packed, without its padding (bert_pos/modeling/packing.py), and the logits come back in
the padded layout; checkpoints and exports do not record it.
"""

import copy

import torch
from torch import nn
from transformers import AutoConfig

from bert_pos.data.tasks import task_batch, task_key
from bert_pos.modeling import encoders, packing
from bert_pos.modeling.heads import HEADS, build_head, head_class
from bert_pos.modeling.words import pool_words
from bert_pos.runtime.choices import DECODINGS, POOLINGS


class TaskHeads:
    """What a tagger answers about its tasks and heads, the same for `Tagger` and for the ONNX
    Runtime tagger (bert_pos/inference/onnx_model.py). Needs `tag_head_name`, `task_name`,
    `label_names`, `more_tasks` and, with several tasks, `task_heads`; building the heads
    needs `decoding` and `span_options`."""

    def add_tag_head(self, head: str, num_labels: int, label_names: list[str] | None) -> None:
        """The first task's head, registered under its own name: its parameters' prefix."""
        tag_head = build_head(head, num_labels, label_names, self.decoding, self.span_options)
        self.tag_head_name = tag_head.module_name
        self.add_module(tag_head.module_name, tag_head)

    def task_head(self, task: dict) -> nn.Module:
        """A further task's head (`task`: its "name", "labels" and "head")."""
        labels = task["labels"]
        return build_head(task["head"], len(labels), labels, self.decoding, self.span_options)

    @property
    def tag_head(self) -> nn.Module:
        return getattr(self, self.tag_head_name)

    def loss_sum(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """The summed training loss of a batch, as the head defines it (cross-entropy over
        labelled subwords, or the CRF's negative log-likelihood of the gold word tags)."""
        return self.tag_head.loss_sum(logits, batch)

    @property
    def task_names(self) -> list[str | None]:
        """Every task's name, in task order ([None] for a one-task tagger, which has no name)."""
        return [self.task_name] + [task["name"] for task in self.more_tasks]

    @property
    def task_label_names(self) -> list[list[str]]:
        """Every task's label names, in task order."""
        return [self.label_names] + [task["labels"] for task in self.more_tasks]

    def heads(self) -> list[nn.Module]:
        """Every task's head, in task order."""
        return [self.tag_head] + [self.task_heads[task["name"]] for task in self.more_tasks]

    @torch.no_grad()
    def decode_words(self, logits: torch.Tensor, word_starts: torch.Tensor) -> torch.Tensor:
        """Predicted tag of each word (B, W) from its first subword's logits, as the head
        decodes (argmax, or the best path). Words without subwords (start -1) get the argmax
        of position 0; the caller marks them unaligned."""
        return self.tag_head.decode_words(logits, word_starts)


class Tagger(TaskHeads, nn.Module):
    """An encoder of any family -> (ModernBERT: its prediction head) -> pooling -> dropout ->
    classifier -> a tag head (heads/: linear or CRF). The encoder is registered under the family's own name (`bert`,
    `roberta`, `deberta`, ...; see bert_pos/modeling/encoders.py), so with the default options the
    state dict is that of the family's `*ForTokenClassification`."""

    def __init__(
        self,
        encoder: nn.Module,
        num_labels: int,
        dropout: float,
        pooling: str = "first",
        head: str = "linear",
        decode: str = "argmax",
        label_names: list[str] | None = None,
        padding_free: bool = False,
        task_name: str | None = None,
        more_tasks: list[dict] | None = None,
        max_span_words: int = 8,
        span_decode: str = "flat",
    ):
        """`task_name` and `more_tasks` (each {"name", "labels", "head"}): a run with several
        tasks (the first task's name, and each further task); None for one task."""
        super().__init__()
        if pooling not in POOLINGS or head not in HEADS or decode not in DECODINGS:
            raise ValueError(
                f"pooling {pooling!r}, head {head!r}, decode {decode!r}: expected "
                f"one of {POOLINGS}, {tuple(HEADS)}, {DECODINGS}"
            )
        config = encoder.config
        if padding_free:
            packing.check_family(config)
            packing.use_varlen_attention(encoder)
        self.padding_free = padding_free
        self.encoder_name = encoders.base_model_prefix(config)
        self.add_module(self.encoder_name, encoder)
        if encoders.has_prediction_head(config):
            self.head = encoders.prediction_head(config)
        self.dropout = nn.Dropout(dropout)
        width = config.hidden_size * (2 if pooling == "first_last" else 1)
        # the span head scores spans from a projection of each subword, not tags
        outputs = getattr(head_class(head), "input_width", num_labels)
        self.classifier = nn.Linear(width, outputs)
        # The initialisation BertForTokenClassification gives its fresh head.
        nn.init.normal_(self.classifier.weight, std=config.initializer_range)
        nn.init.zeros_(self.classifier.bias)
        self.pooling, self.head_type, self.decoding = pooling, head, decode
        self.label_names = label_names
        self.span_options = {"max_span_words": max_span_words, "span_decode": span_decode}
        self.add_tag_head(head, num_labels, label_names)  # heads/
        self.task_name, self.more_tasks = task_name, list(more_tasks or [])
        if self.more_tasks:  # created after the first task's, so its random draws stay put
            self.task_classifiers, self.task_heads = nn.ModuleDict(), nn.ModuleDict()
            for task in self.more_tasks:
                outputs = getattr(head_class(task["head"]), "input_width", len(task["labels"]))
                classifier = nn.Linear(width, outputs)
                nn.init.normal_(classifier.weight, std=config.initializer_range)
                nn.init.zeros_(classifier.bias)
                self.task_classifiers[task["name"]] = classifier
                self.task_heads[task["name"]] = self.task_head(task)

    @property
    def encoder(self) -> nn.Module:
        return getattr(self, self.encoder_name)

    @property
    def config(self):
        return self.encoder.config

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        word_index: torch.Tensor | None = None,
        all_tasks: bool = False,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Logits (B, T, num_labels) at every subword; `all_tasks`: a list of every task's.
        With mean or first_last pooling, a word's first subword carries the logits of the
        pooled word (`word_index` (B, T): the word of each subword among the example's scored
        words, -1 for none). Padding-free, the encoder runs on the batch's real tokens only,
        its output scattered back to (B, T, H)."""
        if self.padding_free:
            hidden = packing.encode_packed(self.encoder, input_ids, attention_mask)
        else:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
            hidden = hidden.last_hidden_state
        if hasattr(self, "head"):
            hidden = self.head(hidden)
        if self.pooling != "first":
            if word_index is None:
                raise ValueError(f"pooling={self.pooling} needs the batch's word_index")
            hidden = pool_words(hidden, word_index, self.pooling)
        hidden = self.dropout(hidden)
        logits = self.classifier(hidden)  # (B, T, num_labels)
        if not all_tasks:
            return logits
        return [logits] + [self.task_classifiers[task["name"]](hidden) for task in self.more_tasks]

    def tasks_loss_sum(self, logits: list[torch.Tensor], batch: dict, weights: list[float]):
        """The summed loss of every task (`forward(..., all_tasks=True)`'s logits), each
        weighted; with one task of weight 1, exactly `loss_sum`."""
        keys = [""] + [task_key(1, task["name"]) for task in self.more_tasks]
        total = None
        for head, task_logits, key, weight in zip(self.heads(), logits, keys, weights, strict=True):
            loss = head.loss_sum(task_logits, task_batch(batch, key))
            loss = loss if weight == 1 else loss * weight
            total = loss if total is None else total + loss
        return total

    def task_view(self, index: int) -> "Tagger":
        """Task `index` alone: a one-task tagger sharing this one's encoder, with a copy of
        that task's classifier and head (to export it as a standard token-classification
        model)."""
        if index == 0:
            classifier, tag_head, head, labels = (
                self.classifier,
                self.tag_head,
                self.head_type,
                None,
            )
        else:
            task = self.more_tasks[index - 1]
            classifier, tag_head = (
                self.task_classifiers[task["name"]],
                self.task_heads[task["name"]],
            )
            head, labels = task["head"], task["labels"]
        view = Tagger(
            self.encoder,
            classifier.out_features,
            self.dropout.p,
            self.pooling,
            head,
            self.decoding,
            labels if labels is not None else self.label_names,
            padding_free=self.padding_free,
            **self.span_options,
        )
        if hasattr(self, "head"):
            view.head = self.head
        view.classifier.load_state_dict(classifier.state_dict())
        view.tag_head.load_state_dict(tag_head.state_dict())
        return view


def unwrap(model: nn.Module) -> nn.Module:
    """The Tagger inside torch.compile's and DistributedDataParallel's wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


CONTEXT_KEY = "document_context_subwords"


def tagger_config(model: Tagger, label_names: list[str], context_subwords: int | None = None):
    """The tagger's Hugging Face config: its encoder's, with the labels, the head's dropout and
    the architecture, and bert_pos's options where they differ from BERT's recipe (a CRF,
    pooling or constrained decoding, which `*ForTokenClassification` would ignore).
    `context_subwords`: the document context it was trained with, which predict gives it."""
    config = copy.deepcopy(model.config)
    if context_subwords is not None:
        setattr(config, CONTEXT_KEY, context_subwords)
    config.architectures = [encoders.token_classification_class(config).__name__]
    config.id2label = dict(enumerate(label_names))
    config.label2id = {label: i for i, label in enumerate(label_names)}
    config.classifier_dropout = model.dropout.p
    options = {"pooling": model.pooling, "head": model.head_type, "decode": model.decoding}
    if model.more_tasks:
        options.update(task_name=model.task_name, more_tasks=model.more_tasks)
    if "span" in {model.head_type, *(task["head"] for task in model.more_tasks)}:
        options.update(model.span_options)
    if options != {"pooling": "first", "head": "linear", "decode": "argmax"}:
        config.bert_pos = options
        config.architectures = ["Tagger (bert_pos)"]
    return config


def tagger_from_config(config, **option_overrides) -> tuple[Tagger, list[str]]:
    """An untrained tagger of the shape `tagger_config` describes, and its label names;
    `option_overrides` (e.g. `decode="constrained"`) replace the saved options."""
    label_names = [config.id2label[i] for i in range(len(config.id2label))]
    dropout = config.classifier_dropout if config.classifier_dropout is not None else 0.1
    # pooling, head, decode; with several tasks task_name and more_tasks
    options = dict(getattr(config, "bert_pos", None) or {})
    options.update({key: value for key, value in option_overrides.items() if value is not None})
    model = Tagger(
        encoders.build_encoder(config),
        len(label_names),
        dropout,
        label_names=label_names,
        **options,
    )
    return model, label_names


def build_model(
    num_labels: int,
    dropout: float,
    pretrained_path: str | None = None,
    random_init: dict | None = None,
    vocab_size: int | None = None,
    pretrained_weights: bool = True,
    pooling: str = "first",
    head: str = "linear",
    decode: str = "argmax",
    label_names: list[str] | None = None,
    special_ids: dict | None = None,
    padding_free: bool | None = False,
    task_name: str | None = None,
    more_tasks: list[dict] | None = None,
    span_options: dict | None = None,
) -> Tagger:
    """A tagger on pretrained weights (a local folder or hub name, any family `AutoModel`
    loads) or on a random config (`random_init`: shape fields, optionally `model_type`; the
    tokenizer's `vocab_size` and `special_ids`).

    `pretrained_weights=False` builds the pretrained model's shape only, for loading a
    fine-tuned checkpoint into it. Attention runs through PyTorch's scaled-dot-product
    attention kernels where the family has them. `pooling`, `head`, `decode`: see the module
    docstring (`label_names` for the IOB2 transitions of `head=crf` and `decode=constrained`).
    `padding_free`: run the encoder on packed batches (bert_pos/modeling/packing.py); families that
    cannot pack exactly raise a ValueError; None: packed where the family packs exactly.
    """
    if pretrained_path is not None and pretrained_weights:
        config = AutoConfig.from_pretrained(pretrained_path)
        encoder = encoders.build_encoder(config, pretrained_path)
    elif pretrained_path is not None:
        encoder = encoders.build_encoder(AutoConfig.from_pretrained(pretrained_path))
    else:
        encoder = encoders.build_encoder(
            encoders.random_config(random_init, vocab_size, special_ids)
        )
    if padding_free is None:
        padding_free = encoder.config.model_type in packing.SUPPORTED
    return Tagger(
        encoder,
        num_labels,
        dropout,
        pooling,
        head,
        decode,
        label_names,
        padding_free=padding_free,
        task_name=task_name,
        more_tasks=more_tasks,
        **(span_options or {}),
    )
