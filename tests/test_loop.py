"""The loop's pure parts: best-model selection, the loop state as checkpoints hold it."""

import math
from pathlib import Path

import pytest

from bert_pos.runtime.checkpoint import CheckpointError
from bert_pos.training.loop import due, select_best
from bert_pos.training.state import Best, LoopState


def test_a_higher_score_becomes_the_best_and_resets_patience():
    best, without_gain, improved = select_best(Best(), 3, 0.5, epoch=1.0, step=10, min_delta=0.0)
    assert (best, without_gain, improved) == (Best(0.5, 1.0, 10), 0, True)


def test_a_tie_is_no_gain_and_keeps_the_earlier_best():
    earlier = Best(0.5, 1.0, 10)
    best, without_gain, improved = select_best(earlier, 0, 0.5, epoch=2.0, step=20, min_delta=0.0)
    assert (best, without_gain, improved) == (earlier, 1, False)


def test_a_gain_below_min_delta_is_kept_as_best_but_counts_as_no_gain():
    best, without_gain, improved = select_best(
        Best(0.5, 1.0, 10), 1, 0.505, 2.0, 20, min_delta=0.01
    )
    assert best == Best(0.505, 2.0, 20) and improved  # the better weights are kept
    assert without_gain == 2  # but early stopping sees no real gain


def test_a_lower_score_counts_towards_patience():
    best, without_gain, improved = select_best(Best(0.9, 1.0, 10), 2, 0.1, 3.0, 30, min_delta=0.0)
    assert (best.value, without_gain, improved) == (0.9, 3, False)


def test_the_first_evaluation_is_always_the_best_even_at_zero():
    best, _, improved = select_best(Best(), 0, 0.0, 0.5, 5, min_delta=0.0)
    assert improved and best.value == 0.0 and Best().value == -math.inf


def test_due_every_n_steps():
    assert [step for step in range(1, 11) if due(4, step)] == [4, 8]
    assert not any(due(None, step) for step in range(1, 11))


def test_loop_state_round_trips_as_a_plain_dict():
    state = LoopState(step=7, epoch=1, best=Best(0.4, 0.5, 3), epoch_rows=[{"step": 3}])
    saved = state.to_dict()
    assert saved["best"] == {"value": 0.4, "epoch": 0.5, "step": 3}  # plain values only
    assert LoopState.from_dict(saved, Path("ckpt")) == state


def test_a_checkpoint_from_before_the_loop_state_dataclass_resumes():
    """Checkpoints written before LoopState held the same keys as a dict, without stop_reason."""
    old_layout = {
        "step": 12,
        "epoch": 1,
        "step_in_epoch": 2,
        "epoch_loss_sum": 3.5,
        "epoch_labelled": 40,
        "best": {"value": 0.25, "epoch": 1.0, "step": 10},
        "evaluations_without_gain": 0,
        "skipped_steps": 0,
        "epoch_rows": [],
        "train_seconds": 1.0,
        "train_tokens": 100,
        "eval_seconds": 0.5,
        "eval_tokens": 50,
    }
    state = LoopState.from_dict(old_layout, Path("ckpt"))
    assert state.step == 12 and state.best == Best(0.25, 1.0, 10) and state.stop_reason is None


def test_an_incompatible_loop_state_is_refused_naming_the_checkpoint():
    with pytest.raises(CheckpointError, match="ckpt: its loop state has the keys"):
        LoopState.from_dict({"step": 1, "position": 3}, Path("ckpt"))
