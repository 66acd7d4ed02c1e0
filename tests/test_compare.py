"""Comparing two prediction files: reading, the same-data check, the table, JSON, the command."""

import json
import subprocess
import sys

import pytest

from bert_pos.compare import CompareError, main
from bert_pos.scoring.predictions import predictions_file, read_predictions

SENTENCES = [
    (["EU", "rejects", "German", "call"], ["B-ORG", "O", "B-MISC", "O"]),
    (["Peter", "Blackburn"], ["B-PER", "I-PER"]),
    (["BRUSSELS", "1996-08-22"], ["B-LOC", "O"]),
    (["Germany", "imported", "sheep"], ["B-LOC", "O", "O"]),
]


def write_file(path, predicted_per_sentence, documents=(0, 0, 1, 1)):
    """A predictions file as evaluation.write_predictions writes it."""
    lines, previous = [], None
    for (words, gold), predicted, document in zip(
        SENTENCES, predicted_per_sentence, documents, strict=True
    ):
        if document != previous:
            lines += ["-DOCSTART- O O", ""]
        previous = document
        lines += [f"{w} {g} {p}" for w, g, p in zip(words, gold, predicted, strict=True)]
        lines.append("")
    path.write_text("\n".join(lines) + "\n")
    return path


def gold_predictions():
    return [gold for _, gold in SENTENCES]


def with_errors():
    predicted = gold_predictions()
    predicted[1] = ["B-PER", "O"]  # Peter alone
    predicted[3] = ["B-ORG", "O", "O"]
    return predicted


def test_reads_sentences_and_documents(tmp_path):
    read = read_predictions(write_file(tmp_path / "a.txt", with_errors()))
    assert read.words[1] == ["Peter", "Blackburn"] and read.predicted[1] == ["B-PER", "O"]
    assert read.documents == [0, 0, 1, 1] and read.has_documents
    assert read.line_numbers[0] == [3, 4, 5, 6]


def test_finds_the_predictions_of_a_run_folder(tmp_path):
    test_dir = tmp_path / "run" / "eval" / "test"
    test_dir.mkdir(parents=True)
    path = write_file(test_dir / "predictions.txt", gold_predictions())
    assert predictions_file(str(tmp_path / "run")) == path
    assert predictions_file(str(test_dir)) == path


def test_identical_files_differ_by_nothing(tmp_path, capsys):
    a = write_file(tmp_path / "a.txt", with_errors())
    result = main([str(a), str(a), "samples=200"])
    overall = result["scores"]["overall"]
    assert overall["difference"] == 0 and overall["interval"] == [0.0, 0.0]
    assert overall["p_value"] == 1.0
    assert "| overall |" in capsys.readouterr().out


def test_a_mismatch_names_the_first_differing_line(tmp_path):
    a = write_file(tmp_path / "a.txt", gold_predictions())
    b = tmp_path / "b.txt"
    b.write_text(a.read_text().replace("Blackburn I-PER", "Blackburn O"))
    with pytest.raises(CompareError, match=r"a.txt:9: 'Blackburn I-PER I-PER' vs .*b.txt:9"):
        main([str(a), str(b)])


def test_json_and_sentences(tmp_path, capsys):
    a = write_file(tmp_path / "a.txt", with_errors())
    b = write_file(tmp_path / "b.txt", gold_predictions())
    out = tmp_path / "compare.json"
    main([str(a), str(b), "unit=document", "samples=100", f"json={out}", "--sentences"])
    written = json.loads(out.read_text())
    assert written["unit"] == "document" and written["units"] == 2
    assert written["scores"]["overall"]["a"] == pytest.approx(2 * 3 / (5 + 5))
    assert written["scores"]["overall"]["b"] == 1.0
    assert written["sentences_right"] == {"a_only": [], "b_only": [1, 3]}
    assert "Blackburn/I-PER→O" in capsys.readouterr().out


@pytest.mark.slow
def test_command_reports_a_mismatch_in_one_line(tmp_path):
    a = write_file(tmp_path / "a.txt", gold_predictions())
    b = write_file(tmp_path / "b.txt", gold_predictions(), documents=(0, 0, 0, 0))
    ran = subprocess.run(
        [sys.executable, "-m", "bert_pos.compare", str(a), str(b), "unit=document"],
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 1
    assert ran.stderr.count("\n") == 1 and "documents differently" in ran.stderr
    assert "Traceback" not in ran.stderr


@pytest.mark.slow
def test_command_prints_the_table(tmp_path):
    a = write_file(tmp_path / "a.txt", with_errors())
    b = write_file(tmp_path / "b.txt", gold_predictions())
    ran = subprocess.run(
        [sys.executable, "-m", "bert_pos.compare", str(a), str(b), "samples=100"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "| f1 | A | B | B - A | 95% CI | p |" in ran.stdout
    assert "| overall | 60.00 | 100.00 | +40.00 |" in ran.stdout


def test_tags_without_spans_compare_accuracy(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("The DT DT\ndog NN VB\n\nRuns VBZ VBZ\n")
    b.write_text("The DT DT\ndog NN NN\n\nRuns VBZ VBZ\n")
    result = main([str(a), str(b), "samples=50"])
    assert result["metric"] == "accuracy" and list(result["scores"]) == ["overall"]
    assert result["scores"]["overall"]["difference"] == pytest.approx(1 / 3)
