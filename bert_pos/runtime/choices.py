"""The allowed values of the config's keys with a fixed set of values, defined once: the
schema checks them (bert_pos/config.py builds its `CHOICES` from these), the readers and the
model read them from here. No imports: any layer may use them. (`model.head`'s values are
the heads' registry, bert_pos/modeling/heads/.)
"""

# tag schemes of input data; iob1 and bioes (BILOU's L-/U- read as E-/S-) become IOB2 on reading
SCHEMES = ("iob2", "iob1", "bioes")
LABEL_STRATEGIES = ("first", "all")  # which subwords of a word carry the loss
CONTEXTS = ("sentence", "document")
POOLINGS = ("first", "mean", "first_last")  # a word's vector from its subwords
DECODINGS = ("argmax", "constrained")
SPAN_DECODINGS = ("flat", "nested")  # model.span_decode: spans may not overlap, or may nest
EVAL_LEVELS = ("word", "subword")
EVAL_MODES = ("conlleval", "strict")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
DEVICES = ("auto", "cpu", "cuda")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
NONFINITE_ACTIONS = ("stop", "skip")
LOSS_NORMALIZATIONS = ("average", "batch")
RESAMPLING_UNITS = ("auto", "document", "sentence")  # compare unit=, report --unit


def resampling_unit(requested: str, has_documents: bool) -> str:
    """`auto`: documents where the data marks them (sentences of one document share names
    and topics, so they are no independent draws), else sentences."""
    if requested != "auto":
        return requested
    return "document" if has_documents else "sentence"


# `loggers`: each tracker and the package it needs (its pip extra has the tracker's name)
TRACKERS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
