"""Is B really better than A? Compare two taggers' predictions of the same test set.

    python -m bert_pos.compare A B [unit=auto|document|sentence] [samples=1000] [seed=0] \
        [task=NAME] [json=PATH] [--sentences]

A and B are conlleval-format prediction files (`word gold predicted` per line, a blank line
after each sentence, `-DOCSTART-` lines between documents, as `scoring.predictions`
writes them), evaluation folders holding `predictions.txt`, or run folders (their
`eval/test/predictions.txt`), or for span data their `predictions.jsonl` (every mention,
nested ones too, matched exactly; resampled by sentence); `task=NAME` picks one task's of runs with several tasks
(`<folder>/<task>/predictions.txt`). Both must hold the same words and gold tags. The table gives
entity F1 (token accuracy for tag sets without spans) of A and B, overall and per type, the
difference B - A, its 95% paired bootstrap interval and the approximate randomization p-value
(`significance`), all in percentage points. The resampling unit is the document where the
files have `-DOCSTART-` lines (`unit=auto`, the default; `bert_pos.report` decides the same way):
sentences of one document share names and topics, so they are not independent draws;
`unit=sentence` resamples sentences instead. `--sentences` also lists
the sentences one system tags entirely right and the other does not.

No torch: this starts in about a second.
"""

import json
import sys
from pathlib import Path

from bert_pos.cli import run_command
from bert_pos.runtime.choices import RESAMPLING_UNITS, resampling_unit
from bert_pos.runtime.errors import UserError
from bert_pos.runtime.keys import did_you_mean
from bert_pos.scoring.predictions import (
    Predictions,
    predictions_file,
    read_predictions,
)

OPTIONS = {
    "unit": "auto",
    "samples": "1000",
    "seed": "0",
    "task": None,
    "json": None,
    "show": None,
}
PERMUTATIONS_PER_RESAMPLE = 10  # approximate randomization draws 10x the bootstrap's samples
SHOWN_SENTENCES = 20  # sentences listed per direction by --sentences


class CompareError(UserError):
    """A problem with the inputs; reported in one line, exit status 1."""


def line_at(p: Predictions, sentence: int, word: int) -> str:
    """`path:line: 'text'` of a word of a file, or where its sentence or the file ends."""
    if sentence >= len(p.words):
        return f"{p.path}: ends after {len(p.words)} sentences"
    if word >= len(p.words[sentence]):
        return f"{p.path}:{p.line_numbers[sentence][-1] + 1}: sentence {sentence + 1} ends"
    number = p.line_numbers[sentence][word]
    return f"{p.path}:{number}: {p.path.read_text().splitlines()[number - 1].strip()!r}"


def word_rows(p: Predictions, sentence: int) -> list[tuple[str, str]]:
    """(word, gold tag) of each word of a sentence; none past the file's end."""
    if sentence >= len(p.words):
        return []
    return list(zip(p.words[sentence], p.gold[sentence]))


def first_difference(a: Predictions, b: Predictions, documents: bool) -> str | None:
    """Where the two files stop holding the same sentences, words and gold tags (and, with
    `documents`, the same document boundaries): a line naming the first differing line of
    each, or None when they agree."""
    for sentence in range(max(len(a.words), len(b.words))):
        rows_a, rows_b = word_rows(a, sentence), word_rows(b, sentence)
        for word in range(max(len(rows_a), len(rows_b))):
            row_a = rows_a[word] if word < len(rows_a) else None
            row_b = rows_b[word] if word < len(rows_b) else None
            if row_a != row_b:
                return (
                    f"the files differ: {line_at(a, sentence, word)} vs "
                    f"{line_at(b, sentence, word)}"
                )
    if documents and a.documents != b.documents:
        first = next(s for s, (x, y) in enumerate(zip(a.documents, b.documents)) if x != y)
        return (
            f"the files split documents differently: {line_at(a, first, 0)} vs "
            f"{line_at(b, first, 0)}"
        )
    return None


