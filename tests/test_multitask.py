"""Several tag layers on one encoder (data.tasks): one pass, a head per task, each task scored,
exported, predicted and resumed as a one-task run is."""

import json
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from bert_pos.data.conllu import universal_features
from bert_pos.scoring.metrics import token_accuracy
from tests.helpers import REAL_DATA, ROOT, TINY_DEMO_OVERRIDES, compose_config, run_command

SMALL = TINY_DEMO_OVERRIDES + [
    "data.demo_sentences={train: 200, validation: 40, test: 40}",
    "epochs=1",
]
TWO_TASKS = ["data.tasks=[pos,ner]", "model.task_heads={ner: crf}"]


def train_run(tmp_path, overrides, name="run"):
    from bert_pos.train import train

    cfg = compose_config(overrides)
    run_dir = tmp_path / name
    metrics = train(cfg, run_dir)
    (run_dir / ".hydra").mkdir(exist_ok=True)  # as the command saves it
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    return run_dir, metrics


@pytest.fixture(scope="module")
def two_task_run(tmp_path_factory):
    return train_run(tmp_path_factory.mktemp("two_tasks"), SMALL + TWO_TASKS)


def test_a_one_element_task_list_is_the_one_task_run(tmp_path):
    _, alone = train_run(tmp_path, SMALL + ["data.task=pos"], "alone")
    _, listed = train_run(tmp_path, SMALL + ["data.tasks=[pos]"], "listed")
    assert listed["epochs"] == alone["epochs"] and listed["test"] == alone["test"]


def test_each_task_is_scored_selected_and_written(two_task_run):
    run_dir, metrics = two_task_run
    assert metrics["tasks"] == ["pos", "ner"] and metrics["selection_metric"] == "val/pos/accuracy"
    row = metrics["epochs"][-1]
    assert {"val/pos/accuracy", "val/ner/f1", "val/ner/precision", "val/loss"} <= row.keys()
    assert row["val/loss"] == pytest.approx(row["val/pos/loss"] + row["val/ner/loss"])
    for split in ("validation", "test"):
        recorded = json.loads((run_dir / "eval" / split / "metrics.json").read_text())
        assert set(recorded["bootstrap"]) == {"pos", "ner"}
        for task in ("pos", "ner"):
            folder = run_dir / "eval" / split / task
            lines = [line.split() for line in (folder / "predictions.txt").read_text().splitlines()]
            rows = [fields for fields in lines if len(fields) == 3 and fields[0] != "-DOCSTART-"]
            gold, predicted = [[r[1] for r in rows]], [[r[2] for r in rows]]
            if task == "pos":  # the written predictions give the recorded score
                assert token_accuracy(gold, predicted) == pytest.approx(recorded["pos/accuracy"])
            assert (folder / "confusion_matrix.png").is_file()
    assert (run_dir / "eval" / "test" / "ner" / "errors.md").is_file()  # spans: error tables


def test_each_task_exports_as_a_standard_token_classification_model(two_task_run):
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    from bert_pos.inference.loading import load_trained

    run_dir, _ = two_task_run
    trained = load_trained(run_dir)
    assert trained.task_names == ["pos", "ner"]
    words = ["Sator", "said", "on", "Monday", "that", "Isvello", "Motors", "would", "open", "."]
    for index, task in enumerate(["pos", "ner"]):
        folder = run_dir / "model" / task
        tokenizer = AutoTokenizer.from_pretrained(folder)
        theirs = AutoModelForTokenClassification.from_pretrained(folder).eval()
        assert [theirs.config.id2label[i] for i in range(theirs.config.num_labels)] == (
            trained.model.task_label_names[index]
        )
        encoded = tokenizer(words, is_split_into_words=True, return_tensors="pt")
        with torch.no_grad():
            expected = trained.model(
                encoded["input_ids"], encoded["attention_mask"], all_tasks=True
            )[index]
            got = theirs(**encoded).logits
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        tagged = pipeline("token-classification", model=str(folder))(" ".join(words))
        assert isinstance(tagged, list)
    # the whole tagger is bert_pos's only: no model.safetensors for the Hugging Face classes
    assert not (run_dir / "model" / "model.safetensors").exists()


