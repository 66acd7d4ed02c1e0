"""A trained tagger as ONNX: exported by `torch.onnx`, run by ONNX Runtime, optionally int8.

    python -m bert_pos.export run_dir=<run> format=onnx output=<dir> [quantize=int8]
    python -m bert_pos.predict model_dir=<dir> input=text.txt
    python -m bert_pos.evaluate run_dir=<run> model_dir=<dir>

The graph is the tagger's encoder and classifiers: (input_ids, attention_mask[, word_index
for pooled taggers]) -> every task's logits (B, T, C), with dynamic batch and length. What
comes after the logits stays outside the graph, in the very head modules PyTorch runs
(argmax, constrained or CRF Viterbi, the span head's span scoring and decoding), loaded from
`heads.safetensors`; windows, document context and word alignment are bert_pos's own
encoding, as for a PyTorch tagger. So an ONNX folder tags through the same code paths as a
PyTorch export, with `OnnxTagger` in the place of `Tagger`.

The graph is traced by torch.onnx's TorchScript exporter with the encoder's eager attention,
then ONNX Runtime's transformer optimizer (`onnxruntime.transformers.optimizer`) fuses each
layer's attention, layer norms and GELU into its own kernels (Attention, SkipLayerNormalization,
BiasGelu): the patterns it fuses are those of this exporter. The torch.export-based exporter's
graph of the same model fused no attention and ran 12% slower in fp32 and 21% slower in int8
(experiments/RESULTS.md).

`quantize=int8` quantizes the fused graph's weights to int8 with ONNX Runtime's dynamic
quantization (`onnxruntime.quantization.quantize_dynamic`: int8 weights with a scale per
output channel, activations quantized per batch at run time; attention becomes QAttention).
The folder holds one graph, `model.onnx`; `onnx.json` says which.

ONNX Runtime and onnx are the optional extra `bert_pos[onnx]`.
"""

import json
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig

from bert_pos.modeling.tagger import Tagger, TaskHeads, tagger_config
from bert_pos.runtime.errors import UserError

ONNX_FILE = "model.onnx"
HEADS_FILE = "heads.safetensors"
ONNX_INFO = "onnx.json"
QUANTIZATIONS = ("none", "int8")


def require_onnx() -> None:
    """ONNX Runtime and the exporter's packages, or a one-line error naming the extra."""
    import importlib.util

    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(
            f"ONNX needs {', '.join(missing)}: pip install 'bert_pos[onnx]' (or the pinned "
            "versions in requirements-lock.txt)"
        )


class LogitsGraph(nn.Module):
    """What is exported: the tagger up to every task's logits."""

    def __init__(self, tagger: Tagger, pooled: bool):
        super().__init__()
        self.tagger, self.pooled = tagger, pooled

    def forward(self, input_ids, attention_mask, word_index=None):
        return tuple(
            self.tagger(input_ids, attention_mask, word_index if self.pooled else None, True)
        )


def export_onnx(trained, directory: Path, quantize: str = "none") -> Path:
    """Write `trained` (a `load_trained` result with a PyTorch tagger) into `directory` as an
    ONNX folder: model.onnx, heads.safetensors, config.json, the tokenizer, onnx.json."""
    require_onnx()
    if quantize not in QUANTIZATIONS:
        raise UserError(f"quantize={quantize}: expected one of {', '.join(QUANTIZATIONS)}")
    model = trained.model.eval()
    if model.padding_free:
        raise UserError("a padding-free tagger exports padded: load it without padding_free")
    directory.mkdir(parents=True, exist_ok=True)
    pooled = model.pooling != "first"
    example = trained.tokenizer(
        [["An", "example", "sentence", "."], ["Two", "."]],
        is_split_into_words=True,
        padding=True,
        return_tensors="pt",
    )
    inputs = (example["input_ids"], example["attention_mask"])
    if pooled:
        inputs += (torch.zeros_like(example["input_ids"]),)
    names = ["input_ids", "attention_mask", "word_index"][: len(inputs)]
    outputs = [f"logits_{i}" for i in range(len(model.task_label_names))]
    with tempfile.TemporaryDirectory() as scratch:
        traced, fused = Path(scratch) / "traced.onnx", Path(scratch) / "fused.onnx"
        # in eval mode: the exporter puts the wrapper, and so the tagger, back in its mode
        trace_graph(LogitsGraph(model, pooled).eval(), inputs, names, outputs, traced)
        fuse_graph(traced, fused, model.encoder.config)
        if quantize == "int8":
            quantize_graph(fused, directory / ONNX_FILE)
        else:
            shutil.copyfile(fused, directory / ONNX_FILE)
    save_file(head_state(model), directory / HEADS_FILE, metadata={"format": "pt"})
    tagger_config(model, model.label_names, trained.context_subwords).save_pretrained(directory)
    trained.tokenizer.save_pretrained(directory)
    info = {"graph": ONNX_FILE, "quantize": quantize, "inputs": names, "outputs": outputs}
    (directory / ONNX_INFO).write_text(json.dumps(info, indent=2) + "\n")
    return directory


