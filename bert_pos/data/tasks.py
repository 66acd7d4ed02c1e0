"""A task: one tag layer a run learns, with its label set and how it is scored.

Everything that differs between tasks lives here, so the loop, the scorer and the commands
ask the task instead of working it out from the labels or the config again: whether its
labels are spans (entity P/R/F1, `f1`) or tags (token `accuracy`), and what of a label is
compared (`view`: CoNLL-U FEATS is compared by its universal features, as the CoNLL 2018
scorer compares them; every other label as it is).
"""

from collections.abc import Callable
from dataclasses import dataclass

from bert_pos.data.labels import is_span_label_set


@dataclass(frozen=True)
class Task:
    name: str  # data.task: ner, pos, chunk, upos, xpos, feats, or a dataset's own name
    label_names: list[str]  # the model's labels, in id order
    view: Callable[[str], str] | None = None  # what is compared of a label; None: itself

    @property
    def spans(self) -> bool:
        """Whether the labels are IOB2 spans, scored at entity level."""
        return is_span_label_set(self.label_names)

    @property
    def metric(self) -> str:
        """The score a run selects its best checkpoint by, and reports first."""
        return "f1" if self.spans else "accuracy"
