"""A small synthetic NER corpus in CoNLL-2003 format, generated here so the quick start needs
no download and no third-party text.

Sentences come from hand-written templates whose slots are filled with invented names. Each
split draws its names from its own random stream, so most validation and test names never
occur in training: a model has to learn from context and word shape (`... Corp`, `... burg`,
"Police in X arrested Y"), not memorise a list. Columns are `word POS chunk NER`; POS tags are
plausible Penn tags, the chunk column is `O` throughout (the demo is an NER task).
"""

import random
from pathlib import Path

from bert_pos.data.conll import write_conll

SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ren",
    "tor",
    "vel",
    "an",
    "is",
    "ber",
    "dun",
    "sa",
    "ti",
    "mor",
    "gal",
    "fen",
    "ri",
    "do",
    "har",
    "lin",
    "qua",
    "zo",
    "pe",
    "nik",
    "os",
    "ul",
    "brem",
    "cas",
    "vi",
]
LOC_SUFFIXES = ["burg", "ton", "ia", "stad", "ville", "port"]
ORG_SUFFIXES = ["Corp", "Bank", "United", "Group", "Airlines", "Motors", "Holdings"]
EVENT_SUFFIXES = ["Cup", "Open", "Games", "Festival"]

# Template words are `word/POS`; `{TYPE}` is a slot. MISC comes as an adjective or an event.
TEMPLATES = [
    "{PER} said/VBD on/IN Monday/NNP that/IN {ORG} would/MD open/VB an/DT office/NN in/IN {LOC} ./.",
    "{ORG} shares/NNS fell/VBD 3/CD percent/NN in/IN {LOC} trading/NN ./.",
    "The/DT {MISC_ADJ} team/NN beat/VBD {LOC} 2-1/CD in/IN the/DT {MISC_EVENT} ./.",
    "{PER} ,/, a/DT spokesman/NN for/IN {ORG} ,/, declined/VBD to/TO comment/VB ./.",
    "Police/NNS in/IN {LOC} arrested/VBD {PER} on/IN Tuesday/NNP ./.",
    "{PER} of/IN {LOC} won/VBD the/DT {MISC_EVENT} ./.",
    "{ORG} signed/VBD a/DT deal/NN with/IN {ORG} ./.",
    "{MISC_ADJ} officials/NNS met/VBD {PER} in/IN {LOC} ./.",
    "Rain/NN fell/VBD across/IN {LOC} and/CC {LOC} overnight/RB ./.",
    "{PER} joined/VBD {ORG} last/JJ year/NN ./.",
    "The/DT {MISC_ADJ} minister/NN ,/, {PER} ,/, arrived/VBD in/IN {LOC} ./.",
    "{ORG} said/VBD profits/NNS rose/VBD sharply/RB ./.",
    "Prices/NNS rose/VBD sharply/RB last/JJ week/NN ./.",
    "The/DT talks/NNS will/MD resume/VB on/IN Friday/NNP ./.",
    "{PER} told/VBD reporters/NNS the/DT {ORG} plan/NN was/VBD dead/JJ ./.",
]


def _invented_word(rng: random.Random, min_syllables: int = 2, max_syllables: int = 3) -> str:
    return "".join(rng.choices(SYLLABLES, k=rng.randint(min_syllables, max_syllables))).capitalize()


def _entity(kind: str, rng: random.Random) -> list[tuple[str, str, str]]:
    """Words of one invented entity as (word, POS, NER type) triples."""
    if kind == "PER":
        words = [_invented_word(rng) for _ in range(rng.choice([1, 2, 2]))]
        return [(w, "NNP", "PER") for w in words]
    if kind == "LOC":
        return [(_invented_word(rng, 1, 2) + rng.choice(LOC_SUFFIXES), "NNP", "LOC")]
    if kind == "ORG":
        return [(_invented_word(rng), "NNP", "ORG"), (rng.choice(ORG_SUFFIXES), "NNP", "ORG")]
    if kind == "MISC_ADJ":
        return [(_invented_word(rng, 1, 2) + rng.choice(["ian", "ese", "ish"]), "JJ", "MISC")]
    if kind == "MISC_EVENT":
        return [(_invented_word(rng), "NNP", "MISC"), (rng.choice(EVENT_SUFFIXES), "NNP", "MISC")]
    raise ValueError(f"unknown slot {kind!r}")


def generate_sentence(rng: random.Random) -> list[tuple[str, str, str, str]]:
    """One sentence as (word, POS, chunk, NER) tuples, NER in IOB2."""
    rows = []
    for item in rng.choice(TEMPLATES).split():
        if item.startswith("{"):
            for position, (word, pos, entity_type) in enumerate(_entity(item[1:-1], rng)):
                prefix = "B-" if position == 0 else "I-"
                rows.append((word, pos, "O", prefix + entity_type))
        else:
            word, pos = item.rsplit("/", 1)
            rows.append((word, pos, "O", "O"))
    return rows


def write_demo_corpus(
    directory: str | Path,
    num_sentences: dict[str, int],
    seed: int,
    sentences_per_document: int = 10,
) -> Path:
    """Write `{split}.txt` for each split in `num_sentences` into `directory`; return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for split_index, (split, count) in enumerate(sorted(num_sentences.items())):
        rng = random.Random(seed * 1000 + split_index)
        sentences = [generate_sentence(rng) for _ in range(count)]
        documents = [
            sentences[i : i + sentences_per_document]
            for i in range(0, len(sentences), sentences_per_document)
        ]
        write_conll(directory / f"{split}.txt", documents)
    return directory