def test_predict_tags_every_task_in_one_pass(two_task_run, tmp_path):
    run_dir, _ = two_task_run
    text = tmp_path / "in.txt"
    text.write_text("Sator said on Monday that Isvello Motors would open .\n")
    for fmt in ("tsv", "jsonl"):
        out = tmp_path / f"out.{fmt}"
        result = run_command(
            "predict", f"model_dir={run_dir}", f"input={text}", f"format={fmt}", f"output={out}"
        )
        assert result.returncode == 0, result.stderr[-2000:]
        if fmt == "tsv":
            rows = [line.split("\t") for line in out.read_text().splitlines() if line]
            assert len(rows) == 10 and all(len(row) == 3 for row in rows)  # word, pos, ner
        else:
            record = json.loads(out.read_text())
            assert set(record["tags"]) == {"pos", "ner"} and set(record["entities"]) == {"ner"}


def test_evaluate_and_compare_take_a_task(two_task_run):
    run_dir, metrics = two_task_run
    result = run_command("evaluate", f"run_dir={run_dir}", "split=test")
    assert result.returncode == 0, result.stderr[-2000:]
    scored = json.loads((run_dir / "eval" / "test-best" / "metrics.json").read_text())
    assert scored["ner/f1"] == metrics["test"]["ner/f1"]
    compared = run_command("compare", str(run_dir), str(run_dir / "eval" / "test-best"), "task=ner")
    assert compared.returncode == 0 and "+0.00" in compared.stdout
    unnamed = run_command("compare", str(run_dir), str(run_dir / "eval" / "test-best"))
    assert unnamed.returncode == 1
    assert "several tasks (ner, pos); name one with task=NAME" in unnamed.stderr


def test_settings_that_serve_one_task_name_the_key():
    from bert_pos.config import ConfigError, check_config
    from bert_pos.data.tags import DataFormatError
    from bert_pos.data.tasks import selection_key, task_data_configs

    cfg = compose_config(SMALL + ["data.tasks=[pos,ner]", "data.labels=[O,B-X,I-X]"])
    with pytest.raises(DataFormatError, match="data.labels applies to one task"):
        task_data_configs(cfg.data)
    with pytest.raises(ConfigError, match=r"data.task_weights: chunk is not among"):
        check_config(
            compose_config(SMALL + ["data.tasks=[pos,ner]", "data.task_weights={chunk: 2}"])
        )
    from bert_pos.data.tasks import Task

    tasks = [Task("pos", ["NN", "VB"]), Task("ner", ["O", "B-X", "I-X"], key=".ner")]
    assert selection_key(tasks, None) == "pos/accuracy"
    assert selection_key(tasks, "ner/f1") == "ner/f1"
    with pytest.raises(DataFormatError, match="eval.select=f1: expected one of pos/accuracy"):
        selection_key(tasks, "f1")


def test_windows_and_document_context_carry_every_tasks_labels(tokenizer):
    from datasets import Dataset, DatasetDict

    from bert_pos.data.encoding import tokenize_splits

    words = [f"w{i}" for i in range(30)]
    first = [i % 3 for i in range(30)]
    second = [(i + 1) % 2 for i in range(30)]
    splits = DatasetDict(
        {
            "validation": Dataset.from_dict(
                {
                    "tokens": [words, words[:5]],
                    "tags": [first, first[:5]],
                    "tags.ner": [second, second[:5]],
                    "document_id": [0, 0],
                    "line": [1, 40],
                }
            )
        }
    )
    continuation = [0, 1, 2]
    encoded = tokenize_splits(splits, tokenizer, "first", continuation, 16, 64, {".ner": [0, 1]})
    examples = encoded["validation"]
    assert examples.num_rows > 2  # the long sentence is windowed
    for key, gold in (("", first), (".ner", second)):
        tags = {}
        for example in examples:
            for w, tag in enumerate(example["tags" + key]):
                tags.setdefault((example["sentence"], example["first_word"] + w), []).append(tag)
            labelled = [label for label in example["labels" + key] if label != -100]
            assert labelled == example["tags" + key]  # one label per kept word, context none
            assert len(example["labels" + key]) == len(example["input_ids"])
        assert [tags[(0, w)] for w in range(30)] == [[t] for t in gold]


