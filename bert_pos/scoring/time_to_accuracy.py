"""Time to accuracy: the training seconds a run needs to reach a validation score.

Each side of `bert_pos.bench` records a curve, `[{"step", "score", "train_seconds"}]` with
evaluations left off the clock; the targets are shares of the reference side's final score.
"""


def time_to(curve: list[dict], target: float) -> float | None:
    """Training seconds at the first evaluation scoring at least `target`; None if none did."""
    return next((point["train_seconds"] for point in curve if point["score"] >= target), None)


def times_to_targets(results: dict[str, dict], shares: list[float]) -> dict:
    """For each target (a share of the Trainer's final validation score, mean over seeds;
    bert_pos's where the Trainer did not run): each side's training seconds to reach it, per
    seed (None: not reached)."""
    reference_side = "trainer" if "final_score" in results.get("trainer", {}) else "bert_pos"
    reference = results.get(reference_side, {}).get("final_score")
    if reference is None:
        return {}
    sides = [side for side in ("bert_pos", "trainer") if "curves" in results.get(side, {})]
    targets = []
    for share in shares:
        target = share * reference
        seconds = {
            side: {seed: time_to(curve, target) for seed, curve in results[side]["curves"].items()}
            for side in sides
        }
        targets.append({"share": share, "score": target, "seconds": seconds})
    return {
        "reference_side": reference_side,
        "reference_score": reference,
        "score_name": results[reference_side]["score_name"],
        "targets": targets,
    }


def format_time_to_accuracy(accuracy: dict, seeds: list[int]) -> str:
    """The headline table: training seconds to each target, mean and range over the seeds;
    `n/N` when only n of N seeds reached it."""
    if not accuracy:
        return "Time to accuracy: no final validation score to set targets from"
    reference = "the Trainer's" if accuracy["reference_side"] == "trainer" else "bert_pos's"
    lines = [
        f"Time to accuracy: training seconds (evaluations excluded) to reach a share of "
        f"{reference} final {accuracy['score_name']} {accuracy['reference_score']:.4f}; "
        f"mean (range) over seed{'s' if len(seeds) > 1 else ''} "
        f"{', '.join(map(str, seeds))}",
        "",
        "| target | score | bert_pos | Trainer | bert_pos / Trainer |",
        "|---|---|---|---|---|",
    ]
    for target in accuracy["targets"]:
        means, cells = {}, []
        for side in ("bert_pos", "trainer"):
            reached = [s for s in target["seconds"].get(side, {}).values() if s is not None]
            runs = len(target["seconds"].get(side, {}))
            if not runs:
                cells.append("-")
            elif not reached:
                cells.append("not reached")
            else:
                means[side] = sum(reached) / len(reached)
                spread = f" ({min(reached):.1f}-{max(reached):.1f})" if len(reached) > 1 else ""
                partial = f", {len(reached)}/{runs} seeds" if len(reached) < runs else ""
                cells.append(f"{means[side]:.1f}{spread}{partial}")
        complete = all(s is not None for side in target["seconds"].values() for s in side.values())
        ratio = (
            f"{means['bert_pos'] / means['trainer']:.2f}x"
            if complete and len(means) == 2 and means["trainer"]
            else "-"
        )
        lines.append(
            f"| {target['share']:.0%} | {target['score']:.4f} | {cells[0]} | {cells[1]} | {ratio} |"
        )
    return "\n".join(lines)
