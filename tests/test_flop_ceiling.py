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
    lengths = list(map(len, token_ids))
    counted = {}
    ways = {  # the sorted batches are bert_pos's evaluation batches: longest first
        "sorted": (flop_ceiling.length_sorted_batches(lengths, 2), [(2, 9), (2, 5), (1, 2)]),
        "file order": (flop_ceiling.file_order_batches(5, 2), [(2, 9), (2, 8), (1, 5)]),
    }
    for name, (groups, shapes) in ways.items():
        batches = flop_ceiling.padded_batches(token_ids, groups)
        assert [tuple(ids.shape) for ids, _ in batches] == shapes
        gflop, seconds = flop_ceiling.measure(encoder, batches)
        assert len(seconds) == 3 and min(seconds) > 0
        assert round(gflop * 1e9) == expected_flops(config, batches)
        counted[name] = gflop
    assert counted["sorted"] < counted["file order"]
