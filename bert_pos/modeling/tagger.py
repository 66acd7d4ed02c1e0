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

`model.padding_free` is no option of the model but of how it runs: the encoder computes a
padded batch packed, without its padding (bert_pos/packing.py), and the logits come back in
the padded layout; checkpoints and exports do not record it.
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig

from bert_pos.data.labels import IGNORE_INDEX
from bert_pos.modeling import encoders, packing
from bert_pos.runtime.choices import DECODINGS, HEADS, POOLINGS

FORBIDDEN = -1e4  # a transition score no path can afford (finite: no inf - inf in sums)


def allowed_transitions(label_names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, C) allowed[i, j]: may tag j follow tag i; (C,) may a sentence start with a tag.
    IOB2: I-X only after B-X or I-X. Tags without I- prefixes (POS, chunk-less sets) are free."""
    count = len(label_names)
    allowed = torch.ones(count, count, dtype=torch.bool)
    start = torch.ones(count, dtype=torch.bool)
    for j, label in enumerate(label_names):
        if label.startswith("I-"):
            kind = label[2:]
            start[j] = False
            for i, previous in enumerate(label_names):
                allowed[i, j] = previous in (f"B-{kind}", f"I-{kind}")
    return allowed, start


def transition_penalties(allowed: torch.Tensor, allowed_start: torch.Tensor):
    """The fixed scores added to transitions and starts: 0 where allowed, FORBIDDEN elsewhere."""
    return (~allowed).float() * FORBIDDEN, (~allowed_start).float() * FORBIDDEN


class LinearChainCRF(nn.Module):
    """A linear-chain CRF over word emissions (B, W, C) with a prefix mask (B, W): learned
    transition, start and end scores, plus a fixed penalty on forbidden transitions."""

    def __init__(self, num_labels: int, allowed: torch.Tensor, allowed_start: torch.Tensor):
        super().__init__()
        self.transitions = nn.Parameter(torch.zeros(num_labels, num_labels))
        self.start = nn.Parameter(torch.zeros(num_labels))
        self.end = nn.Parameter(torch.zeros(num_labels))
        transition_penalty, start_penalty = transition_penalties(allowed, allowed_start)
        self.register_buffer("transition_penalty", transition_penalty, persistent=False)
        self.register_buffer("start_penalty", start_penalty, persistent=False)

    def scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            self.transitions + self.transition_penalty,
            self.start + self.start_penalty,
            self.end,
        )

    def log_likelihood(self, emissions, tags, mask) -> torch.Tensor:
        """log p(tags | emissions) per sequence (B,); sequences of length 0 give 0."""
        return path_score(emissions, tags, mask, *self.scores()) - log_partition(
            emissions, mask, *self.scores()
        )

    def decode(self, emissions, mask) -> torch.Tensor:
        return viterbi(emissions, mask, *self.scores())


def path_score(emissions, tags, mask, transitions, start, end) -> torch.Tensor:
    """Score of the given tag paths (B,): emissions + start + transitions + end."""
    mask = mask.to(emissions.dtype)
    tags = tags.clamp(min=0)
    lengths = mask.sum(1).long()
    emitted = emissions.gather(2, tags[..., None]).squeeze(2)  # (B, W)
    score = (emitted * mask).sum(1) + start[tags[:, 0]] * mask[:, 0]
    if tags.shape[1] > 1:
        steps = transitions[tags[:, :-1], tags[:, 1:]] * mask[:, 1:]
        score = score + steps.sum(1)
    last = tags.gather(1, (lengths - 1).clamp(min=0)[:, None]).squeeze(1)
    return score + end[last] * (lengths > 0)


def log_partition(emissions, mask, transitions, start, end) -> torch.Tensor:
    """log of the sum over all tag paths of exp(score) (B,), by the forward algorithm."""
    alpha = start + emissions[:, 0]  # (B, C)
    for w in range(1, emissions.shape[1]):
        step = torch.logsumexp(alpha[:, :, None] + transitions + emissions[:, w, None, :], dim=1)
        alpha = torch.where(mask[:, w, None], step, alpha)
    return torch.logsumexp(alpha + end, dim=1) * (mask[:, 0] > 0)


def viterbi(emissions, mask, transitions, start, end) -> torch.Tensor:
    """The best tag path of each sequence (B, W); positions past a sequence's end get 0."""
    batch, words, _ = emissions.shape
    score = start + emissions[:, 0]
    backpointers = []
    for w in range(1, words):
        candidates = score[:, :, None] + transitions  # (B, previous, next)
        best, best_previous = candidates.max(dim=1)
        backpointers.append(best_previous)
        score = torch.where(mask[:, w, None], best + emissions[:, w], score)
    score = score + end
    lengths = mask.sum(1).long()
    paths = torch.zeros(batch, words, dtype=torch.long, device=emissions.device)
    current = score.argmax(1)
    for w in range(words - 1, -1, -1):
        inside = w < lengths  # position w belongs to the sequence
        paths[:, w] = torch.where(inside, current, paths[:, w])
        if w > 0:
            previous = backpointers[w - 1].gather(1, current[:, None]).squeeze(1)
            # only step back from inside the sequence; past its end keep the last tag
            current = torch.where(inside, previous, current)
    return paths


