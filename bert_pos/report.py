"""Summarise a sweep: one row per configuration, averaged over its seeds.

    python -m bert_pos.report experiments/multirun/baseline/2026-11-29_10-00-00
    python -m bert_pos.report <sweep folder> --out experiments/sweeps/lr_seed
    python -m bert_pos.report <sweep folder> --task ner      # runs with several tasks

Reads every run folder below the sweep folder (each holds `.hydra/`), groups the runs whose
overrides differ only by `seed`, and prints a table: the swept values, mean ± std of the best
validation score (F1; accuracy for pos) and of the test score when present, the number of
seeds and each seed's best epoch, the best configuration last. Writes `report.csv`,
`report.md` and `report.png` (validation score per epoch, mean with a min-max band across
seeds) into `--out` (default: the sweep folder). Runs that failed (`error.txt`) or have no
`metrics.json` yet (running, or killed) are listed, not averaged. Runs with several tasks
report the score they selected by, or with `--task NAME` that task's (its F1 or accuracy at the
selected checkpoint, and its test predictions for the best-vs-runner-up test).
"""

import argparse
import csv
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from bert_pos.cli import run_command
from bert_pos.runtime.choices import RESAMPLING_UNITS, resampling_unit
from bert_pos.runtime.errors import UserError
from bert_pos.runtime.keys import did_you_mean
from bert_pos.runtime.paths import FAILED_MARKER

SEED_KEY = "seed"
NOT_SWEPT = {SEED_KEY, "resume"}  # overrides that never make a configuration of their own


@dataclass
class SweepRun:
    folder: Path
    name: str  # the folder, relative to the sweep folder
    overrides: dict[str, str]  # key -> value, as given on the command line or by the sweeper
    status: str  # done | failed | unfinished
    metrics: dict = field(default_factory=dict)
    error: str = ""


