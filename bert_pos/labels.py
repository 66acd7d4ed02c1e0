"""Label vocabularies and IOB helpers.

The CoNLL-2003 tag lists are the ClassLabel lists of the Hugging Face `conll2003` dataset, in
the same order, so label ids agree between local files and hub data and across splits (a tag
that never occurs in train, such as `I-PRT` in validation, still has a stable id).
"""

IGNORE_INDEX = -100  # label of positions that carry no loss: specials, padding, continuations

NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]

POS_LABELS = [
    '"', "''", "#", "$", "(", ")", ",", ".", ":", "``", "CC", "CD", "DT", "EX", "FW", "IN",
    "JJ", "JJR", "JJS", "LS", "MD", "NN", "NNP", "NNPS", "NNS", "NN|SYM", "PDT", "POS", "PRP",
    "PRP$", "RB", "RBR", "RBS", "RP", "SYM", "TO", "UH", "VB", "VBD", "VBG", "VBN", "VBP",
    "VBZ", "WDT", "WP", "WP$", "WRB",
]  # fmt: skip

CHUNK_LABELS = [
    "O", "B-ADJP", "I-ADJP", "B-ADVP", "I-ADVP", "B-CONJP", "I-CONJP", "B-INTJ", "I-INTJ",
    "B-LST", "I-LST", "B-NP", "I-NP", "B-PP", "I-PP", "B-PRT", "I-PRT", "B-SBAR", "I-SBAR",
    "B-UCP", "I-UCP", "B-VP", "I-VP",
]  # fmt: skip

# task -> (column index in the 4-column CoNLL-2003 files `word POS chunk NER`, label list)
CONLL2003_TASKS = {
    "pos": (1, POS_LABELS),
    "chunk": (2, CHUNK_LABELS),
    "ner": (3, NER_LABELS),
}

# Tasks whose labels are IOB2 spans, scored at entity level; the others get token accuracy only.
SPAN_TASKS = {"ner", "chunk"}


def task_labels(task: str) -> list[str]:
    if task not in CONLL2003_TASKS:
        raise ValueError(f"data.task={task!r} is not one of {sorted(CONLL2003_TASKS)}")
    return CONLL2003_TASKS[task][1]


def is_span_label_set(label_names: list[str]) -> bool:
    """Whether the labels are IOB spans (`O`, `B-X`, `I-X`), scored at entity level."""
    return all(name == "O" or name[:2] in ("B-", "I-") for name in label_names)


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
