"""Writes the malformed-input corpus next to this file; run once, the files are committed.

    python tests/data/malformed/make_corpus.py

Each file is a small variation of GOOD (three sentences, columns `word POS chunk NER`, IOB2);
tests/test_malformed.py says what each one must do.
"""

import json
from pathlib import Path

HERE = Path(__file__).parent

GOOD = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

BRUSSELS NNP B-NP B-LOC
1996-08-22 CD B-NP O
"""

# The same sentences as the original eng.train tags them: IOB1, in the chunk column too.
IOB1 = """-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O
. . O O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER

BRUSSELS NNP I-NP I-LOC
1996-08-22 CD B-NP O
"""


# The same sentences in BIOES (NER and chunk columns), and in BILOU (L- for E-, U- for S-).
BIOES = """-DOCSTART- -X- -X- O

EU NNP S-NP S-ORG
rejects VBZ S-VP O
German JJ B-NP S-MISC
call NN E-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP E-NP E-PER

BRUSSELS NNP S-NP S-LOC
1996-08-22 CD S-NP O
"""
BILOU = BIOES.replace(" S-", " U-").replace(" E-", " L-")

# GOOD's sentences as JSON lines, in the field names of Hugging Face's run_ner.py.
GOOD_ROWS = [
    {
        "tokens": ["EU", "rejects", "German", "call", "."],
        "ner_tags": ["B-ORG", "O", "B-MISC", "O", "O"],
    },
    {"tokens": ["Peter", "Blackburn"], "ner_tags": ["B-PER", "I-PER"]},
    {"tokens": ["BRUSSELS", "1996-08-22"], "ner_tags": ["B-LOC", "O"]},
]
NER_IDS = {
    "O": 0,
    "B-PER": 1,
    "I-PER": 2,
    "B-ORG": 3,
    "I-ORG": 4,
    "B-LOC": 5,
    "I-LOC": 6,
    "B-MISC": 7,
    "I-MISC": 8,
}


# For the label checks across splits: a type training has only as B- (ORG, MISC, LOC), seen
# as I- in test; a type training never has (DATE), in validation.
UNSEEN_VALIDATION = (
    GOOD
    + """
Parliament NNP B-NP B-ORG
met VBD B-VP O
on IN B-PP O
22 CD B-NP B-DATE
August NNP I-NP I-DATE
"""
)
UNSEEN_TEST = (
    GOOD
    + """