def compare(a: Predictions, b: Predictions, unit: str, samples: int, seed: int) -> dict:
    """Scores of A and B, the difference B - A, its interval and p-value, per name."""
    if unit not in RESAMPLING_UNITS:
        raise CompareError(f"unit={unit}: expected one of {', '.join(RESAMPLING_UNITS)}")
    # numpy and seqeval only now: a wrong argument is answered at once
    from bert_pos.scoring.significance import sentence_counts

    unit = resampling_unit(unit, a.has_documents)
    if unit == "document" and not a.has_documents:
        raise CompareError(f"unit=document: {a.path} has no -DOCSTART- lines")
    counts_a, counts_b = sentence_counts(a.gold, a.predicted), sentence_counts(b.gold, b.predicted)
    unit_ids = a.documents if unit == "document" else None
    units = len(set(a.documents)) if unit == "document" else len(a.words)
    return compared(a.path, b.path, counts_a, counts_b, unit, unit_ids, units, samples, seed)


def compared(path_a, path_b, counts_a, counts_b, unit, unit_ids, units, samples, seed) -> dict:
    """The comparison of two systems' per-sentence counts (see `compare`)."""
    from bert_pos.scoring.significance import approximate_randomization, paired_bootstrap

    rows = paired_bootstrap(counts_a, counts_b, samples, seed, unit_ids)
    p_values = approximate_randomization(
        counts_a, counts_b, samples * PERMUTATIONS_PER_RESAMPLE, seed, unit_ids
    )
    for name, row in rows.items():
        row["p_value"] = p_values[name]
    return {
        "a": str(path_a),
        "b": str(path_b),
        "metric": counts_a.metric,
        "unit": unit,
        "units": units,
        "sentences": len(counts_a.table),
        "samples": samples,
        "permutations": samples * PERMUTATIONS_PER_RESAMPLE,
        "seed": seed,
        "scores": rows,
    }


