"""Label vocabularies and tag schemes: IOB2 (what training and scoring use), IOB1 and BIOES
(BILOU), with checks and conversions to IOB2.

The CoNLL-2003 tag lists are the ClassLabel lists of the Hugging Face `conll2003` dataset, in
the same order, so label ids agree between local files and hub data and across splits (a tag
that never occurs in train, such as `I-PRT` in validation, still has a stable id).
"""

from typing import NamedTuple

IGNORE_INDEX = -100  # label of positions that carry no loss: specials, padding, continuations

NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]

POS_LABELS = [
    '"',
    "''",
    "#",
    "$",
    "(",
    ")",
    ",",
    ".",
    ":",
    "``",
    "CC",
    "CD",
    "DT",
    "EX",
    "FW",
    "IN",
    "JJ",
    "JJR",
    "JJS",
    "LS",
    "MD",
    "NN",
    "NNP",
    "NNPS",
    "NNS",
    "NN|SYM",
    "PDT",
    "POS",
    "PRP",
    "PRP$",
    "RB",
    "RBR",
    "RBS",
    "RP",
    "SYM",
    "TO",
    "UH",
    "VB",
    "VBD",
    "VBG",
    "VBN",
    "VBP",
    "VBZ",
    "WDT",
    "WP",
    "WP$",
    "WRB",
]

CHUNK_LABELS = [
    "O",
    "B-ADJP",
    "I-ADJP",
    "B-ADVP",
    "I-ADVP",
    "B-CONJP",
    "I-CONJP",
    "B-INTJ",
    "I-INTJ",
    "B-LST",
    "I-LST",
    "B-NP",
    "I-NP",
    "B-PP",
    "I-PP",
    "B-PRT",
    "I-PRT",
    "B-SBAR",
    "I-SBAR",
    "B-UCP",
    "I-UCP",
    "B-VP",
    "I-VP",
]

# task -> (column index in the 4-column CoNLL-2003 files `word POS chunk NER`, label list)
CONLL2003_TASKS = {
    "pos": (1, POS_LABELS),
    "chunk": (2, CHUNK_LABELS),
    "ner": (3, NER_LABELS),
}


def task_labels(task: str) -> list[str]:
    if task not in CONLL2003_TASKS:
        raise ValueError(f"data.task={task!r} is not one of {sorted(CONLL2003_TASKS)}")
    return CONLL2003_TASKS[task][1]


def is_span_label_set(label_names: list[str]) -> bool:
    """Whether the labels are IOB spans (`O`, `B-X`, `I-X`), scored at entity level."""
    return all(name == "O" or name[:2] in ("B-", "I-") for name in label_names)


def training_label_names(tags) -> list[str]:
    """The label list of a training split's (IOB2) tags, for data without a fixed list: their
    sorted set; a span label set also gets B-X and I-X of every type X it holds, so where
    training saw a type in one form only (B-X: all its entities one word long) the other form
    still has an id, and validation or test may hold it."""
    names = set(tags)
    if is_span_label_set(list(names)):
        names |= {f"{prefix}-{name[2:]}" for name in names if name != "O" for prefix in "BI"}
    return sorted(names)


def invalid_iob2_position(tags: list[str]) -> int | None:
    """Index of the first tag that IOB2 forbids, or None: an `I-X` must continue an entity of
    the same type, so it cannot open a sentence or follow `O`, `B-Y` or `I-Y`."""
    previous = "O"
    for i, tag in enumerate(tags):
        if tag.startswith("I-") and (previous == "O" or previous[2:] != tag[2:]):
            return i
        previous = tag
    return None


def iob1_to_iob2(tags: list[str]) -> list[str]:
    """IOB1 (an entity starts with I- unless it directly follows one of the same type, which
    then starts with B-) to IOB2 (every entity starts with B-)."""
    converted = []
    previous = "O"
    for tag in tags:
        starts_entity = tag.startswith("I-") and (previous == "O" or previous[2:] != tag[2:])
        converted.append("B-" + tag[2:] if starts_entity else tag)
        previous = tag
    return converted


# BIOES: an entity is S-X alone, or B-X, any number of I-X, then E-X. BILOU writes the same
# scheme with L- (last) for E- and U- (unit) for S-.
BIOES_PREFIXES = {"B": "B", "I": "I", "E": "E", "S": "S", "L": "E", "U": "S"}


