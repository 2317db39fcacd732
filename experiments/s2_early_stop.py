"""Issue #4, point 3: how much compute S2 early stopping saves, and how often it stops a good design.

    python experiments/s2_designs.py --out runs/s2/designs
    python experiments/s2_early_stop.py runs/s2/designs --traces ../shared/traces/broadband/train \\
        --test-traces ../shared/traces/broadband/test --network broadband --steps 500000 --out experiments/results/s2_broadband

1. Trains the seed design (``designs/pensieve``, seed 0) as the S2 reference, every design in the
   folder and the seed design again with seed 1 (a candidate exactly as good as the seed), each to
   the full budget with S2 off, two caged trainings at a time (one per core).
2. Scores every run's validation-best policy on the held-out test traces (``llmabr eval``).
3. Replays ``EarlyStopRule`` - the very object the S2 callback consults at each validation point
   - over each full validation curve for a grid of margins and patiences: where S2 would have
   stopped the run, the training steps and wall-clock it would have saved, and whether it would
   have stopped a design that finished in the top quartile on test QoE (a false stop).
4. Live check: trains the first design the default rule stops, this time with ``--early-stop``
   against the same reference, and records whether the callback stopped it at the replayed step.

Writes ``summary.md``, ``replay.csv``, ``designs.csv`` and ``curves.png`` into --out.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from llmabr.train.config import load_config, to_dict
from llmabr.train.early_stop import EarlyStopConfig, EarlyStopRule, seed_curve_path

REPO = Path(__file__).resolve().parents[1]
LLMABR = [sys.executable, "-m", "llmabr.cli.main"]
GRID_MARGINS = (0.05, 0.10, 0.15, 0.20)
GRID_PATIENCE = (1, 2, 3)


def train_overrides(args) -> list[str]:
    return [f"network={args.network}", f"traces={args.traces}", f"total_steps={args.steps}",
            f"eval_every_steps={args.eval_every}"]


def train(design: Path, seed: int, out: Path, args, extra: list[str] = ()) -> dict:
    if not (out / "result.json").exists():
        if out.exists():
            shutil.rmtree(out)  # an unfinished run from an interrupted experiment
        command = LLMABR + ["train", str(design), "--seed", str(seed), "--out", str(out), *extra]
        for item in train_overrides(args):
            command += ["--set", item]
        with open(out.parent / f"{out.name}.log", "w") as log:
            subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    return json.loads((out / "result.json").read_text())


def test_qoe(run: Path, test_traces: Path) -> float:
    cached = run / "test_qoe.json"
    if not cached.exists():
        done = subprocess.run(LLMABR + ["eval", str(run), "--traces", str(test_traces), "--baselines", "none", "--json"],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{run}: evaluation failed: {done.stderr[-800:]}")
        stats = next(iter(json.loads(done.stdout.strip().splitlines()[-1]).values()))
        cached.write_text(json.dumps(stats))
    return json.loads(cached.read_text())["qoe_per_chunk"]


def replay(curve: list[dict], reference: list[dict], config: EarlyStopConfig, total_steps: int) -> dict:
    """Feed the full curve to the rule point by point, as the callback does; stop where it says."""
    rule = EarlyStopRule(reference, config, total_steps)
    for point in curve:
        if rule.should_stop(point["steps"], point["val_qoe"]):
            return {"stopped": True, "steps": point["steps"], "wall_s": point["wall_s"]}
    return {"stopped": False, "steps": curve[-1]["steps"], "wall_s": curve[-1]["wall_s"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("designs", type=Path, help="folder of design folders (experiments/s2_designs.py)")
    parser.add_argument("--network", default="broadband")
    parser.add_argument("--traces", required=True, help="training traces (validation is split from them)")
    parser.add_argument("--test-traces", required=True, type=Path)
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--eval-every", type=int, default=25_000)
    parser.add_argument("--runs", type=Path, default=Path("runs/s2/runs"))
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once (one per core)")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    seed_design = REPO / "designs" / "pensieve"
    jobs = {"reference": (seed_design, 0), "pensieve-seed1": (seed_design, 1)}
    jobs.update({folder.name: (folder, 0) for folder in sorted(args.designs.iterdir()) if (folder / "state.py").exists()})
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {name: pool.submit(train, design, seed, args.runs / name, args) for name, (design, seed) in jobs.items()}
        results = {name: future.result() for name, future in futures.items()}
    failed = {name: r["reason"] for name, r in results.items() if r["status"] != "ok"}
    if "reference" in failed:
        raise SystemExit(f"the reference run failed: {failed['reference']}")
    reference = json.loads((args.runs / "reference" / "curve.json").read_text())
    candidates = [name for name in jobs if name != "reference" and name not in failed]
    curves = {name: json.loads((args.runs / name / "curve.json").read_text()) for name in ["reference"] + candidates}
    scores = {name: test_qoe(args.runs / name, args.test_traces) for name in ["reference"] + candidates}

    ranked = sorted(candidates, key=lambda name: scores[name], reverse=True)
    top = set(ranked[:math.ceil(len(ranked) / 4)])
    total_steps = sum(curves[name][-1]["steps"] for name in candidates)
    total_wall = sum(curves[name][-1]["wall_s"] for name in candidates)
    grid = []
    for margin in GRID_MARGINS:
        for patience in GRID_PATIENCE:
            config = EarlyStopConfig(enabled=True, margin=margin, patience=patience)
            outcome = {name: replay(curves[name], reference, config, args.steps) for name in candidates}
            stopped = [name for name in candidates if outcome[name]["stopped"]]
            grid.append({
                "margin": margin, "patience": patience, "min_fraction": config.min_fraction,
                "stopped": len(stopped), "designs": len(candidates),
                "steps_saved_pct": 100 * sum(curves[n][-1]["steps"] - outcome[n]["steps"] for n in stopped) / total_steps,
                "wall_saved_pct": 100 * sum(curves[n][-1]["wall_s"] - outcome[n]["wall_s"] for n in stopped) / total_wall,
                "false_stops": len(top & set(stopped)), "top_quartile": len(top),
                "false_stop_rate": len(top & set(stopped)) / len(top),
                "stopped_names": " ".join(stopped), "outcome": outcome})

    default = EarlyStopConfig(enabled=True)
    default_row = next(row for row in grid if row["margin"] == default.margin and row["patience"] == default.patience)
    live = None
    stopped_default = [name for name in ranked[::-1] if default_row["outcome"][name]["stopped"]]
    if stopped_default:
        name = stopped_default[0]
        config = load_config(None, train_overrides(args))
        cache = args.runs / "cache"
        path = seed_curve_path(cache, config.network, to_dict(replace(config, early_stop=replace(config.early_stop, enabled=True))))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(reference))
        live_result = train(jobs[name][0], jobs[name][1], args.runs / f"live-{name}", args,
                            ["--early-stop", "--cache-dir", str(cache)])
        live = {"design": name, "replayed_stop_steps": default_row["outcome"][name]["steps"],
                "live_stopped": bool(live_result.get("stopped_early")), "live_steps": live_result.get("steps"),
                "reason": live_result.get("reason", "")}

    with open(args.out / "replay.csv", "w", newline="") as handle:
        fields = [key for key in grid[0] if key != "outcome"]
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows({key: row[key] for key in fields} for row in grid)
    with open(args.out / "designs.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["design", "test_qoe", "top_quartile", "final_val_qoe", "best_val_qoe", "steps", "wall_s",
                         "default_s2_stop_steps"])
        for name in ["reference"] + ranked:
            curve = curves[name]
            stop = default_row["outcome"].get(name, {})
            writer.writerow([name, f"{scores[name]:.4f}", name in top, f"{curve[-1]['val_qoe']:.4f}",
                             f"{max(p['val_qoe'] for p in curve):.4f}", curve[-1]["steps"], f"{curve[-1]['wall_s']:.0f}",
                             stop["steps"] if stop.get("stopped") else ""])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 5))
    for name in ranked:
        curve = curves[name]
        style = "-" if name in top else "--"
        axes.plot([p["steps"] / 1e3 for p in curve], [p["val_qoe"] for p in curve], style, linewidth=1, label=name)
        stop = default_row["outcome"][name]
        if stop["stopped"]:
            axes.plot(stop["steps"] / 1e3, next(p["val_qoe"] for p in curve if p["steps"] == stop["steps"]), "kx")
    axes.plot([p["steps"] / 1e3 for p in reference], [p["val_qoe"] for p in reference], "k-", linewidth=2.5,
              label="reference (seed design, seed 0)")
    axes.plot([p["steps"] / 1e3 for p in reference], [p["val_qoe"] - default.margin for p in reference], "k:",
              linewidth=1, label=f"reference - {default.margin}")
    axes.set_xlabel("env steps (thousands)")
    axes.set_ylabel("validation QoE per chunk")
    axes.set_title("S2: validation curves (solid: test top quartile; x: default S2 stop)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(args.out / "curves.png", dpi=120)

    lines = [f"# S2 early stopping on {len(candidates)} designs ({args.network}, {args.steps:,} steps each)", "",
             f"Training traces `{args.traces}`, test traces `{args.test_traces}`; validation every "
             f"{args.eval_every:,} steps; reference = seed design (designs/pensieve), seed 0. Candidates trained to "
             f"the full budget with S2 off; the S2 rule (`llmabr.train.early_stop.EarlyStopRule`) replayed over their "
             f"validation curves. Top quartile = the best {len(top)} of {len(candidates)} on test QoE "
             f"(validation-best policy).", "",
             "| design | test QoE/chunk | top quartile | best val QoE | stopped by default S2 at |", "|---|---:|:-:|---:|---:|"]
    for name in ["reference"] + ranked:
        stop = default_row["outcome"].get(name, {})
        lines.append(f"| {name} | {scores[name]:.3f} | {'yes' if name in top else ''} | "
                     f"{max(p['val_qoe'] for p in curves[name]):.3f} | "
                     f"{format(stop['steps'], ',') if stop.get('stopped') else '-'} |")
    if failed:
        lines += ["", "Failed runs (not counted): " + "; ".join(f"{n}: {r}" for n, r in failed.items())]
    lines += ["", f"Replay grid (min_fraction {default.min_fraction}; default margin {default.margin}, patience "
              f"{default.patience}):", "",
              "| margin | patience | stopped | training steps saved | wall-clock saved | false stops (top quartile) |",
              "|---:|---:|---:|---:|---:|---:|"]
    for row in grid:
        lines.append(f"| {row['margin']:.2f} | {row['patience']} | {row['stopped']}/{row['designs']} | "
                     f"{row['steps_saved_pct']:.1f} % | {row['wall_saved_pct']:.1f} % | "
                     f"{row['false_stops']}/{row['top_quartile']} ({100 * row['false_stop_rate']:.0f} %) |")
    if live:
        lines += ["", f"Live check: `{live['design']}` trained again with `--early-stop` against the same reference: "
                  f"{'stopped' if live['live_stopped'] else 'NOT stopped'} at {live['live_steps']:,} steps "
                  f"(replay: {live['replayed_stop_steps']:,}). {live['reason']}"]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
