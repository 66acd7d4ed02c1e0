"""What several test modules share: tiny shapes and sentences, the composed config, paths."""

import os
import re
import subprocess
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from bert_pos.cli import accept_plus_groups
from bert_pos.config import register_configs
from bert_pos.data.batching import PaddingCollator
from bert_pos.data.labels import NER_LABELS
from bert_pos.modeling.heads.linear import LinearHead
from bert_pos.modeling.tagger import Tagger

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = str(ROOT / "conf")
# Where the real corpora live (CoNLL-2003 in conll2003/, ...): $BERT_POS_DATA, else ../shared/data.
REAL_DATA = Path(os.environ.get("BERT_POS_DATA") or ROOT.parent / "shared" / "data")
SHARED_CONLL = REAL_DATA / "conll2003"
NO_CONLL = (
    f"no CoNLL-2003 copy in {SHARED_CONLL} (BERT_POS_DATA names the folder holding conll2003/)"
)

# Every encoder family bert_pos supports, as its config's model_type (tiny random models).
FAMILIES = ["bert", "roberta", "xlm-roberta", "deberta-v2", "electra", "distilbert", "modernbert"]

TINY_BERT = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}

SENTENCES = [
    ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."],
    ["Peter", "Blackburn"],
    ["BRUSSELS", "1996-08-22"],
    ["The", "European", "Commission", "said", "on", "Thursday", "it", "disagreed", "."],
    ["Germany", "'s", "representative", "to", "the", "European", "Union", "said", "."],
] * 2


def compose_config(overrides: list[str]):
    """The real training config as Hydra composes it from conf/, with overrides (as the
    command line takes them: `+experiment=NAME` too)."""
    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=accept_plus_groups(overrides))


TINY_DEMO_OVERRIDES = [
    "+experiment=demo",
    "data.demo_sentences={train: 600, validation: 80, test: 80}",
    "data.batch_size=16",
    "model.random_init.hidden_size=64",
    "model.random_init.intermediate_size=128",
    "optim.lr=3e-3",
    "epochs=3",
    "data.cache_dir=null",  # tests write nothing outside their tmp folders
]


def data_config(*overrides: str):
    """The `data` subtree of the composed config, with `data.`-level overrides."""
    return compose_config([f"data.{override}" for override in overrides]).data


# ---------------------------------------------------------------- evaluation without a model

ID = {label: i for i, label in enumerate(NER_LABELS)}


class FixedTagger(torch.nn.Module):
    """Predicts, at each position, the label id stored in input_ids (ids are label ids here)."""

    def __init__(self):
        super().__init__()
        self.tag_head_name = LinearHead.module_name
        self.add_module(self.tag_head_name, LinearHead(len(NER_LABELS), None, "argmax"))

    tag_head = Tagger.tag_head
    decode_words = Tagger.decode_words  # argmax at each word's first subword
    loss_sum = Tagger.loss_sum  # cross-entropy

    def heads(self):
        return [self.tag_head]

    def forward(self, input_ids, attention_mask, word_index=None, all_tasks=False):
        logits = torch.nn.functional.one_hot(input_ids, len(NER_LABELS)).float() * 10
        return [logits] if all_tasks else logits


def loader_for(examples, batch_size=2):
    collate = PaddingCollator(pad_token_id=0, pad_to_multiple_of=1)
    batches = [
        list(range(i, min(i + batch_size, len(examples))))
        for i in range(0, len(examples), batch_size)
    ]
    return torch.utils.data.DataLoader(examples, batch_sampler=batches, collate_fn=collate)


def example(subword_predictions, labels, word_starts, word_tags):
    return {
        "input_ids": [ID[t] for t in subword_predictions],
        "labels": labels,
        "word_starts": word_starts,
        "tags": [ID[t] for t in word_tags],
    }


# ---------------------------------------------------------------- the commands


def run_command(module: str, *overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m bert_pos.<module> overrides...` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", f"bert_pos.{module}", *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_evaluate(*overrides):
    result = run_command("evaluate", *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


# ---------------------------------------------------------------- exports and the pipeline


def simple_sentences(conll_file: Path, count: int | None = None) -> list[str]:
    """Sentences of a CoNLL file whose words are single tokens of the Hugging Face pipeline's
    own word rule (letters/digits, or one punctuation mark): there its words are bert_pos's."""
    from bert_pos.data.conll import read_conll

    sentences = read_conll(conll_file, 3, None)
    simple = [s.words for s in sentences if all(re.fullmatch(r"\w+|[^\w\s]", w) for w in s.words)]
    return [" ".join(words) for words in simple[:count]]


def spaced_words(text: str) -> list[tuple[str, int, int]]:
    """The words of a text whose words are separated by spaces, with their offsets."""
    return [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def predicted_spans(trained, texts: list[str]) -> list[list[tuple[str, int, int]]]:
    """(type, start, end) of the entities bert_pos.predict finds in each text."""
    from contextlib import nullcontext

    from bert_pos.inference.tagging import entity_spans, tag_sentences

    words = [spaced_words(text) for text in texts]
    tags = tag_sentences(
        trained.model,
        trained.tokenizer,
        [[w for w, _, _ in ws] for ws in words],
        trained.label_names,
        16,
        torch.device("cpu"),
        nullcontext(),
    )
    return [
        [(e["type"], e["start"], e["end"]) for e in entity_spans(text, ws, ts)]
        for text, ws, ts in zip(texts, words, tags)
    ]


def pipeline_spans(tagger, text: str) -> list[tuple[str, int, int]]:
    """(type, start, end) of the pipeline's entities, without the spaces that the offsets of
    lone start markers (SentencePiece's `▁` before a word) add at either end, and without
    entities of no characters (a lone marker tagged on its own)."""
    spans = []
    for entity in tagger(text):
        start, end = entity["start"], entity["end"]
        start += len(text[start:end]) - len(text[start:end].lstrip())
        end -= len(text[start:end]) - len(text[start:end].rstrip())
        if end > start:
            spans.append((entity["entity_group"], start, end))
    return spans


def export_logits(trained, model_dir: Path, sentences: list[list[str]]):
    """bert_pos's logits and the exported model's through AutoModelForTokenClassification, at
    the real (unpadded) positions of `sentences`."""
    from transformers import AutoModelForTokenClassification

    hugging_face = AutoModelForTokenClassification.from_pretrained(model_dir).eval()
    batch = trained.tokenizer(
        sentences, is_split_into_words=True, padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        ours = trained.model(batch["input_ids"], batch["attention_mask"])
        theirs = hugging_face(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    mask = batch["attention_mask"].bool()
    return ours[mask], theirs.logits[mask]