def format_comparison(result: dict) -> str:
    """The comparison as a Markdown table, scores in percent."""
    lines = [
        f"A = {result['a']}",
        f"B = {result['b']}",
        f"{result['sentences']} sentences; resampled by {result['unit']} "
        f"({result['units']} units, {result['samples']} bootstrap samples, "
        f"{result['permutations']} permutations, seed {result['seed']})",
        "",
        f"| {result['metric']} | A | B | B - A | 95% CI | p |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in result["scores"].items():
        low, high = row["interval"]
        lines.append(
            f"| {name} | {100 * row['a']:.2f} | {100 * row['b']:.2f} | "
            f"{100 * row['difference']:+.2f} | [{100 * low:+.2f}, {100 * high:+.2f}] | "
            f"{row['p_value']:.4f} |"
        )
    return "\n".join(lines)


def sentences_one_gets_right(a: Predictions, b: Predictions) -> dict[str, list[int]]:
    """Indices of the sentences B tags entirely right and A does not (`b_only`), and the
    other way round (`a_only`)."""
    right_a = [g == p for g, p in zip(a.gold, a.predicted)]
    right_b = [g == p for g, p in zip(b.gold, b.predicted)]
    return {
        "a_only": [s for s, (x, y) in enumerate(zip(right_a, right_b)) if x and not y],
        "b_only": [s for s, (x, y) in enumerate(zip(right_a, right_b)) if y and not x],
    }


def format_sentences(a: Predictions, b: Predictions, listed: dict[str, list[int]]) -> str:
    """The first SHOWN_SENTENCES of each list, each word the wrong system mistags shown as
    word/gold→predicted."""
    lines = []
    for key, right, wrong in (("b_only", "B", a), ("a_only", "A", b)):
        other = "A" if right == "B" else "B"
        lines += ["", f"{right} right, {other} wrong: {len(listed[key])} sentences"]
        for s in listed[key][:SHOWN_SENTENCES]:
            tagged = " ".join(
                w if g == p else f"{w}/{g}→{p}"
                for w, g, p in zip(wrong.words[s], wrong.gold[s], wrong.predicted[s])
            )
            lines.append(f"  line {a.line_numbers[s][0]}: {tagged}")
    return "\n".join(lines)


def mentions_file(path: str, task: str | None) -> Path | None:
    """The span data's `predictions.jsonl` a command-line argument names (itself, or in the
    folder, the run's eval/test, or a task's folder); None where there is none."""
    given = Path(path)
    if given.suffix == ".jsonl" and given.is_file():
        return given
    for folder in (given, given / "eval" / "test"):
        for name in [task, ""] if task else [""]:
            candidate = folder / name / "predictions.jsonl"
            if candidate.is_file():
                return candidate
    return None


def parse_arguments(arguments: list[str]) -> tuple[list[str], dict]:
    """Positional paths and `key=value` options (`--sentences` is `show=sentences`)."""
    paths, options = [], dict(OPTIONS)
    for argument in arguments:
        if argument == "--sentences":
            options["show"] = "sentences"
        elif "=" in argument and not Path(argument).exists():
            key, value = argument.split("=", 1)
            if key not in OPTIONS:
                hint = did_you_mean(key, list(OPTIONS), "no option is close")
                raise CompareError(
                    f"{key}: not an option of bert_pos.compare; {hint} (options: {', '.join(OPTIONS)})"
                )
            options[key] = value
        else:
            paths.append(argument)
    if len(paths) != 2:
        raise CompareError(
            "usage: python -m bert_pos.compare A B [unit=auto|document|sentence] "
            "[samples=1000] [seed=0] [task=NAME] [json=PATH] [--sentences]"
        )
    for key in ("samples", "seed"):
        if not options[key].isdigit():
            raise CompareError(f"{key}={options[key]}: expected a whole number")
    return paths, options


def compare_mentions(path_a: Path, path_b: Path, options: dict) -> dict:
    """Span data (`predictions.jsonl`, nested mentions): A and B compared on their mentions,
    matched exactly, resampled by sentence (the files mark no documents)."""
    from bert_pos.scoring.significance import mention_counts

    if options["unit"] == "document":
        raise CompareError(f"unit=document: {path_a} (span data) marks no documents")
    files = [read_mention_file(path) for path in (path_a, path_b)]
    for number, (row_a, row_b) in enumerate(zip(*files), start=1):
        if (row_a["tokens"], row_a["gold"]) != (row_b["tokens"], row_b["gold"]):
            raise CompareError(
                f"the files differ: {path_a}:{number} and {path_b}:{number} hold other words "
                "or gold mentions"
            )
    if len(files[0]) != len(files[1]):
        raise CompareError(f"{path_a} has {len(files[0])} sentences, {path_b} {len(files[1])}")
    counts = [mention_counts([r["gold"] for r in f], [r["predicted"] for r in f]) for f in files]
    samples, seed = int(options["samples"]), int(options["seed"])
    units = len(files[0])
    return compared(path_a, path_b, *counts, "sentence", None, units, samples, seed)


def read_mention_file(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            row = json.loads(line)
            rows.append({key: row[key] for key in ("tokens", "gold", "predicted")})
        except (json.JSONDecodeError, KeyError, TypeError):
            raise CompareError(
                f"{path}:{number}: expected a JSON object with tokens, gold and predicted"
            ) from None
    return rows


def main(arguments: list[str]) -> dict:
    """Compare, print the table, and write the JSON if asked; returns the comparison."""
    paths, options = parse_arguments(arguments)
    mention_files = [mentions_file(path, options["task"]) for path in paths]
    if all(mention_files):  # span data: every mention, nested ones too
        result = compare_mentions(*mention_files, options)
        print(format_comparison(result))
        if options["json"] is not None:
            Path(options["json"]).write_text(json.dumps(result, indent=2) + "\n")
        return result
    a, b = (read_predictions(predictions_file(path, options["task"])) for path in paths)
    by_document = resampling_unit(options["unit"], a.has_documents) == "document"
    difference = first_difference(a, b, by_document)
    if difference is not None:
        raise CompareError(difference)
    result = compare(a, b, options["unit"], int(options["samples"]), int(options["seed"]))
    print(format_comparison(result))
    if options["show"] == "sentences":
        listed = sentences_one_gets_right(a, b)
        result["sentences_right"] = listed
        print(format_sentences(a, b, listed))
    if options["json"] is not None:
        Path(options["json"]).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    run_command(main, sys.argv[1:])
