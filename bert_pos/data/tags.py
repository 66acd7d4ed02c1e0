"""From the tags a source holds to the checked IOB2 tags every split is trained and scored on.

All readers (CoNLL columns, JSON lines, hub and saved datasets) check tags the same way, and
stop at the first problem with a `DataFormatError` that says where it is (`file:line`, or a
dataset's split and row) and what was expected there.
"""

from collections.abc import Callable

from bert_pos.data.labels import bioes_problem, invalid_iob2_position, is_span_label_set, to_iob2
from bert_pos.runtime.choices import SCHEMES
from bert_pos.runtime.errors import UserError


class DataFormatError(UserError, ValueError):
    """Data that cannot be read as it stands; the message names where and what was expected."""


class TagCheck:
    """One source's tags to IOB2, checked: BIOES sequences must be valid before they are
    converted (`scheme=bioes`); IOB1 is converted (`scheme=iob1`); every converted tag must be
    in `label_names` (None: any tag, for reading a label set); and when those are a span label
    set read as IOB2, an `I-X` must continue an X entity.

    `closed=False` (the validation and test splits of a label set that training data or
    data.labels define) lets a tag outside `label_names` through: a gold label the model cannot
    predict, which is scored but not trained on (see `sources.sentences_dataset`); the IOB2
    check still applies to it. `label_source` says where the tags came from in messages (e.g.
    "column 3, 0-based"); `error` is the error class the reader raises.
    """

    def __init__(
        self,
        label_names: list[str] | None,
        scheme: str,
        label_source: str,
        error: type[DataFormatError] = DataFormatError,
        closed: bool = True,
    ):
        if scheme not in SCHEMES:
            raise ValueError(f"scheme={scheme!r}; expected one of {', '.join(SCHEMES)}")
        self.label_names, self.scheme = label_names, scheme
        self.label_source, self.error = label_source, error
        self.known_labels = None if label_names is None or not closed else set(label_names)
        self.check_spans = (
            scheme == "iob2" and label_names is not None and is_span_label_set(label_names)
        )

    def __call__(self, labels: list[str], where: Callable[[int], str]) -> list[str]:
        """The IOB2 tags of one sentence's `labels`; `where(i)` locates word i in messages."""
        if self.scheme == "bioes":
            self.check_bioes(labels, where)
        tags = to_iob2(labels, self.scheme)
        if self.known_labels is not None:
            self.check_known(labels, tags, where)
        if self.check_spans:
            self.check_iob2(tags, where)
        return tags

    def check_known(self, labels: list[str], tags: list[str], where: Callable[[int], str]) -> None:
        """Every (converted) tag is in the label set."""
        for i, (label, tag) in enumerate(zip(labels, tags)):
            if tag in self.known_labels:
                continue
            as_iob2 = f" (IOB2 {tag!r})" if tag != label else ""
            raise self.error(
                f"{where(i)}: label {label!r}{as_iob2} ({self.label_source}) is not in the label "
                f"set; expected one of the {len(self.label_names)} labels "
                f"{' '.join(self.label_names)}{bioes_hint(label, self.scheme)}"
            )

    def check_bioes(self, labels: list[str], where: Callable[[int], str]) -> None:
        problem = bioes_problem(labels)
        if problem is not None:
            i = problem.position
            raise self.error(
                f"{where(i)}: tag {labels[i]!r} {problem.context} is not valid BIOES; "
                f"{problem.expected}"
            )

    def check_iob2(self, tags: list[str], where: Callable[[int], str]) -> None:
        """Stop at the first `I-X` that IOB2 forbids (at a sentence start, or after `O`, `B-Y`
        or `I-Y`): IOB1 tags read as IOB2 would split or merge entities without a word of
        warning."""
        i = invalid_iob2_position(tags)
        if i is None:
            return
        tag, entity = tags[i], tags[i][2:]
        previous = f"after {tags[i - 1]!r}" if i else "at the start of a sentence"
        raise self.error(
            f"{where(i)}: tag {tag!r} {previous} is not valid IOB2; expected B-{entity} to "
            f"open an entity, I-{entity} only after B-{entity} or I-{entity}. If the file is "
            "IOB1 (as the original eng.* files are), set data.scheme=iob1 to convert it"
        )


def bioes_hint(label: str, scheme: str) -> str:
    """A note for a label outside the label set that looks like BIOES (or BILOU) read as
    another scheme; empty otherwise."""
    if scheme != "bioes" and label[:2] in ("S-", "E-", "L-", "U-"):
        return ". If the tags are BIOES (or BILOU), set data.scheme=bioes"
    return ""
