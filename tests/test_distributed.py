"""Data-parallel training: 2 CPU processes (gloo) give the model and scores of one process
with the same global batch."""

import json
import os
import shutil
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from bert_pos.data.batching import ShuffledBatchSampler, TrainExamples, length_sorted_batches
from tests.helpers import TINY_DEMO_OVERRIDES, compose_config

PER_PROCESS_BATCH = 8
RECIPE = TINY_DEMO_OVERRIDES + [
    "data.demo_sentences={train: 203, validation: 61, test: 40}",  # 203: a short last batch
    "epochs=2",
    # no dropout anywhere: each process draws its own masks, so only then can runs agree
    "model.dropout=0.0",
    "+model.random_init.hidden_dropout_prob=0.0",
    "+model.random_init.attention_probs_dropout_prob=0.0",
    "optim.warmup_ratio=0.1",
    "eval.batch_size=16",  # 61 validation sentences: 4 batches, the last short
    "checkpoint.every_n_steps=5",
    "checkpoint.keep_last=100",
    "log_every_n_steps=1",
    "device=cpu",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, overrides: list[str], run_dir: str) -> None:
    """One torchrun-like process: the environment torchrun would set, then `train`."""
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    from bert_pos.runtime import distributed
    from bert_pos.train import train

    try:
        metrics = train(compose_config(overrides), run_dir)
        # every rank's view of the scores: they must agree without rank 0 telling them
        out = f"{run_dir}/rank{rank}.json"
        with open(out, "w") as file:
            json.dump({"epochs": metrics["epochs"], "steps": metrics["steps"]}, file)
    finally:
        distributed.teardown()


def run_processes(world_size: int, overrides: list[str], run_dir) -> None:
    mp.start_processes(
        _worker,
        args=(world_size, free_port(), overrides, str(run_dir)),
        nprocs=world_size,
        start_method="spawn",
    )


def one_and_two_processes(recipe: list[str], tmp_path) -> tuple[dict, dict]:
    """The metrics of `recipe` trained by one process at twice the batch (in `tmp_path/one`)
    and by two processes (`tmp_path/two`), each process on one thread."""
    from bert_pos.train import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the two processes runs
    try:
        single = train(
            compose_config(recipe + [f"data.batch_size={2 * PER_PROCESS_BATCH}"]), tmp_path / "one"
        )
    finally:
        torch.set_num_threads(threads)
    run_processes(2, recipe + [f"data.batch_size={PER_PROCESS_BATCH}"], tmp_path / "two")
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["world_size"] == 2 and two["steps"] == single["steps"]
    return single, two


def weights(run_dir, which="last"):
    return load_file(run_dir / "checkpoints" / which / "model.safetensors")


@pytest.fixture(scope="module")
def single_and_two_processes(tmp_path_factory):
    """The recipe with one process at global batch 16, and two processes at 8 each."""
    single = tmp_path_factory.mktemp("single")
    from bert_pos.train import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the two processes runs
    try:
        single_metrics = train(
            compose_config(RECIPE + [f"data.batch_size={2 * PER_PROCESS_BATCH}"]), single
        )
    finally:
        torch.set_num_threads(threads)
    two = tmp_path_factory.mktemp("two")
    run_processes(2, RECIPE + [f"data.batch_size={PER_PROCESS_BATCH}"], two)
    return single, single_metrics, two


@pytest.mark.slow
def test_two_processes_train_the_model_of_one_with_the_same_global_batch(
    single_and_two_processes,
):
    single, single_metrics, two = single_and_two_processes
    two_metrics = json.loads((two / "metrics.json").read_text())
    assert two_metrics["world_size"] == 2 and two_metrics["global_batch_size"] == 16
    assert two_metrics["steps"] == single_metrics["steps"] == 26  # ceil(203 / 16) x 2 epochs
    ours, theirs = weights(single), weights(two)
    assert ours.keys() == theirs.keys()
    for name in ours:
        # float tolerance: each process pads its half of a batch to its own length. A key
        # bias cannot change attention (softmax ignores a shift shared by all keys): its
        # true gradient is 0, what it gets is float noise, which Adam scales up to steps of
        # ~lr x noise / |noise|; those weights alone get a wider margin.
        atol = 1e-4 if name.endswith("attention.self.key.bias") else 1e-6
        torch.testing.assert_close(theirs[name], ours[name], rtol=1e-5, atol=atol, msg=name)
    # the weights moved far more than the tolerance since step 5: the comparison can fail
    step_5 = load_file(single / "checkpoints" / "step-0000005" / "model.safetensors")
    assert max((step_5[n] - ours[n]).abs().max().item() for n in ours) > 1e-2


