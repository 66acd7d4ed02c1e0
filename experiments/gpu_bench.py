"""One-shot GPU measurement: the card's 3-epoch recipe on a model of bert-base-cased's shape,
through bert_pos padded and compiled, bert_pos padding-free, and the Hugging Face Trainer, each
set against the model's floor (`bert_pos.training.floor`).

    python experiments/gpu_bench.py                 # one CUDA GPU, offline (meant for < 10 min)
    python experiments/gpu_bench.py --data DIR optim.lr=3e-5 ...   # other data, more overrides
    python experiments/gpu_bench.py --dry-run       # on CPU: a tiny model, one short epoch
                                                    # (tests/test_gpu_bench.py runs this)

Needs no network: the model is randomly initialised in bert-base-cased's shape (12 x 768, its
28,996-token vocabulary; conf/model/bert_base_shape.yaml), which costs what bert-base-cased
costs, and the data are CoNLL-2003 files (`--data`, by default `.device/data/conll2003` or
`../shared/data/conll2003`, whichever exists). Everything runs in bf16. Writes `gpu_bench.md`
(the table) and `gpu_bench.json` to `--out` (default experiments/gpu_bench/<time>/), with
each bench's own folder beside them.

Rows: wall time of the side's process, real (non-padding) training tokens/s, ms per optimizer
step, the share of the floor, model FLOPs utilisation (CUDA), final validation F1 over subwords.
The padded run is compiled with CUDA graphs over batches padded to multiples of 32 (few shapes,
so few compilations); the padding-free run is eager, since its packed length changes with every
batch. The Trainer runs the card's script in bf16.
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RECIPE = ["+experiment=baseline", "model=bert_base_shape", "device=cuda", "precision=bf16"]
# A tiny model on the synthetic demo corpus, for CPU: same code paths, a few seconds each.
DRY_RUN = [
    "+experiment=demo",
    "data.demo_sentences={train: 160, validation: 40, test: 40}",
    "model.random_init.hidden_size=64",
    "model.random_init.intermediate_size=128",
    "epochs=1",
    "device=cpu",
    "precision=fp32",
    "eval.test_at_end=false",
    "data.cache_dir=null",
]
# (name, overrides, sides of bert_pos.bench): the floor and the Trainer run with the first.
RUNS = [
    (
        "bert_pos, padded, compiled",
        ["compile=true", "compile_mode=reduce-overhead", "data.pad_to_multiple_of=32"],
        ["bert_pos", "trainer", "floor"],
    ),
    ("bert_pos, padding-free", ["model.padding_free=true"], ["bert_pos"]),
]
NAMES = {"trainer": "Hugging Face Trainer", "floor": "the model's floor"}


def default_data_dir() -> Path:
    candidates = [ROOT / ".device/data/conll2003", ROOT.parent / "shared/data/conll2003"]
    return next((path for path in candidates if path.is_dir()), candidates[-1])


def compose_bench_config(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from bert_pos.cli import accept_plus_groups
    from bert_pos.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="bench", overrides=accept_plus_groups(overrides))


def measure(out_dir: Path, dry_run: bool, data_dir: Path, extra: list[str]) -> list[dict]:
    """Each run of RUNS through bert_pos.bench; one row per side."""
    from bert_pos.bench import bench

    base = DRY_RUN if dry_run else [*RECIPE, f"data.dir={data_dir}"]
    rows = []
    for name, overrides, sides in RUNS:
        if dry_run:  # compiling on a CPU takes minutes; the dry run checks everything else
            overrides = [o for o in overrides if not o.startswith("compile")]
        cfg = compose_bench_config([*base, *overrides, *extra])
        run_dir = out_dir / name.replace(", ", "_").replace(" ", "_")
        run_dir.mkdir(parents=True, exist_ok=True)
        results = bench(cfg, run_dir, sides)
        for side in sides:
            rows.append({"run": name if side == "bert_pos" else NAMES[side], **results[side]})
    floor = next(row for row in rows if row["run"] == NAMES["floor"])  # same model and precision
    for row in rows:
        if row is not floor and "train_tokens_per_s" in row and "train_tokens_per_s" in floor:
            row["share_of_floor"] = row["train_tokens_per_s"] / floor["train_tokens_per_s"]
    return rows


def format_table(rows: list[dict], device: str) -> str:
    columns = [
        ("wall time (s)", "wall_seconds", "{:.0f}"),
        ("training tokens/s", "train_tokens_per_s", "{:.0f}"),
        ("ms per step", "ms_per_step", "{:.2f}"),
        ("share of the floor", "share_of_floor", "{:.0%}"),
        ("model FLOPs utilisation", "mfu", "{:.1%}"),
        ("final validation F1", "final_score", "{:.4f}"),
    ]
    lines = [
        f"The card's recipe on {device}",
        "",
        "| | " + " | ".join(title for title, _, _ in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for row in rows:
        cells = [form.format(row[key]) if key in row else "-" for _, key, form in columns]
        if "error" in row:
            cells = [f"failed: {row['error']}"] + [""] * (len(columns) - 1)
        lines.append(f"| {row['run']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny model, one short epoch")
    parser.add_argument("--data", type=Path, default=None, help="CoNLL-2003 folder")
    parser.add_argument("--out", type=Path, default=None, help="where the table goes")
    parser.add_argument("overrides", nargs="*", help="more config overrides (key=value)")
    args = parser.parse_args(argv)
    out_dir = args.out or ROOT / "experiments/gpu_bench" / time.strftime("%Y-%m-%d_%H-%M-%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        sys.exit("gpu_bench: no CUDA device here (--dry-run runs it on the CPU)")
    started = time.perf_counter()
    rows = measure(out_dir, args.dry_run, args.data or default_data_dir(), args.overrides)
    device = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available() and not args.dry_run
        else "cpu (dry run)"
    )
    table = format_table(rows, device)
    table += f"\n\nAll of it: {time.perf_counter() - started:.0f} s, torch {torch.__version__}."
    (out_dir / "gpu_bench.md").write_text(table + "\n")
    (out_dir / "gpu_bench.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table)
    return out_dir


if __name__ == "__main__":
    main()
