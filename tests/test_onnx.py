"""ONNX export (bert_pos/inference/onnx_model.py): a tiny trained tagger's logits through ONNX
Runtime equal PyTorch's, its decoded tags are identical for the linear and CRF heads (windows
and document context too), int8 runs and is compared with fp32, and the extra is named when
missing."""

import json
from contextlib import nullcontext

import pytest
import torch
from omegaconf import OmegaConf

from tests.helpers import FAMILIES, SENTENCES, TINY_DEMO_OVERRIDES, compose_config, run_command

pytest.importorskip("onnxruntime")

WINDOW = 64  # TINY_DEMO's max_position_embeddings: the long sentence below is windowed


def trained_run(run_dir, extra: list[str]):
    from bert_pos.train import train

    cfg = compose_config(TINY_DEMO_OVERRIDES + ["epochs=2", "device=cpu"] + extra)
    train(cfg, run_dir)
    (run_dir / ".hydra").mkdir()  # as the command saves it: a run folder
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A linear tagger, and a CRF tagger trained with document context, trained once."""
    root = tmp_path_factory.mktemp("onnx_runs")
    return {
        "linear": trained_run(root / "linear", []),
        "crf": trained_run(
            root / "crf",
            ["model.head=crf", "data.context=document", "data.context_subwords=48"],
        ),
    }


def demo_sentences(run_dir) -> list[list[str]]:
    from bert_pos.data.conll import read_conll

    sentences = [s.words for s in read_conll(run_dir / "demo_corpus" / "validation.txt", 3, None)]
    long_sentence = [word for sentence in sentences[:12] for word in sentence]
    assert len(long_sentence) > WINDOW  # more subwords than the model's positions
    return sentences + [long_sentence]


@pytest.mark.slow
@pytest.mark.parametrize("head", ["linear", "crf"])
def test_onnx_logits_and_tags_equal_pytorchs(runs, tmp_path, head):
    from bert_pos.inference.loading import load_trained
    from bert_pos.inference.onnx_model import export_onnx
    from bert_pos.inference.tagging import input_loader, tag_tasks

    run_dir = runs[head]
    torch_tagger = load_trained(run_dir)
    export_onnx(torch_tagger, tmp_path / "onnx")
    onnx_tagger = load_trained(tmp_path / "onnx")
    sentences = demo_sentences(run_dir)

    loader = input_loader(
        torch_tagger.model, torch_tagger.tokenizer, sentences, torch_tagger.label_names, 16
    )
    windows = 0
    for batch in loader:  # every batch shape: dynamic batch and length
        inputs = (batch["input_ids"], batch["attention_mask"], batch["word_index"])
        with torch.inference_mode():
            ours = torch_tagger.model(*inputs)
        theirs = onnx_tagger.model(*inputs)
        assert theirs.shape == ours.shape
        assert torch.allclose(theirs, ours, atol=1e-4), float((theirs - ours).abs().max())
        windows += int((batch["first_word"] > 0).sum())
    assert windows > 0

    tagged = [
        tag_tasks(
            t.model, t.tokenizer, sentences, [t.label_names], 16, torch.device("cpu"), nullcontext()
        )
        for t in (torch_tagger, onnx_tagger)
    ]
    (ours,), (theirs,) = tagged
    assert [[tag for tag, _ in s] for s in ours] == [[tag for tag, _ in s] for s in theirs]
    probabilities = [[p for sentence in side for _, p in sentence] for side in (ours, theirs)]
    assert max(abs(a - b) for a, b in zip(*probabilities, strict=True)) < 1e-4


@pytest.mark.slow
def test_evaluate_and_predict_run_from_an_onnx_folder_with_document_context(runs, tmp_path):
    run_dir = runs["crf"]
    onnx_dir = tmp_path / "onnx"
    result = run_command(
        "export", f"run_dir={run_dir}", "format=onnx", f"output={onnx_dir}", timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((onnx_dir / "onnx.json").read_text())["quantize"] == "none"
    for overrides in ([], [f"model_dir={onnx_dir}"]):
        result = run_command("evaluate", f"run_dir={run_dir}", "split=test", *overrides)
        assert result.returncode == 0, result.stderr[-3000:]
    evaluated = run_dir / "eval"
    pytorch = (evaluated / "test-best" / "predictions.txt").read_text()
    onnx = (evaluated / "test-model-onnx" / "predictions.txt").read_text()
    assert pytorch == onnx
    scores = [
        json.loads((evaluated / name / "metrics.json").read_text())
        for name in ("test-best", "test-model-onnx")
    ]
    assert scores[0]["f1"] == scores[1]["f1"] and scores[1]["settings"]["model_dir"]

    text = tmp_path / "in.txt"
    text.write_text("Sator said on Monday that Isvello Motors would open an office in Viport .\n")
    outputs = []
    for model_dir in (run_dir, onnx_dir):
        result = run_command("predict", f"model_dir={model_dir}", f"input={text}", "format=jsonl")
        assert result.returncode == 0, result.stderr[-3000:]
        outputs.append(json.loads(result.stdout))
    assert outputs[0]["tags"] == outputs[1]["tags"]
    compiled = run_command("predict", f"model_dir={onnx_dir}", f"input={text}", "compile=true")
    output = compiled.stdout + compiled.stderr
    assert compiled.returncode == 1 and "Traceback" not in output
    assert output.strip().splitlines()[-1].startswith("compile=true compiles a PyTorch tagger")


@pytest.mark.slow
def test_predict_reads_each_sentence_amid_its_document_as_evaluation_does(runs, tmp_path):
    """A tagger trained with document context: predict's tags equal evaluation's on the same
    file, also where chunks end inside documents (their context comes from the neighbouring
    chunks), from the run and from its ONNX export; without context they differ."""
    from bert_pos.scoring.predictions import read_predictions

    run_dir, onnx_dir = runs["crf"], tmp_path / "onnx"
    result = run_command("evaluate", f"run_dir={run_dir}", "split=test")
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = read_predictions(run_dir / "eval" / "test-best" / "predictions.txt").predicted
    result = run_command("export", f"run_dir={run_dir}", "format=onnx", f"output={onnx_dir}")
    assert result.returncode == 0, result.stderr[-3000:]

    def predicted(model_dir, *overrides) -> list[list[str]]:
        output = tmp_path / "out.tsv"
        result = run_command(
            "predict",
            f"model_dir={model_dir}",
            f"input={run_dir / 'demo_corpus' / 'test.txt'}",
            "input_format=conll",
            f"output={output}",
            *overrides,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        blocks = [block for block in output.read_text().split("\n\n") if block.strip()]
        return [[line.split("\t")[1] for line in block.splitlines()] for block in blocks]

    for model_dir in (run_dir, run_dir / "model", onnx_dir):  # the context each one records
        assert predicted(model_dir, "chunk_sentences=7") == evaluated
    assert predicted(run_dir) == evaluated
    assert predicted(run_dir, "document_context=false") != evaluated


@pytest.mark.slow
def test_int8_runs_and_is_compared_with_fp32(runs, tmp_path):
    from bert_pos.inference.loading import load_trained
    from bert_pos.inference.onnx_model import export_onnx
    from bert_pos.inference.tagging import tag_sentences

    run_dir = runs["linear"]
    trained = load_trained(run_dir)
    export_onnx(trained, tmp_path / "fp32")
    export_onnx(trained, tmp_path / "int8", quantize="int8")
    sizes = [(tmp_path / name / "model.onnx").stat().st_size for name in ("fp32", "int8")]
    assert sizes[1] < sizes[0] / 2  # int8 weights
    sentences = demo_sentences(run_dir)
    tags = []
    for name in ("fp32", "int8"):
        t = load_trained(tmp_path / name)
        tagged = tag_sentences(
            t.model, t.tokenizer, sentences, t.label_names, 16, torch.device("cpu"), nullcontext()
        )
        tags.append([tag for sentence in tagged for tag, _ in sentence])
    agreement = sum(a == b for a, b in zip(*tags, strict=True)) / len(tags[0])
    print(f"int8 tags equal to fp32's on {agreement:.4f} of {len(tags[0])} words")
    assert agreement >= 0.9


@pytest.mark.slow
@pytest.mark.parametrize("model_type", FAMILIES)
def test_every_family_exports_fused_and_int8(model_type, tmp_path):
    """The trace, ONNX Runtime's fusion and int8 for each encoder family: the fused graph's
    logits equal PyTorch's on batches of other sizes and lengths than the traced one."""
    import onnxruntime

    from bert_pos.inference.onnx_model import LogitsGraph, fuse_graph, quantize_graph, trace_graph
    from tests.test_encoders import family_tokenizer, tiny_model

    tokenizer = family_tokenizer(model_type, tmp_path)
    model = tiny_model(model_type, tokenizer)

    def encoded(sentences):
        return tokenizer(sentences, is_split_into_words=True, padding=True, return_tensors="pt")

    traced, fused, int8 = (tmp_path / f"{name}.onnx" for name in ("traced", "fused", "int8"))
    example = encoded(SENTENCES[:2])
    names = ["input_ids", "attention_mask"]
    trace_graph(LogitsGraph(model, False).eval(), tuple(example[n] for n in names), names,
                ["logits_0"], traced)  # fmt: skip
    fuse_graph(traced, fused, model.encoder.config)
    quantize_graph(fused, int8)
    for batch in (encoded(SENTENCES[2:7]), encoded(SENTENCES[:1])):
        with torch.inference_mode():
            ours = model(batch["input_ids"], batch["attention_mask"])
        for graph, tolerance in ((fused, 1e-4), (int8, 0.1)):
            session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
            (theirs,) = session.run(None, {n: batch[n].numpy() for n in names})
            difference = float((torch.from_numpy(theirs) - ours).abs().max())
            assert difference < tolerance, (graph.name, difference)


def test_a_missing_onnx_extra_is_named_in_one_line(monkeypatch):
    import importlib.util

    from bert_pos.inference.onnx_model import require_onnx
    from bert_pos.runtime.errors import UserError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name)
    )
    with pytest.raises(UserError, match=r"ONNX needs onnxruntime: pip install 'bert_pos\[onnx\]'"):
        require_onnx()
