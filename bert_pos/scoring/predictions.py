"""The predictions file, conlleval's format: its one writer and its one reader.

`word gold predicted` per line, a blank line after each sentence, `-DOCSTART- O O` where a new
document starts. Evaluation writes it (`<eval folder>/predictions.txt`); `bert_pos.compare`,
`bert_pos.report` and re-scoring read it back.
"""

from pathlib import Path
from typing import NamedTuple

from bert_pos.runtime.errors import UserError

PREDICTIONS_FILE = "predictions.txt"


class PredictionsFileError(UserError):
    """A predictions file that is missing or not in conlleval's format."""


def write_predictions(
    path: Path,
    sentences: list[list[str]],
    gold: list[list[str]],
    predicted: list[list[str]],
    document_ids: list[int],
) -> None:
    """The CoNLL evaluation format: `word gold predicted` per line, a blank line after each
    sentence, and a `-DOCSTART- O O` line where a new document starts (as conlleval reads)."""
    lines = []
    previous_document = None
    for words, gold_tags, predicted_tags, document in zip(
        sentences, gold, predicted, document_ids, strict=True
    ):
        if document >= 0 and document != previous_document:
            lines += ["-DOCSTART- O O", ""]
        previous_document = document
        lines += [f"{w} {g} {p}" for w, g, p in zip(words, gold_tags, predicted_tags, strict=True)]
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


class Predictions(NamedTuple):
    """One predictions file, per sentence: words, gold and predicted tags, document index
    (-1 where the file has no -DOCSTART- lines), and the line number of each word."""

    path: Path
    words: list[list[str]]
    gold: list[list[str]]
    predicted: list[list[str]]
    documents: list[int]
    line_numbers: list[list[int]]
    has_documents: bool


def predictions_file(path: str, task: str | None = None) -> Path:
    """The predictions file a command-line argument names: itself, `<dir>/predictions.txt`,
    or a run folder's `eval/test/predictions.txt`. An evaluation of several tasks keeps one
    per task (`<dir>/<task>/predictions.txt`): `task` names it."""
    given = Path(path)
    folders = [given, given / "eval" / "test"]
    candidates = [given] + [
        folder / name / PREDICTIONS_FILE
        for folder in folders
        for name in [task, ""]
        if name is not None
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    per_task = sorted(
        p.parent.name for folder in folders for p in folder.glob(f"*/{PREDICTIONS_FILE}")
    )
    if per_task and task is None:
        raise PredictionsFileError(
            f"{path}: an evaluation of several tasks ({', '.join(per_task)}); name one with "
            "task=NAME"
        )
    named = f" or {task}/predictions.txt" if task else ""
    raise PredictionsFileError(
        f"{path}: no predictions file (neither a file, nor a folder with "
        f"predictions.txt{named} or eval/test/predictions.txt)"
    )


def read_predictions(path: Path) -> Predictions:
    """A predictions file back: its words, gold and predicted tags per sentence, documents
    and line numbers (a line without `word gold predicted`: PredictionsFileError)."""
    words, gold, predicted, documents, line_numbers = [], [], [], [], []
    document, has_documents, sentence = -1, False, []
    lines = path.read_text().splitlines() + [""]  # the last sentence may lack its blank line
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if fields and fields[0] == "-DOCSTART-":
            document, has_documents = document + 1, True
        elif fields and len(fields) < 3:
            raise PredictionsFileError(
                f"{path}:{number}: expected `word gold predicted`, got {line!r}"
            )
        elif fields:
            sentence.append((number, fields[0], fields[-2], fields[-1]))
        if (not fields or fields[0] == "-DOCSTART-") and sentence:
            line_numbers.append([row[0] for row in sentence])
            words.append([row[1] for row in sentence])
            gold.append([row[2] for row in sentence])
            predicted.append([row[3] for row in sentence])
            documents.append(document)
            sentence = []
    return Predictions(path, words, gold, predicted, documents, line_numbers, has_documents)


def pooled_predictions(folders: list, task: str | None = None):
    """Gold and predicted test tags of every seed's run, one after another, with each
    sentence's index and its document's (None where the files mark no documents) as units,
    so a sentence's (or a document's) counts are pooled over the seeds."""
    gold, predicted, sentences, documents = [], [], [], []
    for folder in folders:
        predictions = read_predictions(predictions_file(str(folder), task))
        gold += predictions.gold
        predicted += predictions.predicted
        sentences += list(range(len(predictions.gold)))
        if documents is not None and predictions.has_documents:
            documents += predictions.documents
        else:
            documents = None
    return gold, predicted, sentences, documents
