"""Fixtures: a tiny cased WordPiece tokenizer and tiny random BERT taggers, built in seconds
offline, and one tiny demo run trained once for the tests that need a finished run folder.
Shared constants and helpers are in tests/helpers.py."""

import pytest
import torch

from bert_pos.data.vocabularies import build_wordpiece_tokenizer
from bert_pos.modeling.tagger import build_model
from tests.helpers import SENTENCES, TINY_BERT, TINY_DEMO_OVERRIDES, compose_config


@pytest.fixture
def tokenizer(tmp_path):
    return build_wordpiece_tokenizer(SENTENCES, tmp_path / "tokenizer")


@pytest.fixture
def tiny_model(tokenizer):
    torch.manual_seed(0)
    return build_model(
        num_labels=9, dropout=0.0, random_init=TINY_BERT, vocab_size=len(tokenizer)
    ).eval()


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A tiny demo run trained once; the config is saved where the Hydra entry point saves it."""
    from omegaconf import OmegaConf

    from bert_pos.train import train

    run_dir = tmp_path_factory.mktemp("run")
    cfg = compose_config(TINY_DEMO_OVERRIDES + ["epochs=4"])
    metrics = train(cfg, run_dir)
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    return run_dir, metrics


def pytest_addoption(parser):
    parser.addoption(
        "--require-pin",
        action="store_true",
        help="fail (not skip) tests/test_regression.py when the installed versions "
        "differ from the pinned lock (make test and CI)",
    )
