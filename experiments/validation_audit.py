"""Were the training recipes chosen on test QoE? Re-read every quality-bar run on VALIDATION.

    python experiments/validation_audit.py      # writes experiments/results/validation_audit.md

The quality-bar rows in README.md (issue 4) compared recipes by the minutes they took to reach
RobustMPC's TEST QoE. That is a choice made on a test set. Every checkpoint of those runs also has
its validation QoE (``val_qoe`` in ``experiments/results/quality_bar_*/curves.csv``, scored on
``traces/splits/<type>/val.txt``), so the same comparison can be redone with validation only:
minutes (the trainer's CPU time) until a run's validation QoE first reaches RobustMPC's QoE on the
same validation list, and +5 % above it, and each run's best validation QoE. RobustMPC is scored
here on the validation list (trusted code, deterministic protocol, default mode).
"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS = REPO / "experiments" / "results"
RUNS = {  # quality-bar result folder -> (network, recipe as README.md describes it)
    "quality_bar_broadband_v7": ("broadband", "quality_bar.toml: bfloat16, entropy knots 1M/3.5M, 4.6M steps"),
    "quality_bar_broadband_v6": ("broadband", "bfloat16, entropy knots 1.5M/3.5M, 4.6M steps"),
    "quality_bar_broadband_v5": ("broadband", "bfloat16, default entropy decay, 3M steps"),
    "quality_bar_broadband_v4": ("broadband", "defaults (fp32), 3M steps"),
    "quality_bar_broadband_v3": ("broadband", "defaults (fp32), 2M steps"),
    "quality_bar_3g_v3": ("3g", "defaults (fp32), 2M steps"),
    "quality_bar_3g_v4": ("3g", "quality_bar.toml (broadband's recipe)"),
}


def minutes_to(points: list[tuple[float, float]], target: float) -> float | None:
    for cpu_s, val in points:
        if val >= target:
            return cpu_s / 60.0
    return None


def main() -> int:
    from simulator.baselines.protocol import run_test_protocol
    from simulator.traces import load_trace_dir
    from simulator.video import default_profile

    robustmpc = {}
    for network in sorted({network for network, _ in RUNS.values()}):
        traces = load_trace_dir(REPO / "traces" / "splits" / network / "val.txt")
        robustmpc[network] = run_test_protocol("robustmpc", traces, default_profile(network))["mean"]["qoe_per_chunk"]
    lines = ["# Validation audit of the quality-bar recipes", "",
             "Written by `python experiments/validation_audit.py` from `experiments/results/quality_bar_*/curves.csv`: "
             "the quality-bar runs re-read on their **validation** QoE only (`traces/splits/<type>/val.txt`). "
             "Minutes are the trainer's CPU minutes until the run's validation QoE first reached RobustMPC's QoE "
             "on the same validation list (and +5 %); medians over the runs (seeds).", "",
             "| runs | network | recipe | RobustMPC (val) | minutes to RobustMPC (val) | minutes to +5 % (val) | "
             "best val QoE per run | mean best val |", "|---|---|---|---:|---|---|---|---:|"]
    for folder, (network, recipe) in RUNS.items():
        path = RESULTS / folder / "curves.csv"
        if not path.exists():
            continue
        by_run: dict[str, list[tuple[float, float]]] = {}
        for row in csv.DictReader(open(path)):
            by_run.setdefault(row["run"], []).append((float(row["cpu_s"]), float(row["val_qoe"])))
        target = robustmpc[network]
        to_mpc = [minutes_to(sorted(points), target) for points in by_run.values()]
        to_five = [minutes_to(sorted(points), 1.05 * target) for points in by_run.values()]
        best = [max(val for _, val in points) for points in by_run.values()]

        def cell(values):
            shown = " / ".join("never" if v is None else f"{v:.1f}" for v in values)
            reached = [v if v is not None else float("inf") for v in values]
            median = statistics.median(reached)
            return f"{shown} (median {'never' if median == float('inf') else f'{median:.1f}'})"

        lines.append(f"| `{folder}` | {network} | {recipe} | {target:.3f} | {cell(to_mpc)} | {cell(to_five)} | "
                     f"{' / '.join(f'{b:.3f}' for b in best)} | {statistics.mean(best):.3f} |")
    out = RESULTS / "validation_audit.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
