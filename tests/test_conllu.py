"""CoNLL-U in and out: comments, documents, multiword tokens and empty nodes read as the CoNLL
2018 scorer reads them; every malformed line named with file:line; predictions.conllu the
input byte for byte but the predicted column; scores equal to the official scorer's."""

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from bert_pos.data.conllu import (
    ConlluFormatError,
    parse_conllu,
    read_conllu,
    universal_features,
    write_conllu,
)
from bert_pos.scoring.metrics import token_accuracy
from tests.helpers import REAL_DATA, ROOT, compose_config, run_command


def word(i, form, upos="NOUN", xpos="NN", feats="_"):
    return "\t".join([str(i), form, form.lower(), upos, xpos, feats, "0", "root", "_", "_"])


GOOD = "\n".join(
    [
        "# newdoc id = a",
        "# sent_id = 1",
        "# text = I cannot go.",
        word(1, "I", "PRON", "PRP", "Case=Nom|Number=Sing|Person=1|PronType=Prs"),
        "2-3\tcannot\t_\t_\t_\t_\t_\t_\t_\t_",
        word(2, "can", "AUX", "MD", "VerbForm=Fin"),
        word(3, "not", "PART", "RB", "Polarity=Neg"),
        word(4, "go", "VERB", "VB", "VerbForm=Inf|ExtPos=VERB"),
        "4.1\tgone\t_\t_\t_\t_\t_\t_\t4:conj\t_",
        word(5, ".", "PUNCT", ".", "_"),
        "",
        "# sent_id = 2",
        word(1, "Yes", "INTJ", "UH"),
        "",
        "# newdoc id = b",
        "# sent_id = 3",
        word(1, "Fine", "ADJ", "JJ", "Degree=Pos"),
        word(2, "!", "PUNCT", "."),
        "",
        "",
    ]
)


@pytest.fixture
def good(tmp_path) -> Path:
    path = tmp_path / "good.conllu"
    path.write_text(GOOD)
    return path


def test_syntactic_words_documents_and_lines(good):
    sentences = read_conllu(good, 3, None)
    assert [s.words for s in sentences] == [["I", "can", "not", "go", "."], ["Yes"], ["Fine", "!"]]
    assert sentences[0].labels == ["PRON", "AUX", "PART", "VERB", "PUNCT"]  # no range, no 4.1
    assert [s.document_id for s in sentences] == [0, 0, 1]
    assert [s.line for s in sentences] == [4, 13, 17]  # the first word's line
    parsed = parse_conllu(good)
    assert "\n".join(p.text for p in parsed) == GOOD  # every byte belongs to a sentence


def test_a_wrong_label_is_named_with_its_line(good):
    with pytest.raises(ConlluFormatError, match=r"good.conllu:7\b.*'PART'"):
        read_conllu(good, 3, ["PRON", "AUX", "VERB", "PUNCT", "INTJ", "ADJ"])


def test_predictions_equal_to_gold_write_the_input_back_byte_for_byte(good, tmp_path):
    for column in (3, 4, 5):
        gold = {s.line: s.labels for s in read_conllu(good, column, None)}
        out = tmp_path / f"out{column}.conllu"
        assert write_conllu(good, out, column, gold) == 3
        assert out.read_bytes() == good.read_bytes()


def test_predictions_fill_one_column_and_a_subset_is_a_valid_file(good, tmp_path):
    out = tmp_path / "out.conllu"
    write_conllu(good, out, 3, {4: ["X", "X", "X", "X", "X"], 17: ["Y", "Y"]})
    text = out.read_text()
    assert "Yes" not in text and text.endswith("\n\n")
    assert word(2, "can", "X", "MD", "VerbForm=Fin") in text  # only UPOS changed
    assert "2-3\tcannot\t_" in text and "4.1\tgone" in text and "# newdoc id = b" in text
    assert [s.labels for s in read_conllu(out, 3, None)] == [["X"] * 5, ["Y", "Y"]]


def test_universal_features_as_the_shared_task_compares_them():
    assert universal_features("VerbForm=Inf|ExtPos=VERB") == "VerbForm=Inf"
    assert universal_features("Number=Sing|Case=Nom") == "Case=Nom|Number=Sing"  # sorted
    assert universal_features("_") == "_" and universal_features("ExtPos=ADP") == "_"


