"""Issue #4, point 3: how much compute S2 early stopping saves, and how often it stops a good design.

    python experiments/s2_designs.py --out runs/s2v2/designs
    python experiments/s2_early_stop.py run runs/s2v2/designs --network broadband \\
        --traces traces/splits/broadband/train.txt --val-traces traces/splits/broadband/val.txt \\
        --test-traces traces/splits/broadband/test.txt --steps 150000 --runs runs/s2v2/broadband \\
        --out experiments/results/s2_broadband_v2
    python experiments/s2_early_stop.py run runs/s2v2/designs --network 4g --video high-4g \\
        --traces traces/splits/4g/train.txt --val-traces traces/splits/4g/val.txt \\
        --test-traces traces/splits/4g/test.txt --steps 150000 --runs runs/s2v2/4g --out experiments/results/s2_4g
    python experiments/s2_early_stop.py recommend experiments/results/s2_broadband_v2 experiments/results/s2_4g

``run``:

1. Trains the seed design (``designs/pensieve``, seed 0) as the S2 reference, every design in the
   folder and the seed design again with seed 1 (a candidate exactly as good as the seed), each to
   the full budget with S2 off, on the split lists (training list; validation list passed as
   ``val_traces``), ``--jobs`` caged trainings at a time.
2. Computes S2's scale the way the trusted trainer does: ``validation_yardsticks`` (BB and the
   offline optimum) on the run's validation traces; the margin is a share of (optimum - BB).
3. Replays ``EarlyStopRule`` - the very object the S2 callback consults at each validation point
   - over each full validation curve for a grid of margins, patiences and minimum fractions: where
   S2 would have stopped the run, and the training steps, wall-clock and trainer CPU time saved.
   A false stop stops a design that finished in the top quartile by validation QoE: by its final
   validation QoE or by its best (the checkpoint that would be deployed); either counts.
4. Live check: trains one design the default rule stops (the weakest on best validation QoE), this
   time with ``--early-stop`` against the same reference, and records whether the callback stopped
   it at the replayed step.
5. Only then, with ``--test-traces``, scores every run's validation-best policy on the test list and
   reports it per design. Test QoE chooses nothing: not the top quartile, not a rule.

``recommend`` reads the ``replay.csv`` of several ``run`` outputs and names the rule that saves the
most training steps (mean over the outputs) with no false stop in any of them, or says none qualifies.
``--reference-run pensieve-seed1`` replays the same runs against the seed design's seed-1 curve (how
much the choice depends on the reference's training seed); results in ``--out``'s ``reference-seed1/``:

    python experiments/s2_early_stop.py run ... --reference-run pensieve-seed1 --no-live \\
        --out experiments/results/s2_broadband_v2/reference-seed1
    python experiments/s2_early_stop.py recommend experiments/results/s2_broadband_v2 experiments/results/s2_4g \\
        experiments/results/s2_broadband_v2/reference-seed1 experiments/results/s2_4g/reference-seed1 \\
        --out experiments/results/s2_4g/recommendation-both-references.md

Writes ``summary.md``, ``replay.csv``, ``designs.csv``, ``meta.json`` and ``curves.png`` into --out
(``recommendation.md`` for ``recommend``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
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
GRID_MARGINS = (0.05, 0.10, 0.15, 0.20, 0.30)  # shares of (optimum - BB) on the validation traces
GRID_PATIENCE = (1, 2, 3)
GRID_MIN_FRACTION = (0.10, 0.25, 0.50)


def train_overrides(args) -> list[str]:
    overrides = [f"network={args.network}", f"traces={args.traces}", f"val_traces={args.val_traces}",
                 f"total_steps={args.steps}", f"eval_every_steps={args.eval_every}"]
    return overrides + ([f"video={args.video}"] if args.video else [])


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


def yardsticks(args) -> dict:
    """{"bb", "optimal"} QoE/chunk on exactly the validation traces the trainer scores (its own loader)."""
    from llmabr.scoring.yardsticks import validation_yardsticks
    from llmabr.train.data import load_data

    config = load_config(None, train_overrides(args))
    _, val_traces, video = load_data(config)
    return {**validation_yardsticks(val_traces, video, config.mode, config.qoe, cache_dir=args.runs / "cache"),
            "val_traces": len(val_traces), "video": video.name}


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


def replay(curve: list[dict], reference: list[dict], config: EarlyStopConfig, total_steps: int,
           scale_qoe: float) -> dict:
    """Feed the full curve to the rule point by point, as the callback does; stop where it says."""
    rule = EarlyStopRule(reference, config, total_steps, scale_qoe)
    for point in curve:
        if rule.should_stop(point["steps"], point["val_qoe"]):
            return {"stopped": True, **{key: point[key] for key in ("steps", "wall_s", "cpu_s")}}
    return {"stopped": False, **{key: curve[-1][key] for key in ("steps", "wall_s", "cpu_s")}}


def top_quartile(candidates: list[str], value) -> set[str]:
    return set(sorted(candidates, key=value, reverse=True)[:math.ceil(len(candidates) / 4)])


def run_experiment(args) -> int:
    args.runs.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    seed_design = REPO / "designs" / "pensieve"
    jobs = {"reference": (seed_design, 0), "pensieve-seed1": (seed_design, 1)}
    jobs.update({folder.name: (folder, 0) for folder in sorted(args.designs.iterdir()) if (folder / "state.py").exists()})
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {name: pool.submit(train, design, seed, args.runs / name, args) for name, (design, seed) in jobs.items()}
        results = {name: future.result() for name, future in futures.items()}
    failed = {name: r["reason"] for name, r in results.items() if r["status"] != "ok"}
    ref = args.reference_run
    if ref not in jobs:
        raise SystemExit(f"--reference-run {ref!r} is none of the runs: {', '.join(jobs)}")
    if ref in failed:
        raise SystemExit(f"the reference run failed: {failed[ref]}")
    sticks = yardsticks(args)
    scale_qoe = sticks["optimal"] - sticks["bb"]
    reference = json.loads((args.runs / ref / "curve.json").read_text())
    candidates = [name for name in jobs if name != ref and name not in failed]
    curves = {name: json.loads((args.runs / name / "curve.json").read_text()) for name in [ref] + candidates}
    final_val = {name: curves[name][-1]["val_qoe"] for name in curves}
    best_val = {name: max(point["val_qoe"] for point in curves[name]) for name in curves}

    # Everything below is chosen on validation QoE only.
    ranked = sorted(candidates, key=lambda name: best_val[name], reverse=True)
    top_final, top_best = top_quartile(candidates, final_val.get), top_quartile(candidates, best_val.get)
    top = top_final | top_best
    total = {key: sum(curves[name][-1][key] for name in candidates) for key in ("steps", "wall_s", "cpu_s")}
    grid = []
    for min_fraction in GRID_MIN_FRACTION:
        for margin in GRID_MARGINS:
            for patience in GRID_PATIENCE:
                config = EarlyStopConfig(enabled=True, margin=margin, patience=patience, min_fraction=min_fraction)
                outcome = {name: replay(curves[name], reference, config, args.steps, scale_qoe) for name in candidates}
                stopped = [name for name in candidates if outcome[name]["stopped"]]
                saved = {key: 100 * sum(curves[n][-1][key] - outcome[n][key] for n in stopped) / total[key]
                         for key in total}
                grid.append({
                    "margin": margin, "margin_qoe": round(margin * scale_qoe, 4), "patience": patience,
                    "min_fraction": min_fraction, "stopped": len(stopped), "designs": len(candidates),
                    "steps_saved_pct": round(saved["steps"], 2), "wall_saved_pct": round(saved["wall_s"], 2),
                    "cpu_saved_pct": round(saved["cpu_s"], 2),
                    "false_stops": len(top & set(stopped)), "false_stops_final": len(top_final & set(stopped)),
                    "false_stops_best": len(top_best & set(stopped)), "top_quartile": len(top),
                    "stopped_names": " ".join(stopped), "false_stop_names": " ".join(sorted(top & set(stopped))),
                    "outcome": outcome})

    default = EarlyStopConfig(enabled=True)
    default_row = next(row for row in grid if (row["margin"], row["patience"], row["min_fraction"])
                       == (default.margin, default.patience, default.min_fraction))
    live = None
    stopped_default = [name for name in ranked[::-1] if default_row["outcome"][name]["stopped"]]
    if stopped_default and not args.no_live and ref == "reference":  # the live run trains against seed 0's curve
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
                "live_val_yardsticks": live_result.get("val_yardsticks"), "reason": live_result.get("reason", ""),
                "live_wall_s": live_result.get("wall_s"), "full_run_wall_s": curves[name][-1]["wall_s"]}

    # Reported after every choice above; chooses nothing.
    scores = ({name: test_qoe(args.runs / name, args.test_traces) for name in [ref] + candidates}
              if args.test_traces else {})

    meta = {"network": args.network, "video": sticks["video"], "traces": args.traces, "val_traces": args.val_traces,
            "val_traces_scored": sticks["val_traces"], "test_traces": str(args.test_traces or ""),
            "steps": args.steps, "eval_every": args.eval_every,
            "val_yardsticks": {"bb": sticks["bb"], "optimal": sticks["optimal"]}, "scale_qoe": scale_qoe,
            "top_quartile_final_val": sorted(top_final), "top_quartile_best_val": sorted(top_best),
            "reference_run": ref, "failed": failed, "live": live}
    (args.out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    with open(args.out / "replay.csv", "w", newline="") as handle:
        fields = [key for key in grid[0] if key != "outcome"]
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows({key: row[key] for key in fields} for row in grid)
    with open(args.out / "designs.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["design", "final_val_qoe", "best_val_qoe", "top_quartile_final_val", "top_quartile_best_val",
                         "steps", "wall_s", "cpu_s", "default_s2_stop_steps", "test_qoe_reported_only"])
        for name in [ref] + ranked:
            point, stop = curves[name][-1], default_row["outcome"].get(name, {})
            writer.writerow([name, f"{final_val[name]:.4f}", f"{best_val[name]:.4f}", name in top_final, name in top_best,
                             point["steps"], f"{point['wall_s']:.0f}", f"{point['cpu_s']:.0f}",
                             stop["steps"] if stop.get("stopped") else "",
                             f"{scores[name]:.4f}" if name in scores else ""])

    plot(args, ranked, top, curves, reference, default_row, default.margin * scale_qoe)

    lines = [f"# S2 early stopping on {len(candidates)} designs ({args.network}, video {sticks['video']}, "
             f"{args.steps:,} steps each)", "",
             f"Training traces `{args.traces}`, validation traces `{args.val_traces}` ({sticks['val_traces']} scored), "
             f"validation every {args.eval_every:,} steps; S2 reference = the run `{ref}` "
             f"(`reference`: the seed design designs/pensieve, seed 0; `pensieve-seed1`: the same with seed 1). "
             f"Candidates trained to the full budget with S2 off; the S2 rule (`llmabr.train.early_stop.EarlyStopRule`) "
             f"replayed over their validation curves with the margin on the normalized scale: on these validation "
             f"traces BB scores {sticks['bb']:.3f} and the offline optimum {sticks['optimal']:.3f} QoE/chunk, so a "
             f"margin of 0.1 is {0.1 * scale_qoe:.3f} QoE/chunk.", "",
             f"Top quartile (validation only): the best {len(top_final)} of {len(candidates)} by final validation QoE "
             f"({', '.join(sorted(top_final))}) or by best validation QoE ({', '.join(sorted(top_best))}); stopping any "
             f"of these {len(top)} is a false stop. "
             + (f"Test QoE (`{args.test_traces}`, validation-best policy) was scored after the rules and the live "
                f"check were fixed, and is reported only." if scores else "No test traces scored."), "",
             "| design | final val QoE | best val QoE | top quartile (val) | default S2 stops at | test QoE (reported only) |",
             "|---|---:|---:|:-:|---:|---:|"]
    for name in [ref] + ranked:
        stop = default_row["outcome"].get(name, {})
        lines.append(f"| {name} | {final_val[name]:.3f} | {best_val[name]:.3f} | {'yes' if name in top else ''} | "
                     f"{format(stop['steps'], ',') if stop.get('stopped') else '-'} | "
                     f"{format(scores[name], '.3f') if name in scores else ''} |")
    if failed:
        lines += ["", "Failed runs (not counted): " + "; ".join(f"{n}: {r}" for n, r in failed.items())]
    lines += ["", f"Replay grid (default: margin {default.margin}, patience {default.patience}, min_fraction "
              f"{default.min_fraction}). Saved = share of the candidates' full-budget training steps / wall-clock "
              f"/ trainer CPU time that S2 would not have spent.", "", *grid_table(grid)]
    if live:
        lines += ["", f"Live check: `{live['design']}` trained again with `--early-stop` against the same reference: "
                  f"{'stopped' if live['live_stopped'] else 'NOT stopped'} at {live['live_steps']:,} steps "
                  f"(replay: {live['replayed_stop_steps']:,}); the trainer's own validation yardsticks "
                  f"{live['live_val_yardsticks']}. {live['reason']}"]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def grid_table(rows: list[dict]) -> list[str]:
    lines = ["| min_fraction | margin (QoE) | patience | stopped | steps saved | wall-clock saved | CPU saved | "
             "false stops (top quartile by val) |", "|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        names = f" ({row['false_stop_names']})" if row["false_stop_names"] else ""
        lines.append(f"| {float(row['min_fraction']):.2f} | {float(row['margin']):.2f} ({float(row['margin_qoe']):.3f}) | "
                     f"{row['patience']} | {row['stopped']}/{row['designs']} | {float(row['steps_saved_pct']):.1f} % | "
                     f"{float(row['wall_saved_pct']):.1f} % | {float(row['cpu_saved_pct']):.1f} % | "
                     f"{row['false_stops']}/{row['top_quartile']}{names} |")
    return lines


def plot(args, ranked, top, curves, reference, default_row, margin_qoe) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 5))
    for name in ranked:
        curve = curves[name]
        axes.plot([p["steps"] / 1e3 for p in curve], [p["val_qoe"] for p in curve], "-" if name in top else "--",
                  linewidth=1, label=name)
        stop = default_row["outcome"][name]
        if stop["stopped"]:
            axes.plot(stop["steps"] / 1e3, next(p["val_qoe"] for p in curve if p["steps"] == stop["steps"]), "kx")
    axes.plot([p["steps"] / 1e3 for p in reference], [p["val_qoe"] for p in reference], "k-", linewidth=2.5,
              label=f"S2 reference ({args.reference_run})")
    axes.plot([p["steps"] / 1e3 for p in reference], [p["val_qoe"] - margin_qoe for p in reference], "k:",
              linewidth=1, label=f"reference - default margin ({margin_qoe:.3f} QoE)")
    axes.set_xlabel("env steps (thousands)")
    axes.set_ylabel("validation QoE per chunk")
    axes.set_title(f"S2 on {args.network}: validation curves (solid: top quartile by val; x: default S2 stop)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(args.out / "curves.png", dpi=120)


def recommend(args) -> int:
    """The rule saving the most steps (mean over the types) with no false stop on any type."""
    tables = {}
    for folder in args.results:
        with open(folder / "replay.csv", newline="") as handle:
            tables[folder] = {(float(r["margin"]), int(r["patience"]), float(r["min_fraction"])): r for r in csv.DictReader(handle)}
    keys = set.intersection(*(set(table) for table in tables.values()))
    rows = []
    for key in keys:
        per_type = [tables[folder][key] for folder in args.results]
        rows.append({"key": key, "false_stops": sum(int(r["false_stops"]) for r in per_type),
                     "mean_steps_saved": sum(float(r["steps_saved_pct"]) for r in per_type) / len(per_type),
                     "per_type": per_type})
    # qualifying rules first; ties go to the more cautious rule: more patience (one noisy validation point
    # cannot stop a run), then a wider margin, then later verdicts
    rows.sort(key=lambda row: (row["false_stops"] > 0, -row["mean_steps_saved"], -row["key"][1], -row["key"][0],
                               -row["key"][2]))
    qualifying = [row for row in rows if row["false_stops"] == 0]
    default = EarlyStopConfig()
    names = [folder.name for folder in args.results]
    if len(set(names)) < len(names):
        common = Path(os.path.commonpath([folder.resolve() for folder in args.results]))
        names = [str(folder.resolve().relative_to(common)) for folder in args.results]
    lines = [f"# S2 default from the validation-only replays of {', '.join(names)}", "",
             "Qualifying = no false stop (a top-quartile design by final or best validation QoE) on any type; "
             "ranked by training steps saved, mean over the types.", "",
             "| min_fraction | margin | patience | " + " | ".join(f"{n}: steps saved, false stops" for n in names)
             + " | mean steps saved |", "|---:|---:|---:|" + "---:|" * (len(names) + 1)]
    for row in rows:
        margin, patience, min_fraction = row["key"]
        mark = " **default**" if (margin, patience, min_fraction) == (default.margin, default.patience, default.min_fraction) else ""
        lines.append(f"| {min_fraction:.2f} | {margin:.2f}{mark} | {patience} | "
                     + " | ".join(f"{float(r['steps_saved_pct']):.1f} %, {r['false_stops']}/{r['top_quartile']}"
                                  for r in row["per_type"]) + f" | {row['mean_steps_saved']:.1f} % |")
    if qualifying:
        margin, patience, min_fraction = qualifying[0]["key"]
        lines[2:2] = [f"Recommended: margin {margin:g}, patience {patience}, min_fraction {min_fraction:g} "
                      f"({qualifying[0]['mean_steps_saved']:.1f} % of training steps saved on average, no false stop); "
                      f"current default: margin {default.margin:g}, patience {default.patience}, min_fraction "
                      f"{default.min_fraction:g}.", ""]
    else:
        lines[2:2] = ["No rule in the grid avoids a false stop on every type.", ""]
    text = "\n".join(lines) + "\n"
    for path in [args.out] if args.out else [folder / "recommendation.md" for folder in args.results]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(text)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="train the designs, replay the S2 grid, live check, report")
    run.add_argument("designs", type=Path, help="folder of design folders (experiments/s2_designs.py)")
    run.add_argument("--network", default="broadband")
    run.add_argument("--video", help="video profile (default: the network type's)")
    run.add_argument("--traces", required=True, help="training trace list, e.g. traces/splits/broadband/train.txt")
    run.add_argument("--val-traces", required=True, help="validation trace list, e.g. traces/splits/broadband/val.txt")
    run.add_argument("--test-traces", type=Path, help="test list: scored last, reported only")
    run.add_argument("--steps", type=int, default=150_000)
    run.add_argument("--eval-every", type=int, default=25_000)
    run.add_argument("--runs", type=Path, default=Path("runs/s2v2/broadband"))
    run.add_argument("--jobs", type=int, default=1, help="trainings at once (one per free core)")
    run.add_argument("--no-live", action="store_true", help="skip the live --early-stop check")
    run.add_argument("--reference-run", default="reference",
                     help="run used as S2's reference: 'reference' (seed 0, what S2 uses) or 'pensieve-seed1' "
                          "(sensitivity to the reference's seed; no live check)")
    run.add_argument("--out", required=True, type=Path)
    run.set_defaults(handler=run_experiment)
    pick = commands.add_parser("recommend", help="choose the default rule from several run outputs")
    pick.add_argument("results", type=Path, nargs="+", help="--out folders of `run`")
    pick.add_argument("--out", type=Path, help="write the recommendation here (default: recommendation.md in each folder)")
    pick.set_defaults(handler=recommend)
    args = parser.parse_args()
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
