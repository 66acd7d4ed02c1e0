"""The demo recipe, pinned: losses, evaluations and final weights of a short run, exactly.

Any change that is meant to keep the BERT path's numbers (a refactoring, a new option that
is off by default) must leave this test passing unchanged. The run happens in a child process
whose floating point does not depend on the CPU: ATen's portable kernels
(`ATEN_CPU_CAPABILITY=default`), MKL's conditional numerical reproducibility
(`MKL_CBWR=COMPATIBLE`), oneDNN without AVX, one thread. So AVX2 and AVX512 machines compute
the same bits.

The pin (tests/regression_pin.json) holds the measured numbers and the versions they were
measured with: every package of requirements-lock.txt. With other versions installed the test
skips, saying which differ, since kernels, initialisation and tokenization may change; under
`make test` (`pytest --require-pin`, what CI runs) that skip is a failure instead, so the pin
never goes quiet. After `make lock` moved a version, install the lock and re-pin:

    python -m tests.test_regression --repin     # runs the recipe, shows what moved, rewrites the pin
    python -m tests.test_regression --versions  # installed packages that differ from the pin
    python -m tests.test_regression FOLDER      # runs the recipe into FOLDER, prints what it measured
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The demo recipe (conf/experiment/demo.yaml), shortened: a smaller corpus and model, 3 epochs
# of 38 steps, an evaluation every 25 steps and at each epoch end, test at the end.
RECIPE = [
    "+experiment=demo",
    "data.demo_sentences={train: 600, validation: 80, test: 80}",
    "data.batch_size=16",
    "model.random_init.hidden_size=64",
    "model.random_init.intermediate_size=128",
    "epochs=3",
    "eval.every_n_steps=25",
    "log_every_n_steps=1",
    "device=cpu",
    "precision=fp32",
    "data.cache_dir=null",
]

PIN = ROOT / "tests" / "regression_pin.json"
LOCK = ROOT / "requirements-lock.txt"
REPIN_HINT = (
    "install the lock (make install) or, after checking the numbers, re-pin "
    "(python -m tests.test_regression --repin)"
)

REPRODUCIBLE_CPU = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def tensor_digest(path: Path) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of every tensor of a safetensors file
    (its metadata, such as the step, is left out)."""
    import torch
    from safetensors.torch import load_file

    digest = hashlib.sha256()
    for name, tensor in sorted(load_file(path).items()):
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}\n".encode())
        digest.update(tensor.contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def run_pinned_recipe(run_dir: Path) -> dict:
    """Train the recipe into `run_dir` and return what is pinned."""
    import torch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from bert_pos.train import train
    from tests.helpers import compose_config

    torch.set_num_threads(1)
    metrics = train(compose_config(RECIPE), run_dir)
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    losses = [event.value for event in events.Scalars("train/loss")][:20]
    return {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "first_20_losses": losses,
        "evaluations": metrics["epochs"],
        "best": metrics["best"],
        "test": {k: v for k, v in metrics["test"].items() if k != "per_type"},
        "last_weights": tensor_digest(run_dir / "checkpoints" / "last" / "model.safetensors"),
        "exported_weights": tensor_digest(run_dir / "model" / "model.safetensors"),
    }


def measure_in_child(run_dir: Path) -> dict:
    environment = {**os.environ, **REPRODUCIBLE_CPU}
    completed = subprocess.run(
        [sys.executable, "-m", "tests.test_regression", str(run_dir)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def locked_versions(lock: Path = LOCK) -> dict[str, str]:
    """{package: version} of every `name==version` line of a uv/pip-compile lock file."""
    pins = (
        re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        for line in lock.read_text().splitlines()
    )
    return {normalized(pin[1]): pin[2] for pin in pins if pin}


def normalized(name: str) -> str:
    """A distribution's canonical name (PEP 503): PyYAML and pyyaml, typing_extensions and
    typing-extensions are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_version(name: str) -> str | None:
    """The installed version without a local label (torch 2.13.0+cpu is torch 2.13.0)."""
    try:
        return metadata.version(name).split("+")[0]
    except metadata.PackageNotFoundError:
        return None


def version_mismatches(versions: dict[str, str]) -> dict[str, tuple[str, str | None]]:
    """{package: (pinned, installed)} for each pinned package installed at another version."""
    installed = {name: installed_version(name) for name in versions}
    return {
        name: (versions[name], installed[name])
        for name in versions
        if installed[name] != versions[name]
    }


def describe(mismatches: dict) -> str:
    return ", ".join(
        f"{name} pinned {pinned}, installed {installed or 'none'}"
        for name, (pinned, installed) in sorted(mismatches.items())
    )


def test_pin_is_for_the_lock():
    """A lock moved by `make lock` without a re-pin fails here, before anything trains."""
    pinned = json.loads(PIN.read_text())["versions"]
    locked = locked_versions()
    moved = {
        name: (pinned.get(name), locked.get(name))
        for name in pinned.keys() | locked.keys()
        if pinned.get(name) != locked.get(name)
    }
    assert not moved, (
        "the pin was measured with other versions than requirements-lock.txt "
        "holds: "
        + ", ".join(f"{name} pinned {a}, locked {b}" for name, (a, b) in sorted(moved.items()))
        + "; "
        + REPIN_HINT
    )


def test_locked_versions_reads_uv_and_pip_compile_lines(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text(
        "# via make lock\nPyYAML==6.0.4\n    # via hydra\ntyping_extensions==4.16.0 ; "
        "python_version < '3.13'\ntorch==2.13.0\n-e .\n"
    )
    assert locked_versions(lock) == {
        "pyyaml": "6.0.4",
        "typing-extensions": "4.16.0",
        "torch": "2.13.0",
    }
    assert installed_version("no-such-package-anywhere") is None


@pytest.mark.slow
def test_demo_recipe_is_pinned(tmp_path, request):
    pin = json.loads(PIN.read_text())
    mismatches = version_mismatches(pin["versions"])
    if mismatches:
        message = f"the pin holds for the locked versions: {describe(mismatches)}"
        if request.config.getoption("--require-pin"):
            pytest.fail(f"{message}. {REPIN_HINT}", pytrace=False)
        pytest.skip(message)
    measured = measure_in_child(tmp_path / "run")
    expected = pin["measured"]
    assert measured["cpu_capability"] == "DEFAULT", "the child did not run the portable kernels"
    assert measured["first_20_losses"] == expected["first_20_losses"]
    assert measured["evaluations"] == expected["evaluations"]
    assert measured["best"] == expected["best"]
    assert measured["test"] == expected["test"]
    assert measured["last_weights"] == expected["last_weights"]
    assert measured["exported_weights"] == expected["exported_weights"]


def repin() -> None:
    """Run the recipe with the locked versions installed, print what moved, rewrite the pin."""
    locked = locked_versions()
    mismatches = version_mismatches(locked)
    if mismatches:
        sys.exit(f"install the lock first (make install): {describe(mismatches)}")
    pin = json.loads(PIN.read_text())
    with tempfile.TemporaryDirectory() as folder:
        measured = measure_in_child(Path(folder) / "run")
    measured.pop("cpu_capability")
    moved = [key for key in pin["measured"] if measured[key] != pin["measured"][key]]
    print("numbers moved: " + ", ".join(moved) if moved else "numbers unchanged")
    for key in moved:
        print(f"  {key}\n    was {pin['measured'][key]}\n    now {measured[key]}")
    PIN.write_text(json.dumps({"versions": locked, "measured": measured}, indent=2) + "\n")
    print(f"{PIN.relative_to(ROOT)} re-pinned for {len(locked)} locked packages")


if __name__ == "__main__":
    if sys.argv[1] == "--repin":
        repin()
    elif sys.argv[1] == "--versions":
        print(
            describe(version_mismatches(json.loads(PIN.read_text())["versions"]))
            or "the pinned versions are installed"
        )
    else:
        print(json.dumps(run_pinned_recipe(Path(sys.argv[1]))))