def parse_override(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def find_runs(sweep_dir: Path) -> list[SweepRun]:
    """Every run folder below `sweep_dir`, in path order."""
    runs = []
    for overrides_file in sorted(sweep_dir.rglob(".hydra/overrides.yaml")):
        folder = overrides_file.parent.parent
        overrides = dict(parse_override(o) for o in OmegaConf.load(overrides_file))
        name = str(folder.relative_to(sweep_dir))
        if (folder / "metrics.json").is_file():
            metrics = json.loads((folder / "metrics.json").read_text())
            runs.append(SweepRun(folder, name, overrides, "done", metrics=metrics))
        elif (folder / FAILED_MARKER).is_file():
            error = (folder / FAILED_MARKER).read_text().strip()
            if error.startswith("Traceback"):
                error = error.splitlines()[-1]  # the exception line
            runs.append(SweepRun(folder, name, overrides, "failed", error=" ".join(error.split())))
        else:
            runs.append(SweepRun(folder, name, overrides, "unfinished"))
    return runs


def swept_keys(runs: list[SweepRun]) -> list[str]:
    """Override keys (other than the seed) whose values differ between runs."""
    keys = sorted({key for run in runs for key in run.overrides} - NOT_SWEPT)
    return [key for key in keys if len({run.overrides.get(key) for run in runs}) > 1]


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (NaN for a single value)."""
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def score_of(scores: dict, metric: str) -> float | None:
    return scores.get(metric) if scores else None


def task_metric(metrics: dict, task: str | None) -> str:
    """The score a row reports: the run's selection score, or `task`'s F1 (accuracy)."""
    if task is None:
        return metrics["selection_metric"].removeprefix("val/")  # "f1", "upos/accuracy", ...
    row = metrics["epochs"][0]
    for metric in (f"{task}/f1", f"{task}/accuracy"):
        if f"val/{metric}" in row:
            return metric
    tasks = metrics.get("tasks") or [metrics.get("task")]
    raise UserError(f"--task {task}: the runs' tasks are {', '.join(map(str, tasks))}")


def best_score(metrics: dict, selection: str) -> float:
    """`selection` at the selected checkpoint: recorded as such, or (another task's) its row."""
    if selection in metrics["best"]:
        return metrics["best"][selection]
    return next(r for r in metrics["epochs"] if r["step"] == metrics["best"]["step"])[selection]


def summarise(runs: list[SweepRun], task: str | None = None) -> tuple[list[str], list[dict]]:
    """(swept keys, one row per configuration of finished runs, best configuration last)."""
    keys = swept_keys(runs)
    groups: dict[tuple, list[SweepRun]] = {}
    for run in runs:
        if run.status == "done":
            groups.setdefault(tuple(run.overrides.get(key, "") for key in keys), []).append(run)
    rows = []
    for values, members in groups.items():
        members.sort(key=lambda run: int(run.overrides.get(SEED_KEY, 0)))
        metric = task_metric(members[0].metrics, task)
        selection = f"val/{metric}"
        val = [best_score(run.metrics, selection) for run in members]
        test = [score_of(run.metrics.get("test"), metric) for run in members]
        test = [value for value in test if value is not None]
        val_mean, val_std = mean_std(val)
        test_mean, test_std = mean_std(test)
        rows.append(
            {
                **dict(zip(keys, values)),
                "metric": metric,
                "val_mean": val_mean,
                "val_std": val_std,
                "test_mean": test_mean,
                "test_std": test_std,
                "val_interval": seed_interval(val),
                "test_interval": seed_interval(test),
                "seeds": len(members),
                "folders": [run.folder for run in members],
                "seed_values": [run.overrides.get(SEED_KEY, "") for run in members],
                "best_epochs": [run.metrics["best"]["epoch"] for run in members],
                "curves": [
                    [(row["epoch"], row[selection]) for row in run.metrics["epochs"]]
                    for run in members
                ],
            }
        )
    rows.sort(key=lambda row: row["val_mean"])
    return keys, rows


def seed_interval(values: list[float]) -> tuple[float, float]:
    """The 95% confidence interval of the mean over seeds (Student's t); NaN below 2 seeds."""
    if len(values) < 2:
        return math.nan, math.nan
    from scipy.stats import t

    mean, std = statistics.fmean(values), statistics.stdev(values)
    half = t.ppf(0.975, len(values) - 1) * std / math.sqrt(len(values))
    return mean - half, mean + half


def best_against_runner_up(
    rows: list[dict], unit: str = "auto", samples: int = 1000, seed: int = 0, task=None
) -> str:
    """Is the best configuration distinguishable from the second? A paired bootstrap interval
    and approximate randomization test over the same test sentences, each unit's counts
    pooled over the configuration's seeds (both need test predictions and as many seeds).
    The unit is resampled as `bert_pos.compare` resamples it: documents where the predictions
    mark them (`unit=auto`), else sentences; scores in percentage points, as compare's."""
    if len(rows) < 2:
        return ""
    from bert_pos.scoring.predictions import PredictionsFileError, pooled_predictions
    from bert_pos.scoring.significance import (
        approximate_randomization,
        paired_bootstrap,
        sentence_counts,
    )

    best, second = rows[-1], rows[-2]
    if best["seeds"] != second["seeds"]:
        return (
            f"\nBest vs runner-up: not compared ({best['seeds']} vs {second['seeds']} seeds; "
            "the pooled test needs as many seeds on both sides)."
        )
    try:
        pooled = [pooled_predictions(row["folders"], task) for row in (second, best)]
    except PredictionsFileError as err:
        return f"\nBest vs runner-up: not compared ({err})."
    (gold_a, predicted_a, sentences, documents), (gold_b, predicted_b, _, _) = pooled
    unit = resampling_unit(unit, has_documents=documents is not None)
    if unit == "document" and documents is None:
        return "\nBest vs runner-up: not compared (unit=document: no -DOCSTART- lines)."
    units = documents if unit == "document" else sentences
    counts_a, counts_b = sentence_counts(gold_a, predicted_a), sentence_counts(gold_b, predicted_b)
    overall = paired_bootstrap(counts_a, counts_b, samples, seed, units)["overall"]
    p_value = approximate_randomization(counts_a, counts_b, 10 * samples, seed, units)["overall"]
    low, high = overall["interval"]
    verdict = (
        "distinguishable" if p_value < 0.05 and (low > 0 or high < 0) else "not distinguishable"
    )
    return (
        f"\nBest vs runner-up on test, paired over the same sentences ({best['seeds']} seeds "
        f"pooled, resampled by {unit}, {len(set(units))} units): difference "
        f"{100 * overall['difference']:+.2f} points, 95% CI [{100 * low:+.2f}, {100 * high:+.2f}], "
        f"p = {p_value:.4f}: {verdict} at 5%."
    )


def format_interval(interval: tuple[float, float]) -> str:
    """In percentage points, as every score bert_pos prints."""
    low, high = interval
    return "-" if math.isnan(low) else f"[{100 * low:.2f}, {100 * high:.2f}]"


def format_value(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{100 * mean:.2f}" if math.isnan(std) else f"{100 * mean:.2f} ± {100 * std:.2f}"


def markdown_table(keys: list[str], rows: list[dict], runs: list[SweepRun]) -> str:
    metric = rows[0]["metric"] if rows else "f1"
    header = [
        *keys,
        f"val {metric}",
        f"test {metric}",
        "seeds",
        "best epoch per seed",
        f"test {metric} 95% CI over seeds",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row[key] for key in keys]
        cells += [
            format_value(row["val_mean"], row["val_std"]),
            format_value(row["test_mean"], row["test_std"]),
            str(row["seeds"]),
            ", ".join(f"{epoch:g}" for epoch in row["best_epochs"]),
            format_interval(row["test_interval"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if rows:
        best = rows[-1]
        setting = ", ".join(f"{key}={best[key]}" for key in keys) or "the only configuration"
        lines.append(
            f"\nBest (last row): {setting}: val {metric} "
            f"{format_value(best['val_mean'], best['val_std'])} over {best['seeds']} seeds."
        )
    not_done = [run for run in runs if run.status != "done"]
    if not_done:
        lines.append("\nNot averaged:")
        for run in not_done:
            reason = f"failed: {run.error}" if run.status == "failed" else "no metrics.json yet"
            setting = " ".join(f"{key}={value}" for key, value in sorted(run.overrides.items()))
            lines.append(f"- `{run.name}` ({setting}): {reason}")
    return "\n".join(lines)


def write_csv(path: Path, keys: list[str], rows: list[dict], runs: list[SweepRun]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                *keys,
                "metric",
                "val_mean",
                "val_std",
                "test_mean",
                "test_std",
                "seeds",
                "seed_values",
                "best_epochs",
                "status",
            ]
        )
        for row in rows:
            writer.writerow(
                [
                    *(row[key] for key in keys),
                    row["metric"],
                    row["val_mean"],
                    row["val_std"],
                    row["test_mean"],
                    row["test_std"],
                    row["seeds"],
                    " ".join(row["seed_values"]),
                    " ".join(f"{e:g}" for e in row["best_epochs"]),
                    "done",
                ]
            )
        for run in runs:
            if run.status != "done":
                writer.writerow(
                    [
                        *(run.overrides.get(key, "") for key in keys),
                        "",
                        "",
                        "",
                        "",
                        "",
                        0,
                        run.overrides.get(SEED_KEY, ""),
                        "",
                        run.status,
                    ]
                )


def plot_curves(path: Path, keys: list[str], rows: list[dict]) -> None:
    """Validation score per epoch for each configuration: the mean over seeds, and a band
    from the lowest to the highest seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for row in reversed(rows):  # best first in the legend
        by_epoch: dict[float, list[float]] = {}
        for curve in row["curves"]:
            for epoch, value in curve:
                by_epoch.setdefault(epoch, []).append(value)
        epochs = sorted(by_epoch)
        means = [statistics.fmean(by_epoch[e]) for e in epochs]
        label = ", ".join(f"{key}={row[key]}" for key in keys) or "runs"
        line = axes.plot(epochs, means, marker="o", label=f"{label} (n={row['seeds']})")[0]
        if row["seeds"] > 1:
            low = [min(by_epoch[e]) for e in epochs]
            high = [max(by_epoch[e]) for e in epochs]
            axes.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2)
    metric = rows[0]["metric"] if rows else "f1"
    axes.set_xlabel("epoch")
    axes.set_ylabel(f"validation {metric}")
    axes.set_title("validation per epoch: mean over seeds, band = min..max")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def report(
    sweep_dir: Path, out_dir: Path | None = None, unit: str = "auto", task: str | None = None
) -> str:
    """Summarise the sweep in `sweep_dir`; writes report.{csv,md,png} and returns the table."""
    runs = find_runs(sweep_dir)
    if not runs:
        raise SystemExit(f"{sweep_dir}: no run folders (with .hydra/overrides.yaml) below it")
    out_dir = out_dir or sweep_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    keys, rows = summarise(runs, task)
    table = markdown_table(keys, rows, runs) + best_against_runner_up(rows, unit, task=task)
    (out_dir / "report.md").write_text(f"# Sweep {sweep_dir}\n\n{table}\n")
    write_csv(out_dir / "report.csv", keys, rows, runs)
    if rows:
        plot_curves(out_dir / "report.png", keys, rows)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="a multirun folder")
    parser.add_argument("--out", type=Path, default=None, help="where to write the report")
    parser.add_argument(
        "--unit",
        choices=RESAMPLING_UNITS,
        default="auto",
        help="what the best-vs-runner-up test resamples, as in bert_pos.compare: auto = "
        "documents where the predictions mark them, else sentences",
    )
    parser.add_argument(
        "--task", default=None, help="runs with several tasks: report this task's score"
    )
    args, unknown = parser.parse_known_args()
    if unknown:  # argparse would only say "unrecognized arguments"
        options = [o for action in parser._actions for o in action.option_strings]
        flags = [a for a in unknown if a.startswith("-")] or unknown  # not a flag's value
        answers = [
            f"{argument}: not an option of bert_pos.report; "
            + did_you_mean(argument.split("=", 1)[0], options, "no option is close")
            for argument in flags
        ]
        raise UserError("; ".join(answers))
    print(report(args.sweep_dir, args.out, args.unit, args.task))


if __name__ == "__main__":
    run_command(main)