def compact(
    values: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Move each row's masked-in entries to its front, keeping their order: CRF sequences
    must be prefixes, but a word without subwords (or an unlabelled one) can sit in between.
    Returns (values, prefix mask, positions) where positions[b, k] is the original index."""
    order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices
    index = order.view(*order.shape, *([1] * (values.dim() - 2))).expand_as(values)
    return values.gather(1, index), mask.gather(1, order), order


class Tagger(nn.Module):
    """An encoder of any family -> (ModernBERT: its prediction head) -> pooling -> dropout ->
    linear head (-> CRF). The encoder is registered under the family's own name (`bert`,
    `roberta`, `deberta`, ...; see bert_pos/encoders.py), so with the default options the
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
    ):
        super().__init__()
        if pooling not in POOLINGS or head not in HEADS or decode not in DECODINGS:
            raise ValueError(
                f"pooling {pooling!r}, head {head!r}, decode {decode!r}: expected "
                f"one of {POOLINGS}, {HEADS}, {DECODINGS}"
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
        self.classifier = nn.Linear(width, num_labels)
        # The initialisation BertForTokenClassification gives its fresh head.
        nn.init.normal_(self.classifier.weight, std=config.initializer_range)
        nn.init.zeros_(self.classifier.bias)
        self.pooling, self.head_type, self.decoding = pooling, head, decode
        self.crf = None
        if head == "crf" or decode == "constrained":
            if label_names is None:
                raise ValueError("head=crf and decode=constrained need the label names")
            allowed, allowed_start = allowed_transitions(label_names)
            if head == "crf":  # the CRF decodes with its own scores, penalties included
                self.crf = LinearChainCRF(num_labels, allowed, allowed_start)
            else:
                transition_penalty, start_penalty = transition_penalties(allowed, allowed_start)
                self.register_buffer("transition_penalty", transition_penalty, persistent=False)
                self.register_buffer("start_penalty", start_penalty, persistent=False)

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
    ) -> torch.Tensor:
        """Logits (B, T, num_labels) at every subword. With mean or first_last pooling, a
        word's first subword carries the logits of the pooled word (`word_index` (B, T): the
        word of each subword among the example's scored words, -1 for none). Padding-free, the
        encoder runs on the batch's real tokens only, its output scattered back to (B, T, H)."""
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
        return self.classifier(self.dropout(hidden))  # (B, T, num_labels)

    def loss_sum(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """The summed training loss of a batch: cross-entropy over labelled subwords, or the
        CRF's negative log-likelihood of each example's gold word tags."""
        if self.crf is None:
            return F.cross_entropy(
                logits.float().flatten(0, 1),
                batch["labels"].flatten(),
                ignore_index=IGNORE_INDEX,
                reduction="sum",
            )
        emissions, tags, mask = word_emissions(logits, batch["word_starts"], batch["word_labels"])
        return -self.crf.log_likelihood(emissions, tags, mask).sum()

    @torch.no_grad()
    def decode_words(self, logits: torch.Tensor, word_starts: torch.Tensor) -> torch.Tensor:
        """Predicted tag of each word (B, W) from its first subword's logits: argmax, or the
        best path (CRF, or constrained decoding). Words without subwords (start -1) get the
        argmax of position 0; the caller marks them unaligned."""
        argmax = at_word_starts(logits, word_starts).argmax(-1)
        if self.crf is None and self.decoding == "argmax":
            return argmax
        emissions, _, mask, positions = word_emissions(
            logits, word_starts, None, return_positions=True
        )
        if self.crf is not None:
            paths = self.crf.decode(emissions, mask)
        else:
            paths = viterbi(
                emissions.log_softmax(-1),
                mask,
                self.transition_penalty,
                self.start_penalty,
                torch.zeros_like(self.start_penalty),
            )
        decoded = argmax.clone()
        decoded.scatter_(1, positions, torch.where(mask, paths, decoded.gather(1, positions)))
        return decoded


def pool_words(hidden: torch.Tensor, word_index: torch.Tensor, pooling: str) -> torch.Tensor:
    """Each subword of a word gets the word's pooled vector: the mean of its subwords, or its
    first and last subwords concatenated; subwords of no word keep their own (doubled for
    first_last, so every position has the head's width)."""
    batch, length, width = hidden.shape
    valid = word_index >= 0
    words = int(word_index.max().clamp(min=0)) + 1
    flat = torch.arange(batch, device=hidden.device)[:, None] * words + word_index.clamp(
        min=0
    )  # (B, T) row-wise word slot
    if pooling == "mean":
        sums = hidden.new_zeros(batch * words, width).index_add_(0, flat[valid], hidden[valid])
        counts = hidden.new_zeros(batch * words).index_add_(
            0, flat[valid], hidden.new_ones(int(valid.sum()))
        )
        pooled = sums / counts.clamp(min=1)[:, None]
        return torch.where(valid[..., None], pooled[flat], hidden)
    positions = torch.arange(length, device=hidden.device).expand(batch, length)
    first = torch.full((batch * words,), length, device=hidden.device, dtype=torch.long)
    last = torch.full((batch * words,), -1, device=hidden.device, dtype=torch.long)
    first = first.scatter_reduce(0, flat[valid], positions[valid], "amin")
    last = last.scatter_reduce(0, flat[valid], positions[valid], "amax")
    first_of = torch.where(valid, first[flat], positions)  # (B, T)
    last_of = torch.where(valid, last[flat], positions)

    def at(index):
        return hidden.gather(1, index[..., None].expand(-1, -1, width))

    return torch.cat([at(first_of), at(last_of)], dim=-1)


def at_word_starts(values: torch.Tensor, word_starts: torch.Tensor) -> torch.Tensor:
    """The rows of `values` (B, T, C) at each word's first subword (B, W): (B, W, C). Padding
    words and words without subwords (start -1) read position 0; callers mask them."""
    index = word_starts.clamp(min=0)[..., None].expand(-1, -1, values.shape[-1])
    return values.gather(1, index)


def word_emissions(logits, word_starts, word_labels=None, return_positions=False):
    """The logits at each word's first subword as CRF emissions (B, W, C), float32, with the
    words that have a subword (and a label, when labels are given) moved to the front."""
    valid = word_starts >= 0
    if word_labels is not None:
        valid &= word_labels != IGNORE_INDEX
    emissions = at_word_starts(logits.float(), word_starts)
    emissions, mask, positions = compact(emissions, valid)
    tags = None if word_labels is None else word_labels.gather(1, positions)
    if return_positions:
        return emissions, tags, mask, positions
    return emissions, tags, mask


def unwrap(model: nn.Module) -> nn.Module:
    """The Tagger inside torch.compile's and DistributedDataParallel's wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def tagger_config(model: Tagger, label_names: list[str]):
    """The tagger's Hugging Face config: its encoder's, with the labels, the head's dropout and
    the architecture, and bert_pos's options where they differ from BERT's recipe (a CRF,
    pooling or constrained decoding, which `*ForTokenClassification` would ignore)."""
    config = copy.deepcopy(model.config)
    config.architectures = [encoders.token_classification_class(config).__name__]
    config.id2label = dict(enumerate(label_names))
    config.label2id = {label: i for i, label in enumerate(label_names)}
    config.classifier_dropout = model.dropout.p
    options = {"pooling": model.pooling, "head": model.head_type, "decode": model.decoding}
    if options != {"pooling": "first", "head": "linear", "decode": "argmax"}:
        config.bert_pos = options
        config.architectures = ["Tagger (bert_pos)"]
    return config


def tagger_from_config(config, **option_overrides) -> tuple[Tagger, list[str]]:
    """An untrained tagger of the shape `tagger_config` describes, and its label names;
    `option_overrides` (e.g. `decode="constrained"`) replace the saved options."""
    label_names = [config.id2label[i] for i in range(len(config.id2label))]
    dropout = config.classifier_dropout if config.classifier_dropout is not None else 0.1
    options = dict(getattr(config, "bert_pos", None) or {})  # pooling, head, decode
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
) -> Tagger:
    """A tagger on pretrained weights (a local folder or hub name, any family `AutoModel`
    loads) or on a random config (`random_init`: shape fields, optionally `model_type`; the
    tokenizer's `vocab_size` and `special_ids`).

    `pretrained_weights=False` builds the pretrained model's shape only, for loading a
    fine-tuned checkpoint into it. Attention runs through PyTorch's scaled-dot-product
    attention kernels where the family has them. `pooling`, `head`, `decode`: see the module
    docstring (`label_names` for the IOB2 transitions of `head=crf` and `decode=constrained`).
    `padding_free`: run the encoder on packed batches (bert_pos/packing.py); families that
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
        encoder, num_labels, dropout, pooling, head, decode, label_names, padding_free=padding_free
    )