class BioesProblem(NamedTuple):
    position: int  # index of the tag BIOES forbids
    context: str  # where it stands, e.g. "after 'O'"
    expected: str  # what BIOES allows there


def bioes_parts(tag: str) -> tuple[str, str] | None:
    """`(prefix, type)` of a BIOES or BILOU tag with L-/U- read as E-/S- (`("O", "")` for O);
    None for a tag of neither scheme."""
    if tag == "O":
        return "O", ""
    prefix, dash, entity = tag.partition("-")
    if not dash or not entity or prefix not in BIOES_PREFIXES:
        return None
    return BIOES_PREFIXES[prefix], entity


def bioes_problem(tags: list[str]) -> BioesProblem | None:
    """The first tag of a sentence that BIOES (or BILOU) forbids, or None: I-X and E-X only
    continue an entity that B-X opened, and an opened entity must close with E-X before
    anything else follows or the sentence ends."""
    open_entity = None  # the type of the entity a B- opened and no E- has closed yet
    for i, tag in enumerate(tags):
        context = f"after {tags[i - 1]!r}" if i else "at the start of a sentence"
        parts = bioes_parts(tag)
        if parts is None:
            return BioesProblem(i, context, "expected O or a B-, I-, E-, S- tag (BILOU: L-, U-)")
        prefix, entity = parts
        if open_entity is not None:
            if prefix not in ("I", "E") or entity != open_entity:
                return BioesProblem(
                    i,
                    context,
                    f"expected I-{open_entity} or E-{open_entity} "
                    f"to continue the {open_entity} entity",
                )
            open_entity = None if prefix == "E" else open_entity
        elif prefix in ("I", "E"):
            return BioesProblem(
                i,
                context,
                f"expected B-{entity} to open an entity (S-{entity} for a one-word entity)",
            )
        elif prefix == "B":
            open_entity = entity
    if open_entity is not None:
        return BioesProblem(
            len(tags) - 1,
            "at the end of a sentence",
            f"expected E-{open_entity} to close the {open_entity} entity "
            f"(S-{open_entity} for a one-word entity)",
        )
    return None


def bioes_to_iob2(tags: list[str]) -> list[str]:
    """Valid BIOES (or BILOU) tags to IOB2: S-X becomes B-X, E-X becomes I-X; O, B-X and I-X
    stay. Check the tags with `bioes_problem` first."""
    converted = []
    for tag in tags:
        prefix, entity = bioes_parts(tag)
        inside = {"S": "B", "E": "I"}.get(prefix, prefix)
        converted.append(tag if prefix == "O" else f"{inside}-{entity}")
    return converted


def to_iob2(tags: list[str], scheme: str) -> list[str]:
    """Tags of `scheme` (iob2, iob1, bioes) as IOB2, the one scheme training and scoring use."""
    if scheme == "iob1":
        return iob1_to_iob2(tags)
    if scheme == "bioes":
        return bioes_to_iob2(tags)
    return tags


def iob2_label_names(names: list[str], scheme: str) -> list[str]:
    """The IOB2 label list of a label list in `scheme`: unchanged for iob2; otherwise every
    entity type becomes B-X and I-X where its first tag stood (IOB1 and BIOES lists, such
    as a dataset's ClassLabel names, need not hold both), and other labels (O) stay."""
    if scheme == "iob2":
        return list(names)
    prefixes = ("B", "I") if scheme == "iob1" else tuple(BIOES_PREFIXES)
    converted = []
    for name in names:
        prefix, dash, entity = name.partition("-")
        spans = [f"B-{entity}", f"I-{entity}"] if dash and entity and prefix in prefixes else [name]
        converted += [label for label in spans if label not in converted]
    return converted


def begin_to_inside_map(label_names: list[str]) -> list[int]:
    """For each label id, the id a continuation subword gets under label_strategy=all.

    B-X maps to I-X (when I-X exists); every other label maps to itself, as in the
    Hugging Face token-classification recipes.
    """
    label_to_id = {name: i for i, name in enumerate(label_names)}
    mapping = []
    for i, name in enumerate(label_names):
        inside = "I-" + name[2:] if name.startswith("B-") else None
        mapping.append(label_to_id.get(inside, i) if inside else i)
    return mapping
