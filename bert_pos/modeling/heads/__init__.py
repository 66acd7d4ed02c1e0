"""Heads: what turns a tagger's logits into a loss and into tags. One module per head:

linear.py  cross-entropy over labelled subwords; argmax or constrained (Viterbi) decoding
crf.py     a linear-chain CRF over the words: its likelihood, and Viterbi
span.py    every span of up to max_span_words words classified into a type or none
paths.py   IOB2 transitions, path scores, the forward algorithm, Viterbi (shared)

A head is an `nn.Module` built as `Head(num_labels, label_names, decode)` with
`loss_sum(logits, batch)` (the batch's summed loss; the loop normalises it),
`decode_words(logits, word_starts)` (each word's tag id) and `module_name` (the prefix of its
parameters in checkpoints and exports). Adding a head: its module, a line in `HEADS` below,
its YAML comment in conf/model_common.yaml, and its tests. No torch here: the config check
reads `HEADS` before torch loads.
"""

import importlib

# model.head -> "module:class", imported when a tagger is built
HEADS = {
    "linear": "bert_pos.modeling.heads.linear:LinearHead",
    "crf": "bert_pos.modeling.heads.crf:CRFHead",
    "span": "bert_pos.modeling.heads.span:SpanHead",
}


def head_class(name: str) -> type:
    if name not in HEADS:
        raise ValueError(f"model.head={name!r}: expected one of {', '.join(HEADS)}")
    module, _, class_name = HEADS[name].partition(":")
    return getattr(importlib.import_module(module), class_name)


def build_head(
    name: str, num_labels: int, label_names: list[str] | None, decode: str, span_options=None
):
    """The head `name`; `span_options` (max_span_words, span_decode) for the span head."""
    if name == "span":
        options = span_options or {}
        return head_class(name)(
            num_labels,
            label_names,
            decode,
            options.get("max_span_words", 8),
            options.get("span_decode", "flat") == "nested",
        )
    return head_class(name)(num_labels, label_names, decode)