@pytest.mark.slow
def test_two_processes_score_exactly_like_one(single_and_two_processes):
    single, single_metrics, two = single_and_two_processes
    rank_views = [json.loads((two / f"rank{r}.json").read_text()) for r in range(2)]
    assert rank_views[0] == rank_views[1]  # both ranks hold the same gathered scores
    for ours, theirs in zip(single_metrics["epochs"], rank_views[0]["epochs"], strict=True):
        assert ours["step"] == theirs["step"]
        assert theirs["train/loss"] == pytest.approx(ours["train/loss"], rel=1e-4)
        assert theirs["val/loss"] == pytest.approx(ours["val/loss"], rel=1e-4)
        for key in ("val/f1", "val/precision", "val/recall", "val/accuracy"):
            assert theirs[key] == ours[key], key
    # rank 0 alone wrote the run's files; the predictions cover every validation sentence
    predictions = (two / "eval" / "validation" / "predictions.txt").read_text()
    single_predictions = (single / "eval" / "validation" / "predictions.txt").read_text()
    assert predictions == single_predictions
    assert len(list((two / "tensorboard").glob("events.out.tfevents.*"))) == 1


@pytest.mark.slow
def test_two_process_run_resumes_from_a_mid_epoch_checkpoint(single_and_two_processes, tmp_path):
    """Killed after step 15 (mid second epoch): resumed with 2 processes, it ends with the
    weights of the uninterrupted 2-process run."""
    _, _, two = single_and_two_processes
    resumed = tmp_path / "resumed"
    shutil.copytree(two, resumed)
    for later in ("step-0000020", "step-0000025", "step-0000026", "last", "best"):
        shutil.rmtree(resumed / "checkpoints" / later, ignore_errors=True)
    (resumed / "metrics.json").unlink()
    state = torch.load(
        resumed / "checkpoints" / "step-0000015" / "training_state.pt", weights_only=True
    )
    assert state["world_size"] == 2 and len(state["rng_ranks"]) == 2
    run_processes(2, RECIPE + [f"data.batch_size={PER_PROCESS_BATCH}", "resume=auto"], resumed)
    finished, uninterrupted = weights(resumed), weights(two)
    for name in uninterrupted:
        torch.testing.assert_close(finished[name], uninterrupted[name], rtol=0, atol=0)
    metrics = json.loads((resumed / "metrics.json").read_text())
    assert metrics["steps"] == 26


@pytest.mark.slow
def test_resuming_with_another_number_of_processes_is_refused(single_and_two_processes):
    from bert_pos.runtime.checkpoint import CheckpointError
    from bert_pos.train import train

    _, _, two = single_and_two_processes
    cfg = compose_config(
        RECIPE
        + [f"data.batch_size={PER_PROCESS_BATCH}", f"resume={two / 'checkpoints' / 'step-0000015'}"]
    )
    with pytest.raises(CheckpointError, match="trained with 2 processes, resumed with 1"):
        train(cfg, two.parent / "refused")


@pytest.mark.parametrize("group_by_length", [True, False])
def test_shards_together_hold_the_single_process_batches(group_by_length):
    lengths = [
        int(x) for x in torch.randint(3, 60, (203,), generator=torch.Generator().manual_seed(0))
    ]
    single = ShuffledBatchSampler(lengths, 16, seed=3, group_by_length=group_by_length)
    shards = [
        ShuffledBatchSampler(
            lengths, 8, seed=3, group_by_length=group_by_length, num_shards=2, shard=r
        )
        for r in range(2)
    ]
    for epoch in (0, 1):
        for sampler in [single, *shards]:
            sampler.set_epoch(epoch)
        batches, parts = list(single), [list(shard) for shard in shards]
        assert len(batches) == len(parts[0]) == len(parts[1]) == len(single) == 13
        for batch, part_0, part_1 in zip(batches, *parts, strict=True):
            assert part_0 + part_1 == batch  # contiguous halves, in order
        assert sorted(i for b in batches for i in b) == list(range(203))


