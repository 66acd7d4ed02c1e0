"""experiments/flop_ceiling.py: the FLOPs it reports are those of the padded batches it builds
(sorted by length, or in file order), so the ratios in experiments/RESULTS.md can be trusted."""

import importlib.util

import torch
from transformers import BertConfig, BertModel

from tests.helpers import ROOT, TINY_BERT


def load_script():
    path = ROOT / "experiments/flop_ceiling.py"
    spec = importlib.util.spec_from_file_location("flop_ceiling", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expected_flops(config, batches) -> int:
    """Per layer: four hidden x hidden projections and the feed-forward pair on every padded
    position, two (L x L) attention products per row; the pooler on each row's first token."""
    hidden, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    total = 0
    for input_ids, _ in batches:
        rows, length = input_ids.shape
        positions = rows * length
        per_layer = 2 * positions * (4 * hidden * hidden + 2 * hidden * inner)
        per_layer += 2 * 2 * rows * length * length * hidden
        total += layers * per_layer + 2 * rows * hidden * hidden
    return total


def test_sorted_batches_cost_the_flops_of_their_padding_and_no_more():
    flop_ceiling = load_script()
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, **TINY_BERT)
    encoder = BertModel(config).eval()
    token_ids = [list(range(1, n + 1)) for n in (2, 9, 3, 8, 5)]
    by_length = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
    counted = {}
    for name, order in (("sorted", by_length), ("file order", list(range(len(token_ids))))):
        batches = flop_ceiling.padded_batches(token_ids, order, 2)
        assert [ids.shape for ids, _ in batches] == (
            [(2, 3), (2, 8), (1, 9)] if name == "sorted" else [(2, 9), (2, 8), (1, 5)]
        )
        gflop, seconds = flop_ceiling.measure(encoder, batches)
        assert len(seconds) == 3 and min(seconds) > 0
        assert round(gflop * 1e9) == expected_flops(config, batches)
        counted[name] = gflop
    assert counted["sorted"] < counted["file order"]
