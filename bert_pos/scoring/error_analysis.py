"""What kinds of span errors a tagger makes: a classification of every gold and predicted span.

Spans are found as conlleval finds them (`significance.spans_of`). Each gold span is, in this
order of precedence: `correct` (a prediction with the same type and boundaries),
`wrong_type` (a prediction with the same boundaries, another type), `wrong_boundaries` (an
overlapping prediction of the same type), `wrong_type_and_boundaries` (only overlapping
predictions of other types and boundaries), or `missed` (no overlapping prediction). Each
predicted span gets the same categories against the gold spans, with `spurious` for no
overlapping gold span. So each side's categories add up to its span count, the totals that
conlleval's precision (predicted) and recall (gold) divide by.

Span data (nested mentions) is analysed from its mentions instead of tags (`mentions=True`):
every mention is a span, so a nested one is counted like any other.
"""

import json
from collections import Counter
from pathlib import Path

from bert_pos.scoring.spans import spans_of

GOLD_CATEGORIES = (
    "correct",
    "wrong_type",
    "wrong_boundaries",
    "wrong_type_and_boundaries",
    "missed",
)
PREDICTED_CATEGORIES = (*GOLD_CATEGORIES[:-1], "spurious")


def overlaps(span: tuple, other: tuple) -> bool:
    return span[1] <= other[2] and other[1] <= span[2]


def span_category(span: tuple, others: set, unmatched: str) -> str:
    """The category of `span` (type, first, last) against the other side's spans."""
    if span in others:
        return "correct"
    overlapping = [other for other in others if overlaps(span, other)]
    if not overlapping:
        return unmatched
    if any(other[1:] == span[1:] for other in overlapping):
        return "wrong_type"
    if any(other[0] == span[0] for other in overlapping):
        return "wrong_boundaries"
    return "wrong_type_and_boundaries"


def position_order(span: tuple) -> tuple:
    return span[1], span[2], span[0]


def classify_sentence(gold_tags: list[str], predicted_tags: list[str]) -> tuple[list, list]:
    """[(span, category)] of the gold spans and of the predicted spans of one sentence, each in
    position order."""
    return classify_spans(spans_of(gold_tags), spans_of(predicted_tags))


def classify_spans(gold: set, predicted: set) -> tuple[list, list]:
    """`classify_sentence` of one sentence's gold and predicted spans (type, first, last)."""
    return (
        [
            (span, span_category(span, predicted, "missed"))
            for span in sorted(gold, key=position_order)
        ],
        [
            (span, span_category(span, gold, "spurious"))
            for span in sorted(predicted, key=position_order)
        ],
    )


def surface(words: list[str], span: tuple) -> str:
    return " ".join(words[span[1] : span[2] + 1])


def training_entities(words: list[list[str]], tags: list[list[str]]) -> set[tuple[str, str]]:
    """(surface form, type) of every entity span in a training set."""
    return {
        (surface(sentence, span), span[0])
        for sentence, sentence_tags in zip(words, tags, strict=True)
        for span in spans_of(sentence_tags)
    }


def f1_of(correct_gold: int, gold: int, correct_predicted: int, predicted: int) -> dict:
    precision = correct_predicted / predicted if predicted else 0.0
    recall = correct_gold / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "gold": gold,
        "predicted": predicted,
    }


def sentence_spans(sequences: list[list], mentions: bool) -> list[set]:
    """Each sentence's spans (type, first, last): of its tags, or (`mentions`) its mentions
    (start, end exclusive, type)."""
    if mentions:
        return [{(kind, a, b - 1) for a, b, kind in sentence} for sentence in sequences]
    return [spans_of(tags) for tags in sequences]


def classified_spans(gold: list[set], predicted: list[set]):
    """(sentence index, side `gold` or `predicted`, span, category) of every span of each
    sentence's gold and predicted spans."""
    for index, (gold_set, predicted_set) in enumerate(zip(gold, predicted, strict=True)):
        gold_spans, predicted_spans = classify_spans(gold_set, predicted_set)
        for side, classified in (("gold", gold_spans), ("predicted", predicted_spans)):
            for span, category in classified:
                yield index, side, span, category


def boundary_confusion(gold: list[set], predicted: list[set]) -> dict:
    """{gold type: {predicted type: spans}} over gold and predicted spans with the same first
    and last word (the diagonal is the correct spans). Nested mentions may put several types
    on the same words: a gold span then pairs with the prediction of its own type if there is
    one, else with the first of the others by name."""
    confusion: dict[str, Counter] = {}
    for gold_set, predicted_set in zip(gold, predicted, strict=True):
        predicted_at: dict[tuple, set] = {}
        for kind, first, last in predicted_set:
            predicted_at.setdefault((first, last), set()).add(kind)
        for kind, first, last in gold_set:
            types = predicted_at.get((first, last))
            if types:
                paired = kind if kind in types else min(types)
                confusion.setdefault(kind, Counter())[paired] += 1
    return {name: dict(sorted(row.items())) for name, row in sorted(confusion.items())}


def seen_unseen_scores(words, classified: list[tuple], seen: set[tuple[str, str]]) -> dict:
    """Precision, recall and F1 on entities seen and unseen in training (see
    `analyse_errors`), from `classified_spans`."""
    spans = Counter()  # (seen?, side, correct?) -> spans
    for index, side, span, category in classified:
        known = (surface(words[index], span), span[0]) in seen
        spans[known, side, category == "correct"] += 1
    return {
        name: f1_of(
            spans[known, "gold", True],
            spans[known, "gold", True] + spans[known, "gold", False],
            spans[known, "predicted", True],
            spans[known, "predicted", True] + spans[known, "predicted", False],
        )
        for name, known in (("seen", True), ("unseen", False))
    }


