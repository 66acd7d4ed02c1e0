"""`bert_pos.predict` on corpora: memory stays flat as the input grows, raw text offsets map
back to the exact characters, documents and paragraphs reach the output, and the processes
of torchrun or of a submitit job (SLURM's launcher) write what one process writes."""

import json
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from tests.helpers import ROOT, TINY_DEMO_OVERRIDES, compose_config

PEAK = (
    "import resource, runpy, sys\n"
    "sys.argv = ['bert_pos.predict'] + sys.argv[1:]\n"
    "try:\n"
    "    runpy.run_module('bert_pos.predict', run_name='__main__')\n"
    "finally:\n"
    "    print('peak_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from bert_pos.train import train

    run_dir = tmp_path_factory.mktemp("predict_stream") / "run"
    cfg = compose_config(TINY_DEMO_OVERRIDES + ["epochs=1", "device=cpu"])
    train(cfg, run_dir)
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    lines = [
        " ".join(line.split()[0] for line in block.splitlines())
        for block in (run_dir / "demo_corpus" / "train.txt").read_text().split("\n\n")
        if block.strip() and not block.startswith("-DOCSTART-")
    ]
    return run_dir, lines


def predict_peak_kb(run_dir, text_file, output, *overrides, threads: int = 1) -> int:
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    result = subprocess.run(
        [sys.executable, "-c", PEAK, f"model_dir={run_dir}", f"input={text_file}"]
        + [f"output={output}", *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=environment,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return int(result.stderr.rsplit("peak_kb", 1)[1].split()[0])


@pytest.mark.slow
def test_memory_stays_flat_as_the_input_grows_tenfold(demo_run, tmp_path):
    run_dir, lines = demo_run
    peaks = []
    for copies in (4, 40):
        text_file = tmp_path / f"in{copies}.txt"
        text_file.write_text("\n".join(lines * copies) + "\n")  # 2,400 and 24,000 sentences
        output = tmp_path / f"out{copies}.tsv"
        peaks.append(predict_peak_kb(run_dir, text_file, output, "chunk_sentences=500"))
        sentences = output.read_text().count("\n\n")
        assert sentences == len(lines) * copies
    print(f"peak RSS {peaks[0] / 1024:.0f} MB and {peaks[1] / 1024:.0f} MB")
    assert peaks[1] <= peaks[0] * 1.10


@pytest.mark.slow
def test_raw_text_entities_point_at_their_characters(demo_run, tmp_path):
    run_dir, lines = demo_run
    first = lines[0].removesuffix(" .") + "."  # as text writes it: no space before the stop
    text = f"{first} {lines[1]}\n\n  {lines[2]}\n"  # two sentences on a line, a paragraph
    (tmp_path / "in.txt").write_text(text)
    predict_peak_kb(run_dir, tmp_path / "in.txt", tmp_path / "out.jsonl", "format=jsonl")
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    source_lines = text.split("\n")
    assert [(r["line"], r["paragraph"]) for r in records] == [(1, 0), (1, 0), (3, 1)]
    found = 0
    for r in records:
        line = source_lines[r["line"] - 1]
        assert line[r["start"] : r["start"] + len(r["text"])] == r["text"]
        for entity in r.get("entities", []):
            found += 1
            assert r["text"][entity["start"] : entity["end"]] == entity["text"]
            at = r["start"] + entity["start"]
            assert line[at : at + len(entity["text"])] == entity["text"]
    assert found > 0


@pytest.mark.slow
def test_raw_text_documents_and_paragraphs_reach_json_and_tsv_output(demo_run, tmp_path):
    run_dir, lines = demo_run
    text = f"-DOCSTART-\n{lines[0]}\n\n{lines[1]}\n-DOCSTART-\n{lines[2]}\n{lines[3]}\n"
    (tmp_path / "in.txt").write_text(text)
    outputs = {}
    for kind in ("jsonl", "tsv"):
        output = tmp_path / f"out.{kind}"
        overrides = [f"format={kind}"]
        predict_peak_kb(run_dir, tmp_path / "in.txt", output, *overrides)
        outputs[kind] = output.read_text()
    records = [json.loads(line) for line in outputs["jsonl"].splitlines()]
    assert [(r["line"], r["document"], r["paragraph"]) for r in records] == [
        (2, 0, 0),
        (4, 0, 1),
        (6, 1, 2),
        (7, 1, 2),
    ]
    blocks = outputs["tsv"].split("\n\n")
    assert [block.startswith("-DOCSTART-") for block in blocks[:-1]] == [
        True, False, False, True, False, False,
    ]  # fmt: skip


LAUNCHES = {
    "torchrun": [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    + ["-m", "bert_pos.predict"],
    # the SLURM launcher's path (hydra's submitit launcher, a job of several tasks, each a
    # shard) through submitit's local executor, which starts the tasks as SLURM would
    "submitit": [sys.executable, "-m", "bert_pos.predict", "-m", "hydra/launcher=submitit_local"]
    + ["hydra.launcher.tasks_per_node=2", "hydra.launcher.cpus_per_task=1"],
}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", LAUNCHES)
def test_two_processes_write_what_one_process_writes(demo_run, tmp_path, launcher):
    if launcher == "submitit":
        pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    run_dir, lines = demo_run
    text_file = tmp_path / "in.txt"
    text_file.write_text("\n".join(lines[:300]) + "\n")
    common = [f"model_dir={run_dir}", f"input={text_file}", "format=jsonl", "batch_size=16"]
    common += ["device=cpu", f"hydra.sweep.dir={tmp_path / 'job'}"]
    one = tmp_path / "one.jsonl"
    predict_peak_kb(run_dir, text_file, one, *common[2:5])
    two = tmp_path / "two.jsonl"
    result = subprocess.run(
        LAUNCHES[launcher] + common + [f"output={two}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    logs = result.stderr + "".join(p.read_text() for p in (tmp_path / "job").rglob("*_log.err"))
    assert "process 0 of 2 tags" in logs and "process 1 of 2 tags" in logs, logs[-3000:]
    assert two.read_bytes() == one.read_bytes()
    assert len(one.read_text().splitlines()) == 300
