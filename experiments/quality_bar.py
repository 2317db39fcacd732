"""The quality bar (issue 17): the seed design, trained with the default recipe on one network type,
against every heuristic and the offline optimum on the type's leak-free test list.

    python experiments/quality_bar.py train --network 4g [--seeds 0-4] [--steps 400000] [--set K=V ...]
    python experiments/quality_bar.py score --network 4g        # -> experiments/results/quality_bar/4g/
    python experiments/quality_bar.py table                     # the five rows -> .../quality_bar/README.md
    python experiments/quality_bar.py warmstart --network broadband   # with / without imitation

``train`` runs ``llmabr train designs/pensieve`` per seed into ``runs/quality_bar/<type>/seed-S``
(finished seeds are skipped) on ``traces/splits/<type>/train.txt`` with ``val.txt`` for validation,
keeping every checkpoint. ``score`` plays every checkpoint of every seed on the test list in a
caged process (design code never runs here; the simulator and QoE do) and the heuristics (BB, RB,
BOLA, RobustMPC) and the optimum here. The clock is the caged trainer's CPU time (its process
tree, one torch thread: minutes on one core, the imitation included; the trusted validation runs
in other processes and is not counted). The policy "at" a time is the checkpoint a user would deploy
then: the best on VALIDATION among those saved so far (what ``policy_best.pt`` held); test QoE
never chooses. The bar, per type, over the seeds:

- reach: the median over seeds of the CPU minutes until that policy's test QoE is at least the
  best heuristic's (the max of BB, RB, BOLA, RobustMPC on the same traces) is at most 3;
- end: the policy at the last checkpoint within 20 CPU minutes is at least 5 % above the best
  heuristic (the seeds' mean), and the 95 % CI of the difference, resampling seeds and traces
  grouped by recording (``llmabr.scoring.stats``), excludes 0.

Leak-free test lists: ``traces/splits/broadband/test-idfree.txt`` (FCC units absent from training)
and ``traces/splits/<type>/test.txt`` for the others (traces/splits/README.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmabr.scoring.yardsticks import baseline_rows, compare, comparison_text, normalization, trace_groups  # noqa: E402
from llmabr.train.caged import evaluate_caged  # noqa: E402
from simulator.envs import NETWORK_TYPES  # noqa: E402
from simulator.traces import load_trace_dir  # noqa: E402

HEURISTICS = ("bb", "rb", "bola", "robustmpc")
TYPES = NETWORK_TYPES
REACH_MIN, END_MIN, GAIN = 3.0, 20.0, 0.05
RUNS, RESULTS = ROOT / "runs" / "quality_bar", ROOT / "experiments" / "results" / "quality_bar"


def test_list(network: str) -> Path:
    splits = ROOT / "traces" / "splits" / network
    return splits / ("test-idfree.txt" if network == "broadband" else "test.txt")


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(part) for part in text.split(",")]


# -- train ---------------------------------------------------------------------------------------

def train(args) -> int:
    runs = args.runs or RUNS / args.network
    for seed in parse_seeds(args.seeds):
        out = runs / f"seed-{seed}"
        if (out / "result.json").exists():
            print(f"{out}: done, skipped")
            continue
        command = [sys.executable, "-m", "llmabr.cli.main", "train", str(ROOT / "designs" / "pensieve"),
                   "--network", args.network, "--traces", str(ROOT / "traces" / "splits" / args.network / "train.txt"),
                   "--set", f"val_traces={ROOT / 'traces' / 'splits' / args.network / 'val.txt'}",
                   "--seed", str(seed), "--steps", str(args.steps), "--set", "eval_every_steps=50000",
                   "--set", "keep_checkpoints=true", "--out", str(out)]
        for item in args.set or []:
            command += ["--set", item]
        print(" ".join(command), flush=True)
        if subprocess.run(command, cwd=ROOT).returncode != 0:
            return 1
    return 0


# -- score ---------------------------------------------------------------------------------------

def checkpoint_steps(path: Path) -> int:
    """Env steps of a kept checkpoint, ``checkpoints/policy_<steps>[_final].pt``."""
    return int(Path(path).stem.split("_")[1])


def checkpoint_at(run: Path, steps: int) -> str:
    """The kept checkpoint saved at ``steps``, relative to ``run``."""
    return next(str(path.relative_to(run)) for path in (run / "checkpoints").glob("policy_*.pt")
                if checkpoint_steps(path) == steps)


def checkpoint_rows(run: Path, traces, max_steps: int | None = None) -> list[dict]:
    """One entry per checkpoint (up to ``max_steps``): steps, CPU s, validation QoE (trusted, from
    training) and test rows."""
    result = json.loads((run / "result.json").read_text())
    curve = {point["steps"]: point for point in json.loads((run / "curve.json").read_text())}
    names = [str(path.relative_to(run)) for path in sorted((run / "checkpoints").glob("policy_*.pt"))
             if max_steps is None or checkpoint_steps(path) <= max_steps]
    if not names:
        raise SystemExit(f"{run}: no checkpoints (train with --set keep_checkpoints=true)")
    scored = evaluate_caged(run, traces, result["video"], result["config"]["mode"], result["config"]["qoe"], names,
                            wall_s=3600.0)
    points = []
    for name in names:
        steps = checkpoint_steps(name)
        point = curve[steps]
        rows = scored[name]
        points.append({"run": run.name, "steps": steps, "cpu_s": point["cpu_s"], "val_qoe": point["val_qoe"],
                       "test_qoe": float(np.mean([row["qoe_per_chunk"] for row in rows])), "rows": rows})
    points.sort(key=lambda p: (p["cpu_s"], p["steps"]))
    best = None
    for point in points:  # what policy_best.pt held at each moment: the validation-best so far
        if best is None or point["val_qoe"] > best["val_qoe"]:
            best = point
        point["selected"] = best
    return points


def at_minutes(points: list[dict], minutes: float) -> dict | None:
    before = [p for p in points if p["cpu_s"] <= minutes * 60.0]
    return before[-1]["selected"] if before else None


def minutes_to_reach(points: list[dict], target: float) -> float:
    return next((p["cpu_s"] / 60.0 for p in points if p["selected"]["test_qoe"] >= target), float("inf"))


def gain(qoe: float, reference: float) -> float:
    return (qoe - reference) / abs(reference)


def score(args) -> int:
    network = args.network
    runs = sorted(run for run in (args.runs or RUNS / network).glob("seed-*") if (run / "result.json").exists())
    if not runs:
        raise SystemExit(f"no runs under {args.runs or RUNS / network}: run `quality_bar.py train` first")
    out = args.out or RESULTS / network
    out.mkdir(parents=True, exist_ok=True)
    traces_path = args.test_traces or test_list(network)
    traces = load_trace_dir(traces_path)
    video = json.loads((runs[0] / "result.json").read_text())["video"]
    config = json.loads((runs[0] / "result.json").read_text())["config"]
    baselines = baseline_rows(traces, video, config["mode"], config["qoe"], names=(*HEURISTICS, "optimal"),
                              cache_dir=RUNS / "cache")
    means = {name: float(np.mean([row["qoe_per_chunk"] for row in rows])) for name, rows in baselines.items()}
    best_name = max(HEURISTICS, key=lambda name: means[name])
    target = means[best_name]
    curves = {run.name: checkpoint_rows(run, traces, args.max_steps) for run in runs}

    with open(out / "curves.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", "steps", "cpu_s", "val_qoe", "test_qoe", "selected_steps", "selected_test_qoe"])
        for points in curves.values():
            for p in points:
                writer.writerow([p["run"], p["steps"], f"{p['cpu_s']:.1f}", f"{p['val_qoe']:.4f}", f"{p['test_qoe']:.4f}",
                                 p["selected"]["steps"], f"{p['selected']['test_qoe']:.4f}"])

    per_seed = []
    for name, points in curves.items():
        final = at_minutes(points, END_MIN)
        early = at_minutes(points, REACH_MIN)
        per_seed.append({"run": name, "reach_min": minutes_to_reach(points, target),
                         "qoe_at_3_min": None if early is None else early["test_qoe"],
                         "final_steps": final["steps"], "final_qoe": final["test_qoe"],
                         "last_cpu_min": points[-1]["cpu_s"] / 60.0, "final_rows": final["rows"]})
    stats = compare({"policy": [seed["final_rows"] for seed in per_seed], **{k: [v] for k, v in baselines.items()}},
                    trace_groups(baselines["bb"]), pairs=[("policy", name) for name in (*HEURISTICS, "optimal")])
    difference = stats.difference("policy", best_name)
    floor, ceiling = normalization(baselines)
    reach = float(np.median([seed["reach_min"] for seed in per_seed]))
    final_mean = stats.policies["policy"].mean
    summary = {
        "network": network, "test_traces": str(Path(traces_path).relative_to(ROOT)) if Path(traces_path).is_absolute()
        else str(traces_path), "n_traces": len(traces), "n_groups": stats.n_groups, "video": video,
        "seeds": len(per_seed), "baselines": means, "best_heuristic": best_name, "target": target,
        "reach_min_median": reach, "reach_min": [seed["reach_min"] for seed in per_seed],
        "final_qoe_mean": final_mean, "final_qoe": [seed["final_qoe"] for seed in per_seed],
        "last_cpu_min": [seed["last_cpu_min"] for seed in per_seed],
        "gain_mean": gain(final_mean, target), "gain_median": float(np.median([gain(s["final_qoe"], target)
                                                                                 for s in per_seed])),
        "difference": [difference.mean, difference.low, difference.high],
        "normalized": [stats.normalized["policy"].mean, stats.normalized["policy"].low, stats.normalized["policy"].high],
        "normalized_best_heuristic": (target - floor) / (ceiling - floor),
        "versus": {name: [stats.difference("policy", name).mean, stats.difference("policy", name).low,
                          stats.difference("policy", name).high] for name in (*HEURISTICS, "optimal")},
    }
    summary["reach_ok"] = reach <= REACH_MIN
    summary["end_ok"] = summary["gain_mean"] >= GAIN and difference.low > 0
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    plot(out / "curves.png", network, curves, means, best_name)
    text = row_text(summary)
    (out / "summary.md").write_text(f"# Quality bar, {network}\n\n{TABLE_HEAD}\n{text}\n\n" + seed_table(per_seed, target)
                                    + "\n")
    print(TABLE_HEAD + "\n" + text)
    return 0


def plot(path: Path, network: str, curves: dict, means: dict, best_name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    for name, points in curves.items():
        axes.step([p["cpu_s"] / 60 for p in points], [p["selected"]["test_qoe"] for p in points], where="post",
                  linewidth=1.5, label=name)
    for name in ("robustmpc", best_name, "optimal"):
        axes.axhline(means[name], linestyle="--" if name != "optimal" else ":", linewidth=1, color="black"
                     if name == best_name else "grey", label=f"{name} {means[name]:.3f}")
    axes.axhline(means[best_name] + GAIN * abs(means[best_name]), color="green", linewidth=1, label="best heuristic +5 %")
    axes.axvline(REACH_MIN, color="grey", linewidth=0.5)
    axes.set_xlabel("training CPU minutes (one core, imitation included)")
    axes.set_ylabel("test QoE per chunk of the validation-best policy")
    axes.set_title(f"{network}: seed design, default recipe")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


TABLE_HEAD = ("| type | test traces (recordings) | best heuristic | its QoE | optimum | seeds | minutes to best heuristic "
              "(median) | QoE at end (mean) | vs best heuristic | 95 % CI of the difference | normalized (CI) | CPU min "
              "at end | bar |\n|---|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|---|")


def row_text(s: dict) -> str:
    low, high = s["difference"][1], s["difference"][2]
    bar = ("meets both" if s["reach_ok"] and s["end_ok"] else
           "reach only" if s["reach_ok"] else "+5 % only" if s["end_ok"] else "neither")
    reach = "never" if s["reach_min_median"] == float("inf") else f"{s['reach_min_median']:.1f}"
    return (f"| {s['network']} | {s['test_traces']}: {s['n_traces']} ({s['n_groups']}) | {s['best_heuristic']} | "
            f"{s['target']:.3f} | {s['baselines']['optimal']:.3f} | {s['seeds']} | {reach} | {s['final_qoe_mean']:.3f} | "
            f"{100 * s['gain_mean']:+.1f} % | {low:+.3f} to {high:+.3f} | {s['normalized'][0]:.2f} "
            f"({s['normalized'][1]:.2f} to {s['normalized'][2]:.2f}); best heuristic {s['normalized_best_heuristic']:.2f} | "
            f"{max(s['last_cpu_min']):.1f} | {bar} |")


def seed_table(per_seed: list[dict], target: float) -> str:
    lines = ["| seed run | minutes to best heuristic | test QoE at 3 min | checkpoint at end (steps) | test QoE at end | "
             "vs best heuristic | CPU min trained |", "|---|---:|---:|---:|---:|---:|---:|"]
    for s in per_seed:
        reach = "never" if s["reach_min"] == float("inf") else f"{s['reach_min']:.1f}"
        q3 = "-" if s["qoe_at_3_min"] is None else f"{s['qoe_at_3_min']:.3f}"
        lines.append(f"| {s['run']} | {reach} | {q3} | {s['final_steps']:,} | {s['final_qoe']:.3f} | "
                     f"{100 * gain(s['final_qoe'], target):+.1f} % | {s['last_cpu_min']:.1f} |")
    return "\n".join(lines)


def table(args) -> int:
    rows = [json.loads((RESULTS / network / "summary.json").read_text()) for network in TYPES
            if (RESULTS / network / "summary.json").exists()]
    text = (f"# Quality bar: the seed design with the default recipe, five network types\n\n"
            f"Written by `python experiments/quality_bar.py table` from `*/summary.json` (see the script's docstring "
            f"for the bar's definition and the commands).\n\n{TABLE_HEAD}\n" + "\n".join(row_text(r) for r in rows) + "\n")
    (RESULTS / "README.md").write_text(text)
    print(text)
    return 0


# -- warm start with / without -------------------------------------------------------------------

def warmstart(args) -> int:
    """Time to the best heuristic's VALIDATION QoE and the end QoE (validation and test of the validation-best
    checkpoint), per seed, for runs with the default recipe (``runs/quality_bar/T``) and from scratch
    (``runs/quality_bar/cold-T``: ``warm_start=none`` with the from-scratch PPO recipe), both cut at the
    same CPU budget; the test difference between the arms with a seed-and-trace CI."""
    from llmabr.train.config import from_dict
    from llmabr.train.data import load_data

    network = args.network
    arms = {arm: sorted(run for run in folder.glob("seed-*") if (run / "result.json").exists())
            for arm, folder in (("imitation + PPO", RUNS / network), ("PPO from scratch", RUNS / f"cold-{network}"))}
    arms = {arm: runs for arm, runs in arms.items() if runs}
    curves = {run: sorted(json.loads((run / "curve.json").read_text()), key=lambda p: p["cpu_s"])
              for runs in arms.values() for run in runs}
    # One training budget for both arms: the CPU time every run reached (imitation included)
    budget_min = min(END_MIN, min(curve[-1]["cpu_s"] for curve in curves.values()) / 60.0)
    lines = [f"## {network}: imitation warm start (default recipe) vs from scratch, at equal CPU budget", "",
             f"Both arms cut at {budget_min:.2f} CPU minutes of training (the least any run reached; imitation "
             "included): the policy at the end is the validation-best checkpoint within that budget.", "",
             "| arm | seeds | best heuristic on validation | CPU min to reach it (median; per seed) | validation QoE "
             "at end (mean) | test QoE at end (mean) | CPU min trained |", "|---|---:|---|---|---:|---:|---:|"]
    traces = load_trace_dir(test_list(network))
    test_rows: dict[str, list] = {}  # arm -> one row list per seed: the paired difference's input
    for arm, runs in arms.items():
        result = json.loads((runs[0] / "result.json").read_text())
        _, val_traces, video = load_data(from_dict(result["config"]))
        val = baseline_rows(val_traces, video, result["config"]["mode"], result["config"]["qoe"], names=HEURISTICS,
                            cache_dir=RUNS / "cache")
        val_means = {name: float(np.mean([row["qoe_per_chunk"] for row in rows])) for name, rows in val.items()}
        best = max(HEURISTICS, key=lambda name: val_means[name])
        reach, val_end, test_end, cpu = [], [], [], []
        for run in runs:
            within = [p for p in curves[run] if p["cpu_s"] <= budget_min * 60.0]
            reach.append(next((p["cpu_s"] / 60 for p in within if p["val_qoe"] >= val_means[best]), float("inf")))
            best_point = max(within, key=lambda p: p["val_qoe"])
            val_end.append(best_point["val_qoe"])
            name = checkpoint_at(run, best_point["steps"])
            rows = evaluate_caged(run, traces, result["video"], result["config"]["mode"], result["config"]["qoe"], name)
            test_end.append(float(np.mean([row["qoe_per_chunk"] for row in rows])))
            test_rows.setdefault(arm, []).append(rows)
            cpu.append(within[-1]["cpu_s"] / 60)
        per = ", ".join("never" if r == float("inf") else f"{r:.1f}" for r in reach)
        median = float(np.median(reach))
        lines.append(f"| {arm} | {len(runs)} | {best} {val_means[best]:.3f} | "
                     f"{'never' if median == float('inf') else f'{median:.1f}'} ({per}) | {np.mean(val_end):.3f} | "
                     f"{np.mean(test_end):.3f} | {np.mean(cpu):.1f} |")
    if len(test_rows) == 2:
        first, second = list(test_rows)
        stats = compare(test_rows, trace_groups(test_rows[first][0]), pairs=[(first, second)])
        verdict_text, difference_text = comparison_text(stats, first, second, unit=" per chunk")
        lines += ["", f"Test QoE at end, {difference_text}, resampling seeds and traces grouped by recording: "
                  f"**{verdict_text}**. Test list: `{test_list(network).relative_to(ROOT)}`."]
    text = "\n".join(lines) + "\n"
    out = RESULTS / f"warm_start_{network}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("train", "score", "warmstart"):
        sub = commands.add_parser(name)
        sub.add_argument("--network", required=True, choices=TYPES)
        sub.add_argument("--runs", type=Path, help="folder of seed-S runs (default runs/quality_bar/<type>)")
        if name == "train":
            sub.add_argument("--seeds", default="0-4")
            sub.add_argument("--steps", type=int, default=400_000)
            sub.add_argument("--set", action="append", metavar="KEY=VALUE")
        if name == "score":
            sub.add_argument("--test-traces", type=Path, help="default: the type's leak-free test list")
            sub.add_argument("--out", type=Path)
            sub.add_argument("--max-steps", type=int, help="ignore checkpoints after this many steps (one budget for "
                             "seeds trained for different lengths)")
    commands.add_parser("table")
    args = parser.parse_args()
    return {"train": train, "score": score, "table": table, "warmstart": warmstart}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
