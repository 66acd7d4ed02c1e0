"""Tagging new text (bert_pos/inference/tagging.py, bert_pos.predict): word splitting with
offsets, windows for long sentences, the command's text, JSON lines and CoNLL outputs, and
one-line errors.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bert_pos.data.encoding import word_windows
from bert_pos.inference.loading import load_trained
from bert_pos.inference.tagging import tag_sentences

ROOT = Path(__file__).resolve().parents[1]


def test_raw_text_is_split_into_sentences_and_words_with_exact_offsets():
    from bert_pos.inference.text import line_sentences, text_sentences

    line = (
        "Mr. O'Neill visited the U.S. on 1996-08-22, said Acme Inc. officials. It's over. He left."
    )
    sentences = line_sentences(line)
    assert [[w for w, _, _ in s] for s in sentences] == [
        ["Mr.", "O'Neill", "visited", "the", "U.S.", "on", "1996-08-22", ",", "said"]
        + ["Acme", "Inc.", "officials", "."],
        ["It", "'s", "over", "."],
        ["He", "left", "."],
    ]
    assert all(line[start:end] == word for s in sentences for word, start, end in s)
    text = ["First line.", "", "", "Second paragraph.  Still it.", "Same paragraph."]
    found = [(s.line, s.paragraph, len(s.words)) for s in text_sentences(text)]
    assert found == [(1, 0, 3), (4, 1, 3), (4, 1, 3), (5, 1, 3)]


def test_other_languages_are_split_by_spacys_rules_for_them():
    pytest.importorskip("spacy")
    from bert_pos.inference.text import sentence_splitter
    from bert_pos.runtime.errors import UserError

    line = "L'homme est arrivé à Paris. Il est parti aujourd'hui."
    french = sentence_splitter("fr")(line)
    assert [[w for w, _, _ in s] for s in french] == [
        ["L'", "homme", "est", "arrivé", "à", "Paris", "."],  # the elided article on its own
        ["Il", "est", "parti", "aujourd'hui", "."],
    ]
    assert all(line[start:end] == word for s in french for word, start, end in s)
    (german,) = sentence_splitter("de")("Er kam z.B. am Montag nach Berlin.")
    assert "z.B." in [w for w, _, _ in german]  # an abbreviation of German's ends no sentence
    with pytest.raises(UserError, match=r"^language=qq: spaCy cannot split it"):
        sentence_splitter("qq")


@pytest.mark.parametrize(
    "language, missing, extra", [("en", "segtok", "text"), ("de", "spacy", "languages")]
)
def test_a_missing_text_extra_is_named_in_one_line(monkeypatch, language, missing, extra):
    import importlib.util

    from bert_pos.inference.text import sentence_splitter
    from bert_pos.runtime.errors import UserError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == missing else real(name)
    )
    with pytest.raises(UserError, match=rf"pip install 'bert_pos\[{extra}\]'") as raised:
        sentence_splitter(language)
    assert "\n" not in str(raised.value)


def test_docstart_lines_separate_documents_of_raw_text():
    from bert_pos.inference.text import text_sentences

    text = ["-DOCSTART-", "", "One. Two.", "", "Three.", "-DOCSTART-", "Four.", " -DOCSTART- "]
    text += ["", "Five."]
    found = [
        (s.line, s.document, s.paragraph, s.opens_document, [w for w, _, _ in s.words])
        for s in text_sentences(text)
    ]
    assert found == [
        (3, 0, 0, True, ["One", "."]),  # a marker before any text starts no second document
        (3, 0, 0, False, ["Two", "."]),
        (5, 0, 1, False, ["Three", "."]),
        (7, 1, 2, True, ["Four", "."]),  # a marker ends the paragraph too
        (10, 2, 3, True, ["Five", "."]),
    ]


def test_conllu_from_raw_text_marks_new_documents_and_paragraphs():
    from collections import Counter

    from bert_pos.data.conllu import new_conllu
    from bert_pos.inference.predict_run import text_units

    lines = ["-DOCSTART-", "One. Two.", "", "Three.", "-DOCSTART-", "Four."]
    units = list(text_units(lines, Counter()))
    words = [[w for w, _, _ in unit.words] for unit in units]
    tags = [[["X"] * len(w)] for w in words]
    conllu = new_conllu(
        [u.text for u in units], words, [3], tags, [u.conllu_comments() for u in units]
    )
    blocks = conllu.split("\n\n")[:-1]
    assert [[line for line in b.splitlines() if line.startswith("#")] for b in blocks] == [
        ["# newdoc", "# newpar", "# text = One."],
        ["# text = Two."],
        ["# newpar", "# text = Three."],
        ["# newdoc", "# newpar", "# text = Four."],
    ]


@pytest.mark.parametrize(
    "counts, budget", [([3] * 40, 20), ([1, 5, 2, 7, 1, 1, 3] * 9, 12), ([2] * 5, 10)]
)
def test_windows_fit_the_budget_and_keep_every_word_once(counts, budget):
    windows = word_windows(counts, budget)
    kept = [w for _, _, keep_start, keep_end in windows for w in range(keep_start, keep_end)]
    assert kept == list(range(len(counts)))
    for start, end, keep_start, keep_end in windows:
        assert sum(counts[start:end]) <= budget and start <= keep_start <= keep_end <= end
    for (_, first_end, *_), (second_start, *_) in zip(windows, windows[1:]):
        assert (
            second_start < first_end
        )  # consecutive windows overlap: every kept word has context on both sides


def test_a_word_longer_than_the_window_is_an_error():
    with pytest.raises(ValueError, match="word 1 alone has 30 subwords"):
        word_windows([2, 30, 2], 20)


@pytest.mark.slow
def test_600_word_sentence_is_tagged_whole(trained_run):
    trained = load_trained(trained_run[0] / "model")
    model, label_names = trained.model, trained.label_names
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(trained_run[0] / "model")
    words = ("Police in Kasaburg arrested Renmi Tordun on Tuesday .".split() * 67)[:600]
    assert (
        len(tokenizer(words, is_split_into_words=True)["input_ids"])
        > model.config.max_position_embeddings
    )
    cpu, no_autocast = torch.device("cpu"), torch.autocast("cpu", enabled=False)
    tagged = tag_sentences(model, tokenizer, [words], label_names, 8, cpu, no_autocast)[0]
    assert len(tagged) == 600 and all(probability > 0 for _, probability in tagged)
    # stitching: each word's tag is the one its keeping window gives it when tagged alone
    budget = model.config.max_position_embeddings - 2
    windows = word_windows([len(tokenizer.tokenize(w)) for w in words], budget)
    assert len(windows) > 2
    for start, end, keep_start, keep_end in windows:
        alone = tag_sentences(
            model, tokenizer, [words[start:end]], label_names, 8, cpu, no_autocast
        )[0]
        for w in range(keep_start, keep_end):
            assert tagged[w][0] == alone[w - start][0]
            assert tagged[w][1] == pytest.approx(alone[w - start][1], abs=1e-5)


def run_predict(*overrides, stdin=None):
    result = subprocess.run(
        [sys.executable, "-m", "bert_pos.predict", *overrides],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, result.stderr


@pytest.mark.slow
def test_cli_text_to_tsv_and_jsonl(trained_run):
    text = "Lovigal Holdings signed a deal with Vifenport Bank .\nPrices rose sharply .\n"
    tsv, log = run_predict(f"model_dir={trained_run[0]}", stdin=text)
    blocks = tsv.strip("\n").split("\n\n")
    assert len(blocks) == 2 and blocks[1].split("\n")[0].split("\t")[0] == "Prices"
    assert "sentences/s" in log
    jsonl, _ = run_predict(f"model_dir={trained_run[0] / 'model'}", "format=jsonl", stdin=text)
    records = [json.loads(line) for line in jsonl.splitlines()]
    assert records[0]["words"][:2] == ["Lovigal", "Holdings"] and len(records) == 2
    for record in records:
        for entity in record.get("entities", []):
            assert record["text"][entity["start"] : entity["end"]] == entity["text"]


@pytest.mark.slow
def test_cli_conll_input(trained_run, tmp_path):
    conll = tmp_path / "in.txt"
    conll.write_text("-DOCSTART- -X- -X- O\n\nPeter NNP B-NP B-PER\nsaid VBD B-VP O\n\nOK UH O O\n")
    tsv, _ = run_predict(f"model_dir={trained_run[0]}", f"input={conll}", "input_format=conll")
    assert [line.split("\t")[0] for line in tsv.split("\n") if line] == ["Peter", "said", "OK"]


@pytest.mark.slow
def test_a_compiled_encoder_tags_as_the_eager_one(trained_run):
    """compile=true: one dynamic graph for batches of every size and length, the same tags."""
    lengths = [3, 11, 5, 17, 2, 8, 13, 1, 6, 9]
    words = "Sator said Isvello Motors would open an office in Viport on Monday".split()
    text = "".join(" ".join((words * 2)[:n]) + "\n" for n in lengths)
    tags = []
    for compiled in ("false", "true"):
        tsv, log = run_predict(
            f"model_dir={trained_run[0]}", "batch_size=3", f"compile={compiled}", stdin=text
        )
        assert ("compiling the encoder" in log) == (compiled == "true")
        tags.append([line.split("\t")[1] for line in tsv.splitlines() if line])
    assert len(tags[0]) == sum(lengths) and tags[0] == tags[1]


@pytest.mark.slow
def test_a_missing_model_or_input_is_one_line_naming_the_key(trained_run, tmp_path):
    from tests.helpers import run_command

    missing_model = run_command("predict", f"model_dir={tmp_path / 'nonexistent'}")
    output = missing_model.stdout + missing_model.stderr
    assert missing_model.returncode == 1 and "Traceback" not in output
    assert output.strip().splitlines()[-1].startswith(f"model_dir={tmp_path / 'nonexistent'}: ")
    missing_input = run_command(
        "predict", f"model_dir={trained_run[0]}", f"input={tmp_path / 'no.txt'}"
    )
    output = missing_input.stdout + missing_input.stderr
    assert missing_input.returncode == 1 and "Traceback" not in output
    assert f"input={tmp_path / 'no.txt'}: no such file" in output


def test_a_word_without_subwords_gets_evaluations_tag(tiny_model, tokenizer):
    """Without O in the label set (POS tags) evaluation scores such a word as `<none>`;
    predict must say the same, not the first label."""
    from contextlib import nullcontext

    from bert_pos.scoring.scorer import UNALIGNED

    pos_like = [f"T{i}" for i in range(9)]
    (tags,) = tag_sentences(
        tiny_model,
        tokenizer,
        [["Peter", "\u200b", "said"]],
        pos_like,
        4,
        torch.device("cpu"),
        nullcontext(),
    )
    assert tags[1] == (UNALIGNED, 0.0) and tags[0][0] in pos_like


def test_on_a_cpu_batches_are_as_long_as_their_longest_sentence(tiny_model, tokenizer):
    """Predict pads as training and evaluation pad on the device (`padding_multiple`): to a
    multiple of 8 on CUDA, where tensor cores want it, not at all on the CPU, where every
    padding position is extra work (it cost predict 13% of its speed)."""
    from contextlib import nullcontext

    widths = []
    tiny_model.register_forward_pre_hook(lambda _, inputs: widths.append(inputs[0].shape[1]))
    words = "Sator said Isvello Motors would open an office in Viport on Monday".split()
    sentences = [words[:n] for n in (3, 11, 5, 1, 9)]
    labels = ["O", "B-ORG", "I-ORG", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    tag_sentences(tiny_model, tokenizer, sentences, labels, 2, torch.device("cpu"), nullcontext())
    subwords = {len(tokenizer(s, is_split_into_words=True)["input_ids"]) for s in sentences}
    assert len(widths) == 3 and set(widths) <= subwords  # each batch: its longest sentence
    assert any(width % 8 for width in widths)  # (not lengths that are multiples of 8 anyway)