def test_an_empty_share_becomes_a_blank_that_adds_no_labels():
    lengths = [5] * 17  # global batch 4 x 4 processes: the last batch holds 1 example
    shards = [ShuffledBatchSampler(lengths, 4, 0, False, num_shards=4, shard=r) for r in range(4)]
    last = [list(shard)[-1] for shard in shards]
    real = [i for part in last for i in part if i < 17]
    blanks = [i for part in last for i in part if i >= 17]
    assert len(real) == 1 and len(blanks) == 3 and all(part for part in last)
    examples = TrainExamples([{"input_ids": [1, 2], "labels": [3, -100], "tags": [3]}] * 17)
    blank = examples[blanks[0]]
    assert blank["input_ids"] == [1, 2] and blank["labels"] == [-100, -100]
    assert blank["tags"] == [-100] and examples[0]["labels"] == [3, -100]  # original untouched


def test_evaluation_shards_cover_every_batch_once():
    lengths = list(range(1, 62))
    whole = length_sorted_batches(lengths, 16)
    shards = [length_sorted_batches(lengths, 16, 2, r) for r in range(2)]
    assert sorted(map(tuple, whole)) == sorted(map(tuple, shards[0] + shards[1]))
    assert [len(shard) for shard in shards] == [2, 2]


def test_a_multi_task_slurm_job_from_the_submitit_launcher_gets_torchruns_variables(
    monkeypatch,
):
    pytest.importorskip("submitit")
    from bert_pos.runtime.distributed import environment_from_launcher

    for name in (
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "MASTER_ADDR",
        "MASTER_PORT",
    ):
        monkeypatch.setenv(name, "")  # so that monkeypatch removes what the export sets
        monkeypatch.delenv(name)
    slurm = {
        "SUBMITIT_EXECUTOR": "slurm",
        "SUBMITIT_FOLDER": "/tmp/submitit",
        "SLURM_NTASKS": "16",
        "SLURM_PROCID": "9",
        "SLURM_LOCALID": "1",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NODELIST": "gpu[07-08]",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_NODEID": "1",
    }
    for name, value in slurm.items():
        monkeypatch.setenv(name, value)
    environment_from_launcher()
    assert (os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["LOCAL_RANK"]) == (
        "9",
        "16",
        "1",
    )
    assert os.environ["MASTER_ADDR"] == "gpu07"  # the first node hosts the rendezvous
    assert int(os.environ["MASTER_PORT"]) > 0


def test_a_single_task_job_stays_one_process(monkeypatch):
    from bert_pos.runtime.distributed import Distributed, setup

    for name in ("RANK", "WORLD_SIZE", "SUBMITIT_EXECUTOR"):
        monkeypatch.delenv(name, raising=False)
    assert setup("cpu") == Distributed(rank=0, world_size=1, local_rank=0)


def _fail_on_rank_0(rank: int, world_size: int, port: int, block: str, out_dir: str) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    from bert_pos.runtime import distributed

    distributed.setup("cpu")
    outcome = "passed"
    try:
        context = distributed.main_first() if block == "main_first" else distributed.together("x")
        with context:
            if rank == 0:
                raise ValueError("rank 0 broke")
    except Exception as err:
        outcome = type(err).__name__
    finally:
        Path(out_dir, f"rank{rank}").write_text(outcome)
        distributed.teardown()


@pytest.mark.slow
@pytest.mark.parametrize("block", ["main_first", "together"])
def test_a_failure_on_rank_0_releases_the_other_ranks(tmp_path, block):
    """Rank 0 raising inside main_first (data preparation) or a checkpoint save must stop the
    others with PeerFailed, not leave them at a barrier until the job's time limit."""
    context = mp.start_processes(
        _fail_on_rank_0,
        args=(2, free_port(), block, str(tmp_path)),
        nprocs=2,
        start_method="spawn",
        join=False,
    )
    deadline = time.monotonic() + 60
    while not context.join(timeout=1) and time.monotonic() < deadline:
        pass
    assert (tmp_path / "rank0").read_text() == "ValueError"
    assert (tmp_path / "rank1").read_text() == "PeerFailed"


def test_each_rank_writes_its_own_error_file(tmp_path):
    from bert_pos.runtime.distributed import Distributed
    from bert_pos.train import failed_marker_of

    markers = {failed_marker_of(tmp_path, Distributed(rank, 4, rank)) for rank in range(4)}
    assert len(markers) == 4 and tmp_path / "error.txt" in markers
