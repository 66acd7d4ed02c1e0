"""What a new user meets first: typos answered with the closest keys, no folders for runs
that never started, a progress line at once and evaluations in one line, quiet model
loading, a `--help` that lists only what one can choose, a test score by default."""

import logging
import subprocess
import sys

import pytest

from bert_pos.config import TrainConfig
from bert_pos.runtime.keys import closest_keys, schema_keys, unknown_override_keys
from tests.helpers import TINY_BERT, TINY_DEMO_OVERRIDES, compose_config, run_command

GROUPS = {"data", "model", "optim", "eval", "experiment", "sweep", "launcher"}


def test_a_misspelt_key_gets_the_closest_existing_keys():
    keys, _ = schema_keys(TrainConfig)
    assert closest_keys("max_step", keys) == ["max_steps"]
    assert closest_keys("lr", keys) == ["optim.lr"]  # by its last part
    assert closest_keys("optim.lrr", keys) == ["optim.lr"]
    assert closest_keys("data.batchsize", keys)[0] == "data.batch_size"
    assert closest_keys("zzzz", keys) == []
    assert closest_keys("learning_rate", keys) == ["optim.lr"]  # the Trainer's names
    assert closest_keys("num_train_epochs", keys)[0] == "epochs"


def test_only_keys_that_are_no_setting_are_flagged():
    arguments = [
        "-m",
        "--cfg",
        "job",
        "+experiment=demo",  # a group, with or without +
        "model=minilm",
        "optim.lr=1e-3",
        "model.random_init.hidden_size=64",  # dict-typed: any key
        "hydra.run.dir=/tmp/x",
        "~data.labels",
        "max_step=3",
        "+optim.lrr=1",
    ]
    assert unknown_override_keys(arguments, TrainConfig, GROUPS) == ["max_step", "optim.lrr"]


@pytest.mark.slow
@pytest.mark.parametrize("typo", ["max_step=30", "+max_step=30"])
def test_a_typo_stops_in_one_line_with_a_suggestion_and_leaves_no_folder(tmp_path, typo):
    result = subprocess.run(
        [sys.executable, "-m", "bert_pos.train", "+experiment=demo", typo],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, lines
    assert "max_step: not a setting of bert_pos.train; did you mean max_steps?" in lines[0]
    assert "+max_step" not in lines[0]  # never the advice to add the typo
    assert list(tmp_path.iterdir()) == []  # no run folder, no experiments/


@pytest.mark.slow
def test_every_command_answers_a_typo_with_the_closest_key():
    evaluate = run_command("evaluate", "run_dir=/nonexistent", "chekpoint=last")
    assert evaluate.returncode == 1
    assert "chekpoint: not a setting of bert_pos.evaluate; did you mean checkpoint?" in (
        evaluate.stderr
    )
    bench = run_command("bench", "+experiment=demo", "seed=1", "trainer.precison=fp32")
    assert bench.returncode == 1
    assert "did you mean trainer.precision?" in bench.stderr


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "bench"])
def test_a_run_that_never_started_leaves_no_folder(tmp_path, command):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            f"bert_pos.{command}",
            "+experiment=demo",
            f"data.dir={tmp_path}/none",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert f"invalid config: data.dir={tmp_path}/none: no such folder" in output  # one line
    assert [p.name for p in tmp_path.glob("experiments/*/*")] == []


@pytest.mark.slow
def test_progress_comes_at_once_and_an_evaluation_is_one_plain_line(tmp_path):
    result = run_command(
        "train",
        *TINY_DEMO_OVERRIDES,
        "epochs=1",
        "eval.test_at_end=false",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log_text = (tmp_path / "train.log").read_text()
    console = result.stdout + result.stderr
    progress = [line for line in log_text.splitlines() if "bert_pos.training.progress" in line]
    assert progress[0].split(" - ", 1)[1].startswith("step 1/38, epoch 0.03, loss ")
    (evaluation,) = [line for line in progress if "validation at step" in line]
    assert evaluation.split(" - ", 1)[1].startswith("validation at step 38/38 (epoch 1.00): loss ")
    assert " F1 " in evaluation and evaluation.endswith(" s")
    assert "\x1b[" not in log_text and "\x1b[" not in console  # no terminal colour codes


def test_loading_an_encoder_says_only_what_matters(tmp_path, caplog, capfd):
    from transformers import BertConfig, BertModel

    from bert_pos.modeling.encoders import build_encoder

    config = BertConfig(vocab_size=50, **TINY_BERT)
    BertModel(config).save_pretrained(tmp_path / "full")  # with a pooler, as checkpoints ship
    with caplog.at_level(logging.WARNING):
        build_encoder(config, str(tmp_path / "full"))
    assert caplog.records == []  # an unused pooler is expected for a token classifier
    output = capfd.readouterr()
    assert "LOAD REPORT" not in output.out + output.err and "\x1b[" not in output.err

    partial = BertModel(config, add_pooling_layer=False)
    state = {k: v for k, v in partial.state_dict().items() if "layer.1." not in k}
    partial.save_pretrained(tmp_path / "partial", state_dict=state)
    with caplog.at_level(logging.WARNING):
        build_encoder(config, str(tmp_path / "partial"))
    (record,) = caplog.records
    assert "not in the checkpoint, initialised at random: 16 (" in record.getMessage()
    assert "\n" not in record.getMessage()


@pytest.mark.slow
def test_help_lists_only_presets_one_can_choose():
    result = run_command("train", "--help")
    groups = result.stdout.split("== Config groups")[1].split("== Config ==")[0]
    assert "model: bert_base_cased," in groups and "common" not in groups
    config = result.stdout.split("== Config ==")[1]
    assert "experiment_name: default" in config and "seed: 42" in config
    bench = run_command("bench", "+experiment=demo", "--help")  # the arguments' config
    assert "experiment_name: demo" in bench.stdout and "seeds: null" in bench.stdout


def test_a_run_scores_its_best_checkpoint_on_test_by_default():
    assert compose_config([]).eval.test_at_end is True
    assert compose_config(["data.dir=/x"]).eval.test_at_end is True  # "Your dataset"


def test_the_readme_pipeline_snippet_loads_the_model_once():
    import ast
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    (snippet,) = [block for block in blocks if "pipeline(" in block]
    tree = ast.parse(snippet)
    assigned = {
        t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) for t in node.targets
    }
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    assert assigned <= used, f"assigned and never used: {assigned - used}"
    assert snippet.count("/model") == 1  # one load, by the pipeline


@pytest.mark.slow
def test_compare_and_report_answer_a_misspelt_option_with_the_closest():
    compare = run_command("compare", "a.txt", "b.txt", "unti=document")
    assert compare.returncode == 1
    assert "unti: not an option of bert_pos.compare; did you mean unit?" in compare.stderr
    report = run_command("report", "/nonexistent", "--unti", "document")
    assert report.returncode == 1
    assert "--unti: not an option of bert_pos.report; did you mean --unit?" in report.stderr
    assert "document" not in report.stderr.split("did you mean")[1]  # the flag's value is no option