@pytest.mark.slow
def test_padding_free_and_document_context_train_several_tasks_alike(tmp_path):
    common = SMALL + TWO_TASKS + ["data.context=document", "data.context_subwords=64"]
    _, padded = train_run(tmp_path, common + ["model.padding_free=false"], "padded")
    _, packed = train_run(tmp_path, common + ["model.padding_free=true"], "packed")
    for ours, theirs in zip(packed["epochs"], padded["epochs"], strict=True):
        for key in ("val/loss", "val/pos/accuracy", "val/ner/f1"):
            assert ours[key] == pytest.approx(theirs[key], abs=2e-3), key


@pytest.mark.slow
def test_a_killed_multi_task_run_resumes_bit_exactly(tmp_path):
    from bert_pos.train import train
    from tests.test_resume import OVERRIDES, kill_at

    overrides = OVERRIDES + TWO_TASKS
    reference = train(compose_config(overrides), tmp_path / "reference")
    kill_at(tmp_path / "run", 5, overrides)
    resumed = train(compose_config(overrides + ["resume=auto"]), tmp_path / "run")
    assert resumed["epochs"] == reference["epochs"] and resumed["best"] == reference["best"]
    ours = load_file(tmp_path / "run" / "checkpoints" / "last" / "model.safetensors")
    theirs = load_file(tmp_path / "reference" / "checkpoints" / "last" / "model.safetensors")
    assert any(key.startswith("task_heads.ner.") for key in ours)  # the second task's CRF
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


TREEBANK_OVERRIDES = [o for o in SMALL if not o.startswith("data.demo_sentences")]


