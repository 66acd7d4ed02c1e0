"""A synthetic corpus of nested entities, for the span head's tests and its demo: entities
inside entities, as GENIA and ACE annotate them ("[[Kaburg] Airport]", "[University of
[Tilorenburg]]", "[[Mika Dorn] Foundation]").

JSON lines, one sentence each: `{"tokens": [...], "spans": [[start, end, type], ...]}` (end
exclusive), the layout `data.format=jsonl data.spans_column=spans` reads. Names come from the
invented syllables of the flat demo corpus (bert_pos/data/demo_corpus.py), each split from its
own random stream, so most test names were never seen in training.
"""

import json
import random
from pathlib import Path

from bert_pos.data.demo_corpus import LOC_SUFFIXES, _invented_word

# `{SLOT}` is an entity; the rest are plain words.
TEMPLATES = [
    "{PER} flew from {FAC} to {LOC} on Monday .",
    "{ORG} opened a new office near {FAC} .",
    "{PER} , a spokesman for {ORG} , declined to comment .",
    "Police at {FAC} arrested {PER} on Tuesday .",
    "{ORG} signed a deal with {ORG} .",
    "{PER} left {ORG} for {ORG} last year .",
    "Rain closed {FAC} and {FAC} overnight .",
    "{PER} met {PER} in {LOC} .",
]


def entity(kind: str, rng: random.Random) -> tuple[list[str], list[tuple[int, int, str]]]:
    """The words of one entity and its mentions (start, end exclusive, type) in them: the
    entity itself, outermost, and any entity inside it."""
    if kind == "PER":
        words = [_invented_word(rng) for _ in range(rng.choice([1, 2]))]
        return words, [(0, len(words), "PER")]
    if kind == "LOC":
        return [_invented_word(rng, 1, 2) + rng.choice(LOC_SUFFIXES)], [(0, 1, "LOC")]
    if kind == "FAC":  # a facility named after a place: [[LOC] Airport]
        place, inner = entity("LOC", rng)
        words = place + [rng.choice(["Airport", "Station", "Bridge", "Harbour"])]
        return words, [(0, len(words), "FAC"), *inner]
    if kind == "ORG":
        form = rng.choice(["of_place", "place_bank", "person_foundation", "plain"])
        if form == "of_place":  # [University of [LOC]]
            place, inner = entity("LOC", rng)
            head = [rng.choice(["University", "Bank", "Council"]), "of"]
            words = head + place
            return words, [(0, len(words), "ORG")] + [(s + 2, e + 2, t) for s, e, t in inner]
        if form == "place_bank":  # [[LOC] Bank]
            place, inner = entity("LOC", rng)
            words = place + [rng.choice(["Bank", "United", "Airlines"])]
            return words, [(0, len(words), "ORG"), *inner]
        if form == "person_foundation":  # [[PER] Foundation]
            person, inner = entity("PER", rng)
            words = person + ["Foundation"]
            return words, [(0, len(words), "ORG"), *inner]
        return [_invented_word(rng), rng.choice(["Corp", "Group"])], [(0, 2, "ORG")]
    raise ValueError(f"unknown slot {kind!r}")


def nested_sentence(rng: random.Random) -> dict:
    """One sentence: its words and every mention, nested ones included."""
    tokens, spans = [], []
    for item in rng.choice(TEMPLATES).split():
        if item.startswith("{"):
            words, mentions = entity(item[1:-1], rng)
            spans += [[len(tokens) + s, len(tokens) + e, t] for s, e, t in mentions]
            tokens += words
        else:
            tokens.append(item)
    return {"tokens": tokens, "spans": sorted(spans)}


def write_nested_demo(directory: str | Path, num_sentences: dict[str, int], seed: int) -> Path:
    """Write `{split}.jsonl` for each split in `num_sentences` into `directory`; return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for split_index, (split, count) in enumerate(sorted(num_sentences.items())):
        rng = random.Random(seed * 1000 + split_index)
        lines = [json.dumps(nested_sentence(rng)) for _ in range(count)]
        (directory / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return directory


if __name__ == "__main__":  # python -m bert_pos.data.nested_demo FOLDER [train validation test]
    import sys

    counts = [int(n) for n in sys.argv[2:5]] or [2000, 300, 300]
    folder = write_nested_demo(sys.argv[1], dict(zip(["train", "validation", "test"], counts)), 0)
    print(f"wrote {', '.join(f'{s}.jsonl' for s in ['train', 'validation', 'test'])} in {folder}")
