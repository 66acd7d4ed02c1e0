"""Shared fixtures: a tiny cased WordPiece tokenizer and tiny random BERT taggers, built in
seconds offline, and the composed project config shrunk for fast runs."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from bert_pos.config import register_configs
from bert_pos.data import build_wordpiece_tokenizer
from bert_pos.model import build_model

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
SHARED_CONLL = Path(__file__).resolve().parents[2] / "shared" / "data" / "conll2003"

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


@pytest.fixture
def tokenizer(tmp_path):
    return build_wordpiece_tokenizer(SENTENCES, tmp_path / "tokenizer")


@pytest.fixture
def tiny_model(tokenizer):
    torch.manual_seed(0)
    return build_model(
        num_labels=9, dropout=0.0, random_init=TINY_BERT, vocab_size=len(tokenizer)
    ).eval()


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


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A tiny demo run trained once for the tests that need a finished run folder; the
    config is saved where the Hydra entry point saves it."""
    from omegaconf import OmegaConf

    from bert_pos.train import train

    run_dir = tmp_path_factory.mktemp("run")
    cfg = compose_config(TINY_DEMO_OVERRIDES + ["epochs=4"])
    metrics = train(cfg, run_dir)
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    return run_dir, metrics