@pytest.mark.slow
def test_a_treebank_run_of_three_tasks_writes_every_column_scored_as_metrics_say(tmp_path):
    from bert_pos.data.conllu import read_conllu
    from tests.test_conllu import GOOD

    treebank = tmp_path / "treebank"
    treebank.mkdir()
    for split in ("train", "dev", "test"):
        (treebank / f"xx_tb-ud-{split}.conllu").write_text(GOOD * 20)
    run_dir, metrics = train_run(
        tmp_path,
        TREEBANK_OVERRIDES
        + ["data=ud", f"data.dir={treebank}", "data.tasks=[upos,xpos,feats]", "epochs=2"],
    )
    written = run_dir / "eval" / "test" / "predictions.conllu"
    source = treebank / "xx_tb-ud-test.conllu"
    words_right = None
    for name, column in (("upos", 3), ("xpos", 4), ("feats", 5)):
        view = universal_features if name == "feats" else (lambda label: label)
        gold = [[view(t) for t in s.labels] for s in read_conllu(source, column, None)]
        ours = [[view(t) for t in s.labels] for s in read_conllu(written, column, None)]
        assert token_accuracy(gold, ours) == pytest.approx(metrics["test"][f"{name}/accuracy"])
        right = [g == p for gs, ps in zip(gold, ours) for g, p in zip(gs, ps)]
        words_right = (
            right if words_right is None else [a and b for a, b in zip(words_right, right)]
        )
    all_tags = sum(words_right) / len(words_right)
    assert all_tags == pytest.approx(metrics["test"]["alltags/accuracy"])
    # every byte outside the three predicted columns is the input's
    for ours, theirs in zip(written.read_text().split("\n"), source.read_text().split("\n")):
        fields, expected = ours.split("\t"), theirs.split("\t")
        assert fields[:3] + fields[6:] == expected[:3] + expected[6:]
    # predict writes all three columns from CoNLL-U input
    out = tmp_path / "predicted.conllu"
    result = run_command(
        "predict",
        f"model_dir={run_dir}",
        f"input={source}",
        "input_format=conllu",
        "format=conllu",
        f"output={out}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.read_text() == written.read_text()


@pytest.mark.real_data
def test_every_task_and_alltags_equal_the_official_scorer_on_lines_dev(tmp_path):
    """Three columns predicted at once (every 5th word of every 3rd sentence wrong in one of
    them): UPOS, XPOS, UFeats and AllTags as bert_pos scores them equal the CoNLL 2018
    script's, to every printed digit."""
    from bert_pos.data.conllu import read_conllu, write_conllu
    from bert_pos.data.tasks import Task
    from bert_pos.scoring.scorer import all_tags_accuracy
    from tests.test_conllu import official_scores

    dev = REAL_DATA / "ud_english_lines" / "en_lines-ud-dev.conllu"
    script = REAL_DATA.parent / "tools" / "conll18_ud_eval.py"
    if not dev.is_file() or not script.is_file():
        pytest.skip(f"no UD English-LinES dev file or scorer under {REAL_DATA.parent}")
    columns = {"upos": 3, "xpos": 4, "feats": 5}
    wrong = {"upos": "X", "xpos": "NN", "feats": "_"}
    tasks = [Task(name, [], universal_features if name == "feats" else None) for name in columns]
    golds, predicted = [], []
    for offset, (name, column) in enumerate(columns.items()):
        sentences = read_conllu(dev, column, None)
        golds.append([list(s.labels) for s in sentences])
        predicted.append(
            [
                [
                    wrong[name] if n % 3 == 0 and (i + offset) % 5 == 0 else t
                    for i, t in enumerate(s.labels)
                ]
                for n, s in enumerate(sentences)
            ]
        )
    lines = [s.line for s in read_conllu(dev, 3, None)]
    system = tmp_path / "system.conllu"
    write_conllu(
        dev, system, list(columns.values()), dict(zip(lines, zip(*predicted), strict=True))
    )
    official = official_scores(dev, system)
    for task, gold, ours in zip(tasks, golds, predicted, strict=True):
        view = task.view or (lambda label: label)
        score = token_accuracy(
            [[view(t) for t in s] for s in gold], [[view(t) for t in s] for s in ours]
        )
        name = {"upos": "UPOS", "xpos": "XPOS", "feats": "UFeats"}[task.name]
        assert f"{100 * score:.2f}" == official[name] and score < 1.0, name
    all_tags = all_tags_accuracy(tasks, golds, predicted)
    assert (
        f"{100 * all_tags:.2f}" == official["AllTags"]
        and all_tags < min(float(official[n]) for n in ("UPOS", "XPOS", "UFeats")) / 100
    )


def test_the_multitask_module_reads_no_heavy_library():
    probe = (
        "import sys, bert_pos.data.tasks; print('torch' in sys.modules, 'datasets' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.strip() == "False False"


@pytest.mark.slow
def test_two_processes_train_and_score_several_tasks_as_one(tmp_path):
    from tests.test_distributed import RECIPE, one_and_two_processes

    recipe = RECIPE + TWO_TASKS + ["epochs=1"]
    single, two = one_and_two_processes(recipe, tmp_path)
    for ours, theirs in zip(single["epochs"], two["epochs"], strict=True):
        assert theirs["val/loss"] == pytest.approx(ours["val/loss"], rel=1e-4)
        for key in ("val/pos/accuracy", "val/ner/f1", "val/ner/precision"):
            assert theirs[key] == ours[key], key
    for task in ("pos", "ner"):
        written = [
            (tmp_path / run / "eval" / "validation" / task / "predictions.txt").read_text()
            for run in ("one", "two")
        ]
        assert written[0] == written[1], task
