"""What bert_pos needs to know about each encoder family, read from the model's config.

    BERT (default), RoBERTa, XLM-R, DeBERTa-v2/v3, ELECTRA, DistilBERT, ModernBERT: any model
    `AutoModel` loads with a fast tokenizer.

- the encoder class and the name the family's `*ForTokenClassification` gives it (`bert`,
  `roberta`, `deberta`, `electra`, `distilbert`, `model`), so the tagger's state dict loads
  there; ModernBERT's token-classification models add a prediction head (dense, activation,
  norm) before the classifier, so its tagger has one too;
- how many positions a sequence may use (RoBERTa-style position ids start after the padding
  index, so 514 embeddings hold 512 tokens);
- which parameters belong to which depth, for layer-wise learning-rate decay;
- the tokenizer: byte-level BPE tokenizers (RoBERTa, ModernBERT, ...) must add a prefix space
  to pre-split words, or every word is tokenized as if it continued the previous one; and
  for random models, which kind of vocabulary the family uses.
"""

import contextlib
import inspect
import json
import logging
import re

from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification, AutoTokenizer

from bert_pos.data.vocabularies import build_tokenizer

log = logging.getLogger(__name__)

# Families whose position ids count from padding_idx + 1 (create_position_ids_from_input_ids).
OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert"}
# The vocabulary a randomly initialised model of a family gets, built from the training words.
TOKENIZER_KINDS = {
    "roberta": "bpe",
    "modernbert": "bpe",
    "xlm-roberta": "unigram",
    "deberta-v2": "unigram",
}  # others: wordpiece
# Config fields named otherwise in a family (random_init uses BERT's names).
FIELD_NAMES = {"distilbert": {"intermediate_size": "hidden_dim"}}


def encoder_class(config):
    """The family's base model class (BertModel, RobertaModel, ...)."""
    return AutoModel._model_mapping[type(config)]


def token_classification_class(config):
    return AutoModelForTokenClassification._model_mapping[type(config)]


def base_model_prefix(config) -> str:
    """The encoder's name in the family's `*ForTokenClassification` (`bert`, `roberta`, ...)."""
    return token_classification_class(config).base_model_prefix


def has_prediction_head(config) -> bool:
    """ModernBERT's token classifier puts a dense + activation + norm head before dropout."""
    return config.model_type == "modernbert"


def prediction_head(config):
    from transformers.models.modernbert.modeling_modernbert import ModernBertPredictionHead

    return ModernBertPredictionHead(config)


def build_encoder(config, pretrained_path: str | None = None):
    """The family's base model: pretrained weights from `pretrained_path`, or random weights
    of `config`'s shape; without a pooler, with PyTorch's SDPA attention where the family
    supports it (DeBERTa's disentangled attention does not)."""
    cls = encoder_class(config)
    kwargs = {}
    if "add_pooling_layer" in inspect.signature(cls.__init__).parameters:
        kwargs["add_pooling_layer"] = False  # token classification uses no pooler
    attention = "sdpa" if cls._supports_sdpa else "eager"
    if pretrained_path is not None:
        with quiet_transformers():
            encoder, loading = cls.from_pretrained(
                pretrained_path, attn_implementation=attention, output_loading_info=True, **kwargs
            )
        report_loading(pretrained_path, loading)
        return encoder
    config._attn_implementation = attention
    return cls(config, **kwargs)


@contextlib.contextmanager
def quiet_transformers():
    """transformers' own loading output off: its progress bar and its load report (a table
    with terminal colour codes, which log files keep as escape sequences). `report_loading`
    says what matters in one plain line."""
    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bars:
            transformers_logging.enable_progress_bar()


def report_loading(source: str, loading: dict) -> None:
    """One line when a checkpoint and the encoder disagree, none when they do not. A
    checkpoint's pooler is expected to go unused: a token classifier has none."""
    unused = [k for k in loading["unexpected_keys"] if not k.startswith("pooler.")]
    problems = []
    if loading["missing_keys"]:
        problems.append(
            f"not in the checkpoint, initialised at random: {named(loading['missing_keys'])}"
        )
    if unused:
        problems.append(f"in the checkpoint but unused: {named(unused)}")
    if loading["mismatched_keys"]:
        problems.append(f"of another shape in the checkpoint: {named(loading['mismatched_keys'])}")
    if problems:
        log.warning("encoder weights from %s: %s", source, "; ".join(problems))


def named(keys) -> str:
    keys = sorted(str(k) for k in keys)
    shown = ", ".join(keys[:5])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > 5 else ''})"


def random_config(random_init: dict, vocab_size: int, special_ids: dict | None = None):
    """The config of a randomly initialised encoder: `random_init` holds BERT-named shape
    fields and optionally `model_type` (default bert); the special-token ids are the
    tokenizer's, so padding and position offsets agree with it."""
    fields = dict(random_init)
    model_type = fields.pop("model_type", "bert")
    renames = FIELD_NAMES.get(model_type, {})
    fields = {renames.get(key, key): value for key, value in fields.items()}
    return AutoConfig.for_model(
        model_type, **{"vocab_size": vocab_size, **(special_ids or {}), **fields}
    )


def usable_positions(config) -> int:
    """Tokens a sequence may hold, special tokens included."""
    if config.model_type in OFFSET_POSITIONS:
        return config.max_position_embeddings - (config.pad_token_id + 1)
    return config.max_position_embeddings


def max_length_of(tokenizer, model_config) -> int:
    """Subwords per example, special tokens included: the smaller of the tokenizer's limit and
    the positions the model has (RoBERTa-style models lose two to their position offset)."""
    return min(tokenizer.model_max_length, usable_positions(model_config))


def layer_depth(name: str, num_layers: int, prefix: str) -> int:
    """0 for the embeddings (and what every layer shares, e.g. DeBERTa's relative position
    embeddings), l + 1 for encoder layer l, num_layers + 1 for the head (CRF included)."""
    if not name.startswith(f"{prefix}."):
        return num_layers + 1
    layer = re.match(
        rf"{re.escape(prefix)}\.(?:encoder\.layer|transformer\.layer|layers)\.(\d+)\.", name
    )
    if layer:
        return int(layer.group(1)) + 1
    if "embeddings" in name or name.startswith(f"{prefix}.encoder."):
        return 0
    return num_layers  # after the last layer (ModernBERT's final norm): with the top layer


# ---------------------------------------------------------------- tokenizers


def random_model_tokenizer(random_init, words: list[list[str]], directory):
    """A random model's tokenizer: a vocabulary of its family's kind (`TOKENIZER_KINDS`),
    built from the training words into `directory`."""
    model_type = random_init.get("model_type", "bert")
    kind = TOKENIZER_KINDS.get(model_type, "wordpiece")
    return build_tokenizer(kind, model_type, words, directory)


def load_tokenizer(source: str):
    """The fast tokenizer at `source`, fixed for pre-split words: a byte-level BPE tokenizer
    saved with `add_prefix_space=False` (the hub default of RoBERTa and others) gets a prefix
    space, as each word of a CoNLL sentence starts after a space."""
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.is_fast and without_prefix_space(tokenizer):
        add_prefix_space(tokenizer)
        log.info("%s: byte-level BPE without a prefix space; added one for pre-split words", source)
    return tokenizer


def byte_level_parts(node) -> list[dict]:
    """The ByteLevel pre-tokenizers in a tokenizer.json pre_tokenizer tree."""
    if not isinstance(node, dict):
        return []
    if node.get("type") == "ByteLevel":
        return [node]
    return [part for child in node.get("pretokenizers") or [] for part in byte_level_parts(child)]


def without_prefix_space(tokenizer) -> bool:
    pre_tokenizer = json.loads(tokenizer.backend_tokenizer.to_str()).get("pre_tokenizer")
    return any(not part.get("add_prefix_space", False) for part in byte_level_parts(pre_tokenizer))


def add_prefix_space(tokenizer) -> None:
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    for part in byte_level_parts(state["pre_tokenizer"]):
        part["add_prefix_space"] = True
    if (
        isinstance(state.get("post_processor"), dict)
        and "add_prefix_space" in state["post_processor"]
    ):
        state["post_processor"]["add_prefix_space"] = True
    tokenizer._tokenizer = Tokenizer.from_str(json.dumps(state))
    if hasattr(tokenizer, "add_prefix_space"):
        tokenizer.add_prefix_space = True
