"""Every config key's allowed values, defined once (the schema, the model and
the readers read them from here). No imports: any layer may use them.
"""

# tag schemes of input data; iob1 and bioes (BILOU's L-/U- read as E-/S-) become IOB2 on reading
SCHEMES = ("iob2", "iob1", "bioes")


LABEL_STRATEGIES = ("first", "all")  # which subwords of a word carry the loss


CONTEXTS = ("sentence", "document")


POOLINGS = ("first", "mean", "first_last")  # a word's vector from its subwords


HEADS = ("linear", "crf")


DECODINGS = ("argmax", "constrained")


EVAL_LEVELS = ("word", "subword")


EVAL_MODES = ("conlleval", "strict")


PRECISIONS = ("fp32", "bf16", "fp16", "auto")


DEVICES = ("auto", "cpu", "cuda")


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


NONFINITE_ACTIONS = ("stop", "skip")


LOSS_NORMALIZATIONS = ("average", "batch")


CHOICES = {
    "data.scheme": SCHEMES,
    "data.label_strategy": LABEL_STRATEGIES,
    "data.context": CONTEXTS,
    "model.pooling": POOLINGS,
    "model.head": HEADS,
    "model.decode": DECODINGS,
    "eval.level": EVAL_LEVELS,
    "eval.mode": EVAL_MODES,
    "precision": PRECISIONS,
    "device": DEVICES,
    "compile_mode": COMPILE_MODES,
    "nonfinite.action": NONFINITE_ACTIONS,
    "loss_normalization": LOSS_NORMALIZATIONS,
}
