"""Issue #4's quality bar: test QoE of a trained design against wall-clock and env steps, next to RobustMPC.

    python experiments/quality_bar.py RUN [RUN ...] --test-traces DIR --out experiments/results/NAME

Each RUN is a folder of ``llmabr train ... --set keep_checkpoints=true``. Every checkpoint is
scored on the test traces in one caged process (design code never runs here); RobustMPC (index
fixed) is scored here on the same traces. Writes ``curves.csv``, ``curves.png`` and
``summary.md``: per run the wall-clock minutes to reach RobustMPC's QoE and the test QoE at 5 and
20 minutes, then the medians over runs. Time is the trainer process's CPU time (validation
included; torch runs one thread), i.e. minutes on one core even when other work shared the
machine; runs recorded before ``cpu_s`` existed fall back to the trainer's wall-clock.

The policy "at" a time is counted two ways: the latest checkpoint before it, and the checkpoint
a user would deploy then - the best on the validation traces (split from the training traces)
among those saved so far, which is what ``policy_best.pt`` holds at that moment. Test QoE never
chooses a checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from llmabr.train.caged import evaluate_caged
from llmabr.train.evaluate import evaluate, summarize
from simulator.baselines import make_baseline
from simulator.layout import Layout
from simulator.traces import load_trace_dir
from simulator.video import load_profile


def checkpoint_curve(run: Path, test_traces: Path) -> list[dict]:
    result = json.loads((run / "result.json").read_text())
    curve = json.loads((run / "curve.json").read_text())
    checkpoints = sorted((run / "checkpoints").glob("policy_*.pt"))
    weights = [str(path.relative_to(run)) for path in checkpoints]
    try:
        scored = evaluate_caged(run, test_traces, result["video"], result["config"]["mode"], result["config"]["qoe"],
                                weights, run / f"curve-{test_traces.name}", wall_s=3600.0)
    except RuntimeError as error:
        raise SystemExit(f"{run}: scoring the checkpoints failed: {error}") from None
    wall_by_steps = {point["steps"]: point["wall_s"] for point in curve}
    cpu_by_steps = {point["steps"]: point.get("cpu_s", point["wall_s"]) for point in curve}
    val_by_steps = {point["steps"]: point["val_qoe"] for point in curve}
    rows = []
    for name in weights:
        steps = int(Path(name).stem.split("_")[1])
        stats = summarize(scored[name])
        rows.append({"run": run.name, "steps": steps, "wall_s": wall_by_steps.get(steps, float("nan")),
                     "cpu_s": cpu_by_steps.get(steps, float("nan")), "val_qoe": val_by_steps.get(steps, float("nan")), "test_qoe": stats["qoe_per_chunk"], "ci_low": stats["qoe_per_chunk_ci95"][0],
                     "ci_high": stats["qoe_per_chunk_ci95"][1]})
    return rows


def with_selection(rows: list[dict]) -> list[dict]:
    """Add ``selected_qoe``: test QoE of the validation-best checkpoint saved up to each row."""
    best = None
    for row in rows:
        if best is None or row["val_qoe"] > best["val_qoe"]:
            best = row
        row["selected_qoe"] = best["test_qoe"]
    return rows


def at_minutes(rows: list[dict], minutes: float, key: str = "test_qoe") -> float | None:
    before = [row for row in rows if row["cpu_s"] <= minutes * 60.0]
    return before[-1][key] if before else None


def minutes_to_reach(rows: list[dict], target: float, key: str = "test_qoe") -> float | None:
    return next((row["cpu_s"] / 60.0 for row in rows if row[key] >= target), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--test-traces", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    video = load_profile(json.loads((args.runs[0] / "result.json").read_text())["video"])
    traces = load_trace_dir(args.test_traces)
    mpc = summarize(evaluate(make_baseline("robustmpc", video, Layout(16, video.n_levels)), traces, video))
    target = mpc["qoe_per_chunk"]
    curves = {run.name: with_selection(checkpoint_curve(run, args.test_traces)) for run in args.runs}

    with open(args.out / "curves.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["run", "steps", "wall_s", "cpu_s", "val_qoe", "test_qoe", "ci_low", "ci_high",
                                                    "selected_qoe"])
        writer.writeheader()
        for rows in curves.values():
            writer.writerows(rows)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (by_time, by_steps) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, rows in curves.items():
        line, = by_time.plot([r["cpu_s"] / 60 for r in rows], [r["test_qoe"] for r in rows], marker=".",
                             linewidth=1, label=f"{name} latest")
        by_time.step([r["cpu_s"] / 60 for r in rows], [r["selected_qoe"] for r in rows], where="post",
                     color=line.get_color(), linewidth=2, alpha=0.6, label=f"{name} validation-best")
        by_steps.plot([r["steps"] / 1e6 for r in rows], [r["test_qoe"] for r in rows], marker=".", linewidth=1,
                      color=line.get_color(), label=name)
    for axes, label in ((by_time, "training minutes (CPU time, one core)"), (by_steps, "env steps (millions)")):
        axes.axhline(target, color="black", linestyle="--", linewidth=1, label=f"RobustMPC {target:.3f}")
        axes.axhline(1.05 * target, color="grey", linestyle=":", linewidth=1, label="RobustMPC + 5 %")
        axes.set_ylim(0.7 * target, 1.15 * target)  # the region the bar is about (early points fall below)
        axes.set_xlabel(label)
        axes.set_ylabel(f"test QoE per chunk ({args.test_traces.name})")
        axes.grid(alpha=0.3)
    by_time.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.out / "curves.png", dpi=120)

    lines = [f"# Quality bar: {', '.join(curves)} on {args.test_traces}", "",
             f"RobustMPC (index fixed) on the same {len(traces)} test traces: {target:.3f} per chunk "
             f"(95% CI {mpc['qoe_per_chunk_ci95'][0]:.3f}-{mpc['qoe_per_chunk_ci95'][1]:.3f}); +5 %: {1.05 * target:.3f}.", "",
             "Minutes are CPU minutes of the caged trainer process (one torch thread: training time on one core, "
             "validation included). Wall-clock per run: " + ", ".join(
                 f"{name} {rows[-1]['wall_s'] / 60:.1f} min for {rows[-1]['cpu_s'] / 60:.1f} CPU min"
                 for name, rows in curves.items()) + ".", ""]
    def fmt(value, spec=".3f"):
        return "-" if value is None else "never" if value == float("inf") else format(value, spec)

    def median(values):  # a run that never got there counts as infinitely slow
        return None if any(v is None for v in values) else float(np.median(values))

    for key, title in (("selected_qoe", "Validation-best checkpoint so far (what policy_best.pt holds)"),
                       ("test_qoe", "Latest checkpoint")):
        lines += [f"## {title}", "",
                  "| run | minutes to RobustMPC | minutes to +5 % | QoE at 5 min | QoE at 20 min | vs RobustMPC at 20 min | env steps at 20 min |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        summary = []
        for name, rows in curves.items():
            reach, reach5 = (minutes_to_reach(rows, goal, key) for goal in (target, 1.05 * target))
            reach, reach5 = (float("inf") if v is None else v for v in (reach, reach5))
            q5, q20, steps20 = at_minutes(rows, 5, key), at_minutes(rows, 20, key), at_minutes(rows, 20, "steps")
            summary.append((reach, reach5, q5, q20))
            lines.append(f"| {name} | {fmt(reach, '.1f')} | {fmt(reach5, '.1f')} | {fmt(q5)} | {fmt(q20)} | "
                         f"{'-' if q20 is None else format(100 * (q20 / target - 1), '+.1f') + ' %'} | "
                         f"{fmt(steps20, ',')} |")
        if len(summary) > 1:
            m = [median([s[i] for s in summary]) for i in range(4)]
            lines.append(f"| **median** | {fmt(m[0], '.1f')} | {fmt(m[1], '.1f')} | {fmt(m[2])} | {fmt(m[3])} | "
                         f"{'-' if m[3] is None else format(100 * (m[3] / target - 1), '+.1f') + ' %'} | |")
        lines.append("")
    lines += ["Best test QoE of any checkpoint (for reference only; test QoE never selects): " +
              ", ".join(f"{name} {max(r['test_qoe'] for r in rows):.3f}" for name, rows in curves.items())]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
