"""What several test modules share: tiny shapes and sentences, the composed config, paths."""

import subprocess
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from bert_pos.config import register_configs
from bert_pos.data.batching import PaddingCollator
from bert_pos.labels import NER_LABELS
from bert_pos.model import Tagger

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = str(ROOT / "conf")
SHARED_CONLL = ROOT.parent / "shared" / "data" / "conll2003"

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
    """The real training config as Hydra composes it from conf/, with overrides."""
    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


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

    crf, decoding = None, "argmax"
    decode_words = Tagger.decode_words  # argmax at each word's first subword
    loss_sum = Tagger.loss_sum  # cross-entropy

    def forward(self, input_ids, attention_mask, word_index=None):
        return torch.nn.functional.one_hot(input_ids, len(NER_LABELS)).float() * 10


def loader_for(examples, batch_size=2):
    collate = PaddingCollator(pad_token_id=0, pad_to_multiple_of=1)
    batches = [
        list(range(i, min(i + batch_size, len(examples))))
        for i in range(0, len(examples), batch_size)
    ]
    return torch.utils.data.DataLoader(examples, batch_sampler=batches, collate_fn=collate)


def example(subword_predictions, labels, word_starts, word_tags):
    return {"input_ids": [ID[t] for t in subword_predictions], "labels": labels,
            "word_starts": word_starts, "tags": [ID[t] for t in word_tags]}  # fmt: skip


# ---------------------------------------------------------------- the commands


def run_command(module: str, *overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m bert_pos.<module> overrides...` from the repository root."""
    return subprocess.run([sys.executable, "-m", f"bert_pos.{module}", *overrides], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def run_evaluate(*overrides):
    result = run_command("evaluate", *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr
