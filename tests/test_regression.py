"""The demo recipe, pinned: losses, evaluations and final weights of a short run, exactly.

Any change that is meant to keep the BERT path's numbers (a refactoring, a new option that
is off by default) must leave this test passing unchanged. The run happens in a child process
whose floating point does not depend on the CPU: ATen's portable kernels
(`ATEN_CPU_CAPABILITY=default`), MKL's conditional numerical reproducibility
(`MKL_CBWR=COMPATIBLE`), oneDNN without AVX, one thread. So AVX2 and AVX512 machines compute
the same bits. The pins hold for the torch and transformers versions named in `PINNED_FOR`;
with other versions the test skips (saying so), since kernels and initialisation may change.

    python -m tests.test_regression    # runs the pinned recipe and prints what it measured
"""

import hashlib
import json
import os
import subprocess
import sys
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

REPRODUCIBLE_CPU = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

PINNED_FOR = {"torch": "2.13.0", "transformers": "5.24.0"}

# Measured once with `python -m tests.test_regression <folder>` (under REPRODUCIBLE_CPU).
EXPECTED = {
    "first_20_losses": [
        2.274087905883789,
        2.331157684326172,
        2.265953302383423,
        2.2569282054901123,
        2.239675760269165,
        2.2001099586486816,
        2.1420769691467285,
        2.125441312789917,
        2.1143946647644043,
        2.010765552520752,
        1.9445338249206543,
        1.6815298795700073,
        1.800296664237976,
        1.749355673789978,
        1.5741368532180786,
        1.5820844173431396,
        1.1170722246170044,
        1.5843195915222168,
        1.4806675910949707,
        0.8781926035881042,
    ],
    "evaluations": [
        {
            "epoch": 0.6579,
            "step": 25,
            "train/loss": 1.7772158549297181,
            "val/accuracy": 0.6763157894736842,
            "val/precision": 0.0,
            "val/recall": 0.0,
            "val/f1": 0.0,
            "val/support": 162,
            "val/loss": 1.2754379071687396,
            "val/LOC/f1": 0.0,
            "val/MISC/f1": 0.0,
            "val/ORG/f1": 0.0,
            "val/PER/f1": 0.0,
        },
        {
            "epoch": 1.0,
            "step": 38,
            "train/loss": 1.5937538596561978,
            "val/accuracy": 0.6763157894736842,
            "val/precision": 0.0,
            "val/recall": 0.0,
            "val/f1": 0.0,
            "val/support": 162,
            "val/loss": 1.0989635116175602,
            "val/LOC/f1": 0.0,
            "val/MISC/f1": 0.0,
            "val/ORG/f1": 0.0,
            "val/PER/f1": 0.0,
        },
        {
            "epoch": 1.3158,
            "step": 50,
            "train/loss": 0.9387993546514553,
            "val/accuracy": 0.7763157894736842,
            "val/precision": 0.13445378151260504,
            "val/recall": 0.09876543209876543,
            "val/f1": 0.11387900355871886,
            "val/support": 162,
            "val/loss": 0.8189274486742522,
            "val/LOC/f1": 0.21621621621621617,
            "val/MISC/f1": 0.0,
            "val/ORG/f1": 0.04444444444444444,
            "val/PER/f1": 0.14814814814814817,
        },
        {
            "epoch": 1.9737,
            "step": 75,
            "train/loss": 0.7562990654314224,
            "val/accuracy": 0.8578947368421053,
            "val/precision": 0.27927927927927926,
            "val/recall": 0.38271604938271603,
            "val/f1": 0.32291666666666663,
            "val/support": 162,
            "val/loss": 0.5223275285018117,
            "val/LOC/f1": 0.45217391304347826,
            "val/MISC/f1": 0.4406779661016949,
            "val/ORG/f1": 0.2803738317757009,
            "val/PER/f1": 0.1553398058252427,
        },
        {
            "epoch": 2.0,
            "step": 76,
            "train/loss": 0.744341196332659,
            "val/accuracy": 0.8605263157894737,
            "val/precision": 0.2927927927927928,
            "val/recall": 0.4012345679012346,
            "val/f1": 0.3385416666666667,
            "val/support": 162,
            "val/loss": 0.5165581577702573,
            "val/LOC/f1": 0.4576271186440678,
            "val/MISC/f1": 0.49180327868852464,
            "val/ORG/f1": 0.2884615384615385,
            "val/PER/f1": 0.15841584158415842,
        },
        {
            "epoch": 2.6316,
            "step": 100,
            "train/loss": 0.46672916372572887,
            "val/accuracy": 0.8618421052631579,
            "val/precision": 0.2857142857142857,
            "val/recall": 0.4074074074074074,
            "val/f1": 0.33587786259541985,
            "val/support": 162,
            "val/loss": 0.4475039017827887,
            "val/LOC/f1": 0.47552447552447547,
            "val/MISC/f1": 0.41935483870967744,
            "val/ORG/f1": 0.2376237623762376,
            "val/PER/f1": 0.16091954022988508,
        },
        {
            "epoch": 3.0,
            "step": 114,
            "train/loss": 0.45399652923856465,
            "val/accuracy": 0.8592105263157894,
            "val/precision": 0.270042194092827,
            "val/recall": 0.3950617283950617,
            "val/f1": 0.32080200501253126,
            "val/support": 162,
            "val/loss": 0.4399493568821957,
            "val/LOC/f1": 0.4736842105263159,
            "val/MISC/f1": 0.41269841269841273,
            "val/ORG/f1": 0.16161616161616163,
            "val/PER/f1": 0.16470588235294117,
        },
    ],
    "best": {"epoch": 2.0, "step": 76, "val/f1": 0.3385416666666667},
    "test": {
        "accuracy": 0.8744884038199181,
        "precision": 0.2961165048543689,
        "recall": 0.4178082191780822,
        "f1": 0.34659090909090906,
        "support": 146,
        "loss": 0.48730737288033976,
    },
    "last_weights": "d9811b49b3b46514ee8277d46d72c2c0d767d7dec17338328a0f849c1b58f766",
    "exported_weights": "6c15cf8995d1174ce7f3cfee8ed570c4e49d1dd3c27113caa8a1f4cbe684acfa",
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
    import transformers
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from bert_pos.train import train
    from tests.helpers import compose_config

    torch.set_num_threads(1)
    metrics = train(compose_config(RECIPE), run_dir)
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    losses = [event.value for event in events.Scalars("train/loss")][:20]
    return {
        "versions": {
            "torch": torch.__version__.split("+")[0],
            "transformers": transformers.__version__,
        },  # fmt: skip
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
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_demo_recipe_is_pinned(tmp_path):
    import torch
    import transformers

    installed = {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__}
    if installed != PINNED_FOR:
        pytest.skip(f"pinned for {PINNED_FOR}, installed {installed}")
    measured = measure_in_child(tmp_path / "run")
    assert measured["cpu_capability"] == "DEFAULT", "the child did not run the portable kernels"
    assert measured["first_20_losses"] == EXPECTED["first_20_losses"]
    assert measured["evaluations"] == EXPECTED["evaluations"]
    assert measured["best"] == EXPECTED["best"]
    assert measured["test"] == EXPECTED["test"]
    assert measured["last_weights"] == EXPECTED["last_weights"]
    assert measured["exported_weights"] == EXPECTED["exported_weights"]


if __name__ == "__main__":
    print(json.dumps(run_pinned_recipe(Path(sys.argv[1]))))