European NNP B-NP B-ORG
Union NNP I-NP I-ORG
"""
)


def json_lines(rows: list[dict]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def with_row(rows: list[dict], index: int, **fields) -> list[dict]:
    """`rows` with the fields of row `index` replaced (a field set to None is removed)."""
    changed = [dict(row) for row in rows]
    changed[index].update(fields)
    changed[index] = {key: value for key, value in changed[index].items() if value is not None}
    return changed


def replace_line(text: str, line: int, new: str) -> str:
    """GOOD with its 1-based line `line` replaced."""
    lines = text.split("\n")
    lines[line - 1] = new
    return "\n".join(lines)


def main() -> None:
    long_word = ("Donaudampfschifffahrtsgesellschaft" * 9)[:300]
    files = {
        "good.txt": GOOD,
        # 1. wrong number of columns on one line, and too few columns for the label column
        "wrong_columns.txt": replace_line(GOOD, 10, "Blackburn NNP I-PER"),
        "two_columns.txt": "".join(
            f"{line.split()[0]} {line.split()[-1]}\n" if line.strip() else "\n"
            for line in GOOD.split("\n")[2:-1]
        ),
        # 2. a label outside the label set
        "unknown_label.txt": replace_line(GOOD, 9, "Peter NNP B-NP B-PERSON"),
        # 3. I- tags that IOB2 forbids
        "i_after_o.txt": replace_line(GOOD, 5, "German JJ B-NP I-MISC"),
        "i_at_sentence_start.txt": replace_line(GOOD, 9, "Peter NNP B-NP I-PER"),
        "i_after_other_type.txt": replace_line(GOOD, 10, "Blackburn NNP I-NP I-LOC"),
        "chunk_i_at_sentence_start.txt": replace_line(GOOD, 3, "EU NNP I-NP B-ORG"),
        # 4. CRLF line endings
        "crlf.txt": GOOD.replace("\n", "\r\n"),
        # 5. tabs and spaces mixed between columns
        "tabs_and_spaces.txt": GOOD.replace("EU NNP B-NP", "EU\tNNP  B-NP")
        .replace("rejects VBZ B-VP O", "rejects\t\tVBZ B-VP\tO")
        .replace("Peter NNP", "Peter \t NNP"),
        # 6. Latin-1 bytes (ü is 0xfc) on line 12
        "latin1.txt": replace_line(GOOD, 12, "Zürich NNP B-NP B-LOC"),
        # 7. a UTF-8 byte-order mark
        "bom.txt": "\ufeff" + GOOD,
        # 8. an empty file; 9. a file with no sentences
        "empty.txt": "",
        "docstart_only.txt": "-DOCSTART- -X- -X- O\n\n-DOCSTART- -X- -X- O\n\n\n",
        # 12. trailing (and leading) whitespace on token lines
        "trailing_whitespace.txt": GOOD.replace(" O\n", " O  \n")
        .replace("B-ORG\n", "B-ORG\t\n")
        .replace("Peter", "  Peter"),
        # whitespace-only lines between sentences
        "whitespace_line.txt": GOOD.replace("\n\n", "\n  \t \n"),
        # 13. a sentence of 600 words
        "long_sentence.txt": "".join(f"w{i:03d} NN I-NP O\n" for i in range(600)).replace(
            "w000 NN I-NP", "w000 NN B-NP", 1
        ),
        # 14. a word of 300 characters
        "long_word.txt": f"The DT B-NP O\n{long_word} NNP I-NP B-ORG\n. . O O\n",
        # 15. IOB1 tags
        "iob1.txt": IOB1,
        # 16. a different tag set: an extra entity type, and POS tags in the NER column
        "extra_type.txt": replace_line(GOOD, 13, "1996-08-22 CD B-NP B-DATE"),
        "pos_in_ner_column.txt": "".join(
            " ".join([*line.split()[:3], line.split()[1]]) + "\n" if line.strip() else "\n"
            for line in GOOD.split("\n")[2:-1]
        ),
        # 17. BIOES and BILOU tags; BIOES that leaves an entity open, or closes none
        "bioes.txt": BIOES,
        "bilou.txt": BILOU,
        "bioes_unclosed.txt": replace_line(BIOES, 10, "Blackburn NNP E-NP I-PER"),
        "bioes_e_after_o.txt": replace_line(BIOES, 5, "German JJ B-NP E-MISC"),
        # 18. JSON lines: good (tag names, or ids), and broken in each way a reader can see
        "good.jsonl": json_lines(GOOD_ROWS),
        "ids.jsonl": json_lines(
            [{**row, "ner_tags": [NER_IDS[tag] for tag in row["ner_tags"]]} for row in GOOD_ROWS]
        ),
        "bad_json.jsonl": json_lines(GOOD_ROWS).replace('"Peter", ', '"Peter" '),
        "missing_field.jsonl": json_lines(
            with_row(GOOD_ROWS, 2, ner_tags=None, tags=GOOD_ROWS[2]["ner_tags"])
        ),
        "length_mismatch.jsonl": json_lines(with_row(GOOD_ROWS, 1, ner_tags=["B-PER"])),
        "i_after_o.jsonl": json_lines(
            with_row(GOOD_ROWS, 0, ner_tags=["B-ORG", "O", "I-MISC", "O", "O"])
        ),
        "array.json": "[\n" + ",\n".join(json.dumps(row) for row in GOOD_ROWS) + "\n]\n",
        # 19. whitespace inside words: fields are split on spaces and tabs only, so a no-break
        # space (U+00A0), a narrow no-break space (U+202F, French digit groups), a thin space
        # (U+2009), an ideographic space (U+3000) or a zero-width character stays in its word
        "nbsp_in_word.txt": replace_line(GOOD, 12, "New\u00a0York NNP B-NP B-LOC"),
        "unicode_spaces_in_words.txt": replace_line(
            replace_line(GOOD, 13, "1\u202f996\u2009000 CD B-NP O"), 6, "call\u3000centre NN I-NP O"
        ),
        "zero_width_in_word.txt": replace_line(
            replace_line(GOOD, 10, "Black\u200bburn NNP I-NP I-PER"), 7, "\u200b . O O"
        ),
        # a line of only a no-break space is a token line (one field), not a sentence break;
        # a file whose fields are separated by no-break spaces has one field per line
        "nbsp_line.txt": GOOD.replace(
            "Blackburn NNP I-NP I-PER\n\n", "Blackburn NNP I-NP I-PER\n\u00a0\n"
        ),
        "nbsp_separated.txt": GOOD.replace("EU NNP B-NP B-ORG", "EU\u00a0NNP\u00a0B-NP\u00a0B-ORG"),
        # 20. a file without a final newline; -DOCSTART- lines with other field counts
        "no_final_newline.txt": GOOD.rstrip("\n"),
        "docstart_fields.txt": GOOD.replace("-DOCSTART- -X- -X- O", "-DOCSTART-")
        + "\n-DOCSTART- -X- O\n\n"
        + GOOD.split("\n\n", 1)[1],
        # 21. two BOM files concatenated (`cat a.txt b.txt`): a BOM at the start of a later line
        "concatenated_bom.txt": "\ufeff" + GOOD + "\n\ufeff" + GOOD,
        # 22. Windows-1252 curly quotes (0x93, 0x94), as a word processor saves them
        "cp1252_quotes.txt": replace_line(GOOD, 7, "\u201cyes\u201d NN I-NP O"),
        # 23. labels across splits (see UNSEEN_VALIDATION)
        "unseen_labels/train.txt": GOOD,
        "unseen_labels/validation.txt": UNSEEN_VALIDATION,
        "unseen_labels/test.txt": UNSEEN_TEST,
        # 11. a folder whose validation file is called dev.txt
        "wrong_names/train.txt": GOOD,
        "wrong_names/dev.txt": GOOD,
        "wrong_names/test.txt": GOOD,
    }
    for name, text in files.items():
        path = HERE / name
        path.parent.mkdir(exist_ok=True)
        encoding = {"latin1.txt": "latin-1", "cp1252_quotes.txt": "cp1252"}.get(name, "utf-8")
        path.write_bytes(text.encode(encoding))


if __name__ == "__main__":
    main()