def analyse_errors(
    words: list[list[str]],
    gold: list[list[str]],
    predicted: list[list[str]],
    seen: set[tuple[str, str]] | None = None,
    examples: int = 3,
    mentions: bool = False,
) -> dict:
    """Category counts of gold and predicted spans (overall and per type), the confusion of
    types over spans whose boundaries match (`boundary_confusion`), up to `examples` example
    sentences per error category (of the gold spans, and the spurious predictions), and,
    given `seen` ((surface form, type) pairs of a training set, see `training_entities`), F1
    on seen and on unseen entities: a gold span is seen when its form and type occur in
    training, a predicted span when its form and predicted type do, so recall divides by
    seen gold spans and precision by seen predictions. `gold` and `predicted`: each
    sentence's tags, or (`mentions`) its mentions (start, end exclusive, type)."""
    gold_spans, predicted_spans = (
        sentence_spans(gold, mentions),
        sentence_spans(predicted, mentions),
    )
    classified = list(classified_spans(gold_spans, predicted_spans))
    counts = {"gold": Counter(), "predicted": Counter()}
    per_type = {"gold": {}, "predicted": {}}
    found: dict[str, list] = {category: [] for category in (*GOLD_CATEGORIES[1:], "spurious")}
    for index, side, span, category in classified:
        counts[side][category] += 1
        per_type[side].setdefault(span[0], Counter())[category] += 1
        listed = found.get(category) if side == "gold" or category == "spurious" else None
        if listed is not None and len(listed) < examples:
            listed.append(
                {
                    "sentence": index,
                    "span": list(span),
                    "words": words[index],
                    "gold": gold[index],
                    "predicted": predicted[index],
                }
            )
    report = {
        "gold": {category: counts["gold"][category] for category in GOLD_CATEGORIES},
        "predicted": {category: counts["predicted"][category] for category in PREDICTED_CATEGORIES},
        "per_type": {
            side: {name: dict(values) for name, values in sorted(types.items())}
            for side, types in per_type.items()
        },
        "confusion": boundary_confusion(gold_spans, predicted_spans),
        "examples": {category: items for category, items in found.items() if items},
    }
    if seen is not None:
        report["seen_unseen"] = seen_unseen_scores(words, classified, seen)
    return report


def count_table(corner: str, rows: dict[str, dict], columns: list[str]) -> list[str]:
    """Markdown lines of a table of counts: a row per key of `rows`, 0 where one has no count."""
    lines = [f"| {corner} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, counts in rows.items():
        lines.append(f"| {name} | " + " | ".join(str(counts.get(c, 0)) for c in columns) + " |")
    return lines


def format_error_report(report: dict) -> str:
    """The report as Markdown: counts, types, confusion, seen/unseen F1, examples."""
    lines = ["# Span errors", "", "| category | gold spans | predicted spans |", "|---|---|---|"]
    for category in (*GOLD_CATEGORIES, "spurious"):
        lines.append(
            f"| {category} | {report['gold'].get(category, '-')} | "
            f"{report['predicted'].get(category, '-')} |"
        )
    lines += ["", "## Per type (gold side)", ""]
    lines += count_table("type", report["per_type"]["gold"], list(GOLD_CATEGORIES))
    types = sorted(
        {t for row in report["confusion"].values() for t in row} | set(report["confusion"])
    )
    lines += ["", "## Type confusion (boundaries match; rows gold, columns predicted)", ""]
    confusion = {name: report["confusion"].get(name, {}) for name in types}
    lines += count_table("gold \\ predicted", confusion, types)
    if "seen_unseen" in report:
        lines += [
            "",
            "## Entities seen and unseen in training",
            "",
            "| entities | precision | recall | f1 | gold | predicted |",
            "|---|---|---|---|---|---|",
        ]
        for name, values in report["seen_unseen"].items():
            lines.append(
                f"| {name} | {values['precision']:.4f} | {values['recall']:.4f} | "
                f"{values['f1']:.4f} | {values['gold']} | {values['predicted']} |"
            )
    lines += ["", "## Examples"]
    for category, items in report["examples"].items():
        lines += ["", f"### {category}", ""]
        for item in items:
            kind, first, last = item["span"]
            lines.append(
                f"- sentence {item['sentence']}, {kind} words {first}-{last}: {shown(item)}"
            )
    return "\n".join(lines) + "\n"


def shown(item: dict) -> str:
    """An example sentence: word/gold→predicted tags, or its words and both sides' mentions."""
    if item["gold"] and not isinstance(item["gold"][0], str):  # mentions
        words = item["words"]
        return (
            " ".join(words)
            + " | gold: "
            + mention_list(words, item["gold"])
            + (" | predicted: " + mention_list(words, item["predicted"]))
        )
    return " ".join(
        w if g == p == "O" else f"{w}/{g}" + ("" if g == p else f"→{p}")
        for w, g, p in zip(item["words"], item["gold"], item["predicted"])
    )


def mention_list(words: list[str], mentions: list) -> str:
    return ", ".join(f"[{' '.join(words[a:b])}]/{kind}" for a, b, kind in mentions) or "none"


def write_error_report(
    path_json: Path,
    path_md: Path,
    words,
    gold,
    predicted,
    seen=None,
    examples: int = 3,
    mentions: bool = False,
) -> dict:
    """Write errors.json and errors.md (see `analyse_errors`); returns the report."""
    report = analyse_errors(words, gold, predicted, seen, examples, mentions)
    Path(path_json).write_text(json.dumps(report, indent=2) + "\n")
    Path(path_md).write_text(format_error_report(report))
    return report