MALFORMED = {
    "nine columns": (word(1, "a").rsplit("\t", 1)[0], ":1: 9 tab-separated columns; expected 10"),
    "spaces for tabs": (word(1, "a").replace("\t", " "), "(the columns are split on tabs only)"),
    "skipped ID": (word(1, "a") + "\n" + word(3, "b"), ":2: word ID 3 out of sequence; expected 2"),
    "not starting at 1": (word(2, "a"), ":1: word ID 2 out of sequence; expected 1"),
    "empty FORM": (word(1, " "), ":1: ID 1 has an empty FORM"),
    "range not next": (
        word(1, "a") + "\n3-4\tbc\t_\t_\t_\t_\t_\t_\t_\t_\n" + word(2, "b"),
        ":2: multiword token 3-4 must cover the next words, 2-N",
    ),
    "range of one word": ("1-1\ta\t_\t_\t_\t_\t_\t_\t_\t_\n" + word(1, "a"), "must cover"),
    "range not covered": (
        "1-2\tab\t_\t_\t_\t_\t_\t_\t_\t_\n" + word(1, "a"),
        ":3: a multiword token starts before the words of the previous one (up to 2)",
    ),
    "empty node out of place": (
        word(1, "a") + "\n1.2\tx\t_\t_\t_\t_\t_\t_\t_\t_",
        ":2: empty node 1.2 out of sequence; expected 1.1",
    ),
    "bad ID": ("a\tb\t_\t_\t_\t_\t_\t_\t_\t_", ":1: ID 'a'; expected a word (3)"),
    "comment inside": (word(1, "a") + "\n# x\n" + word(2, "b"), ":2: a comment line inside"),
    "comments only": ("# sent_id = 1\n\n", ":2: comment lines with no word line after them"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_file_stops_with_file_line_and_what_was_expected(tmp_path, name):
    text, message = MALFORMED[name]
    path = tmp_path / "bad.conllu"
    path.write_text(text + "\n\n")
    with pytest.raises(ConlluFormatError) as raised:
        read_conllu(path, 3, None)
    assert str(raised.value).startswith(str(path)) and message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_file_that_is_no_conllu_says_so(tmp_path):
    empty = tmp_path / "empty.conllu"
    empty.write_text("\n\n")
    with pytest.raises(ConlluFormatError, match="no sentences found"):
        read_conllu(empty, 3, None)


def test_the_ud_preset_reads_a_treebank_folder(tmp_path, good):
    from bert_pos.data.columns import label_view
    from bert_pos.data.sources import load_splits, resolve_label_names

    for split in ("train", "dev", "test"):
        (tmp_path / f"xx_tb-ud-{split}.conllu").write_text(GOOD)
    cfg = compose_config(["data=ud", f"data.dir={tmp_path}", "data.task=feats"])
    labels = resolve_label_names(cfg.data)
    assert "VerbForm=Inf|ExtPos=VERB" in labels  # trained on FEATS as written
    splits = load_splits(cfg.data, labels)
    assert set(splits) == {"train", "validation", "test"} and len(splits["test"]) == 3
    assert label_view(cfg.data)("VerbForm=Inf|ExtPos=VERB") == "VerbForm=Inf"  # scored UFeats
    assert label_view(compose_config(["data=ud", f"data.dir={tmp_path}"]).data) is None


def official_scores(gold: Path, system: Path) -> dict[str, float]:
    """The CoNLL 2018 shared task's scorer, run as its users run it (`-v`: every metric)."""
    script = REAL_DATA.parent / "tools" / "conll18_ud_eval.py"
    result = subprocess.run(
        [sys.executable, str(script), "-v", str(gold), str(system)],
        capture_output=True,
        text=True,
        check=True,
    )
    scores = {}
    for line in result.stdout.splitlines()[2:]:
        cells = [cell.strip() for cell in line.split("|")]
        scores[cells[0]] = cells[3]  # F1 (with gold tokenization, the accuracy), as printed
    return scores


@pytest.mark.slow
@pytest.mark.real_data
def test_scores_equal_the_official_scorer_on_lines_dev(tmp_path):
    """Predictions that differ from gold in known places, scored by bert_pos and by the
    official script: equal to every printed digit, for UPOS, XPOS and UFeats."""
    dev = REAL_DATA / "ud_english_lines" / "en_lines-ud-dev.conllu"
    script = REAL_DATA.parent / "tools" / "conll18_ud_eval.py"
    if not dev.is_file() or not script.is_file():
        pytest.skip(f"no UD English-LinES dev file or scorer under {REAL_DATA.parent}")
    from bert_pos.data.conllu import universal_features as ufeats

    for name, column, wrong in [("UPOS", 3, "X"), ("XPOS", 4, "NN"), ("UFeats", 5, "_")]:
        sentences = read_conllu(dev, column, None)
        predicted = {}
        for n, sentence in enumerate(sentences):  # every 7th word of every 3rd sentence
            labels = list(sentence.labels)
            if n % 3 == 0:
                labels = [wrong if i % 7 == 0 else label for i, label in enumerate(labels)]
            predicted[sentence.line] = labels
        system = tmp_path / f"{name}.conllu"
        write_conllu(dev, system, column, predicted)
        view = ufeats if column == 5 else (lambda label: label)
        gold = [[view(label) for label in s.labels] for s in sentences]
        ours = token_accuracy(gold, [[view(t) for t in predicted[s.line]] for s in sentences])
        assert f"{100 * ours:.2f}" == official_scores(dev, system)[name], name
        assert ours < 1.0  # the check can fail: some predictions are wrong


def test_the_conllu_module_reads_no_heavy_library():
    probe = "import sys, bert_pos.data.conllu; print('datasets' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.strip() == "False"


@pytest.mark.slow
@pytest.mark.parametrize("task", ["upos", "feats"])
def test_a_run_on_a_treebank_writes_predictions_conllu_scored_as_metrics_say(tmp_path, task):
    from bert_pos.data.conllu import universal_features as ufeats
    from bert_pos.train import train
    from tests.helpers import TINY_DEMO_OVERRIDES

    treebank = tmp_path / "treebank"
    treebank.mkdir()
    for split in ("train", "dev", "test"):
        (treebank / f"xx_tb-ud-{split}.conllu").write_text(GOOD * 20)
    overrides = [o for o in TINY_DEMO_OVERRIDES if not o.startswith("data.demo_sentences")]
    cfg = compose_config(
        [*overrides, "data=ud", f"data.dir={treebank}", f"data.task={task}", "epochs=2"]
    )
    metrics = train(cfg, tmp_path / "run")
    (tmp_path / "run" / ".hydra").mkdir()  # as the command saves it: predict reads the task
    OmegaConf.save(cfg, tmp_path / "run" / ".hydra" / "config.yaml")

    column = {"upos": 3, "feats": 5}[task]
    view = ufeats if task == "feats" else (lambda label: label)
    for split, scores in [("validation", metrics["epochs"][-1]), ("test", metrics["test"])]:
        written = tmp_path / "run" / "eval" / split / "predictions.conllu"
        source = treebank / f"xx_tb-ud-{'dev' if split == 'validation' else split}.conllu"
        gold = [[view(t) for t in s.labels] for s in read_conllu(source, column, None)]
        predicted = [[view(t) for t in s.labels] for s in read_conllu(written, column, None)]
        accuracy = scores["val/accuracy" if split == "validation" else "accuracy"]
        assert token_accuracy(gold, predicted) == pytest.approx(accuracy), split
        # every byte but the predicted column is the input's
        for ours, theirs in zip(
            written.read_text().split("\n"), source.read_text().split("\n"), strict=True
        ):
            fields, expected = ours.split("\t"), theirs.split("\t")
            assert (
                fields[:column] + fields[column + 1 :] == expected[:column] + expected[column + 1 :]
            )

    # predict tags CoNLL-U as evaluation does, and writes it the same way
    test_file = treebank / "xx_tb-ud-test.conllu"
    predicted_file = tmp_path / "predicted.conllu"
    result = run_command(
        "predict",
        f"model_dir={tmp_path / 'run'}",
        f"input={test_file}",
        "input_format=conllu",
        "format=conllu",
        f"output={predicted_file}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    evaluated = tmp_path / "run" / "eval" / "test" / "predictions.conllu"
    assert predicted_file.read_bytes() == evaluated.read_bytes()
    text_input = tmp_path / "text.txt"
    text_input.write_text("I cannot go .\nYes\n")
    result = run_command(
        "predict", f"model_dir={tmp_path / 'run'}", f"input={text_input}", "format=conllu"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    from_text = tmp_path / "from_text.conllu"
    from_text.write_text(result.stdout)
    assert [s.words for s in read_conllu(from_text, column, None)] == [
        ["I", "cannot", "go", "."],
        ["Yes"],
    ]