def trace_graph(graph: nn.Module, inputs: tuple, names: list, outputs: list, path: Path) -> None:
    """Trace `graph` into ONNX with dynamic batch and length, the encoder on eager attention
    (the attention pattern ONNX Runtime's optimizer fuses; the same arithmetic as SDPA's)."""
    encoder_config = graph.tagger.encoder.config
    attention = encoder_config._attn_implementation
    encoder_config._attn_implementation = "eager"
    axes = {name: {0: "batch", 1: "length"} for name in names + outputs}
    try:
        with warnings.catch_warnings():
            # the TorchScript exporter is deprecated in favour of torch.export's, whose graphs
            # ONNX Runtime's optimizer does not fuse (see the module's docstring)
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                inputs,
                path,
                input_names=names,
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
    finally:
        encoder_config._attn_implementation = attention


def fuse_graph(traced: Path, fused: Path, encoder_config) -> None:
    """ONNX Runtime's transformer optimizer: fused attention, layer norms and GELU. Families
    whose patterns it does not know keep their unfused operators (still correct)."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(
        str(traced),
        model_type="bert",
        num_heads=getattr(encoder_config, "num_attention_heads", 0),
        hidden_size=getattr(encoder_config, "hidden_size", 0),
    )
    optimized.save_model_to_file(str(fused))


def quantize_graph(fused: Path, quantized: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # per-channel weight scales: one scale per tensor cost 1.26 test F1 points with MiniLM on
    # CoNLL-2003, one per output channel 0.18 (experiments/RESULTS.md). The fused operators
    # are outside ONNX's shape inference: their outputs are float.
    quantize_dynamic(
        fused,
        quantized,
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def head_state(model: Tagger) -> dict[str, torch.Tensor]:
    """The parameters of every task's head (a CRF's transitions, the span head's scorer),
    under the names `OnnxTagger` registers them by."""
    heads = {model.tag_head_name + "."} | {"task_heads."}
    return {
        name: tensor.contiguous()
        for name, tensor in model.state_dict().items()
        if any(name.startswith(prefix) for prefix in heads)
    }


class OnnxTagger(TaskHeads, nn.Module):
    """`Tagger`'s interface over an ONNX Runtime session: `forward` returns the logits the
    graph computes; the heads are the PyTorch modules a `Tagger` of this config has."""

    def __init__(self, directory: Path, config, decode: str | None = None):
        super().__init__()
        import onnxruntime

        options = dict(getattr(config, "bert_pos", None) or {})
        self.model_config = config
        self.label_names = [config.id2label[i] for i in range(len(config.id2label))]
        self.pooling = options.get("pooling", "first")
        self.head_type = options.get("head", "linear")
        self.decoding = decode or options.get("decode", "argmax")
        self.task_name = options.get("task_name")
        self.more_tasks = list(options.get("more_tasks") or [])
        self.span_options = {
            "max_span_words": options.get("max_span_words", 8),
            "span_decode": options.get("span_decode", "flat"),
        }
        self.padding_free = False
        self.add_tag_head(self.head_type, len(self.label_names), self.label_names)
        if self.more_tasks:
            self.task_heads = nn.ModuleDict(
                {task["name"]: self.task_head(task) for task in self.more_tasks}
            )
        self.load_state_dict(load_file(directory / HEADS_FILE))
        session_options = onnxruntime.SessionOptions()
        session_options.intra_op_num_threads = torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(
            str(directory / ONNX_FILE), session_options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [node.name for node in self.session.get_inputs()]

    @property
    def config(self):
        return self.model_config

    def forward(self, input_ids, attention_mask, word_index=None, all_tasks: bool = False):
        given = {"input_ids": input_ids, "attention_mask": attention_mask}
        if word_index is not None:
            given["word_index"] = word_index
        feeds = {name: given[name].cpu().numpy() for name in self.input_names}
        outputs = self.session.run(None, feeds)
        logits = [torch.from_numpy(array).to(input_ids.device) for array in outputs]
        return logits if all_tasks else logits[0]


def is_onnx_folder(directory: Path) -> bool:
    return (Path(directory) / ONNX_INFO).is_file()


def load_onnx(directory: Path, decode: str | None = None) -> tuple[OnnxTagger, list[str]]:
    """The ONNX folder's tagger (on the CPU, in eval mode) and its label names."""
    require_onnx()
    model = OnnxTagger(Path(directory), AutoConfig.from_pretrained(directory), decode)
    return model.eval(), model.label_names
