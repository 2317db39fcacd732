"""``llmabr eval RUN [RUN ...] --traces DIR`` / ``llmabr eval --policy DIR --traces DIR``: the deterministic
test protocol on held-out traces, against baselines.

Several RUN folders are the training seeds of one design. ``--policy DIR`` scores an exported
policy instead (``policy.onnx`` + ``layout.json`` from ``llmabr export``, or a shipped
``designs/<type>/<name>/``): layout.json is checked against the simulator's row
(``llmabr.export.folder``) and the graph runs with onnxruntime in a caged process
(``llmabr.scoring.actor.OnnxActor``); the video, mode and QoE default to what the export recorded.
Every number is computed in this process, which never executes design code (nor parses the
graph): the policy only answers levels from a caged process (``llmabr.scoring.actor``). Baselines
and the offline optimum run here. Reported per policy: mean QoE per chunk, its normalized score
((QoE - BB) / (optimal - BB)), both with 95 % CIs that resample training seeds and traces (grouped by
recording), and the policy's paired difference to each baseline with a verdict. Writes
``summary.json``, ``per_trace.csv`` (every seed and baseline), ``per_trace.json`` (the first RUN's
rows, or the exported policy's with its levels) and ``cdf.png`` into ``--out``, by default
``RUN/eval-<traces folder>/`` (the first RUN) or ``runs/eval-<policy folder>-<traces folder>/``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

MODES, QOES = ("default", "pensieve"), ("lin", "log", "hd")


def add_parser(commands) -> None:
    from llmabr.cli.traces_cmd import add_trace_format

    evaluate = commands.add_parser("eval", help="score trained run(s) or an exported policy on test traces (QoE and "
                                                "normalized score with seed-and-trace CIs, verdicts, CSV, CDF plot)")
    evaluate.add_argument("run", type=Path, nargs="*", help="run folder(s) made by llmabr train: the seeds of one design")
    evaluate.add_argument("--policy", type=Path, help="instead of RUN: a policy folder (policy.onnx + layout.json from "
                                                      "llmabr export, or a shipped designs/<type>/<name>/)")
    evaluate.add_argument("--traces", required=True, type=Path, help="held-out test traces")
    add_trace_format(evaluate)
    evaluate.add_argument("--video", help="video profile: a name, a profile .json or a folder (default: the one the "
                                          "run trained with, or the policy folder's)")
    evaluate.add_argument("--mode", choices=MODES, help="simulator mode (default: the run's or the policy folder's)")
    evaluate.add_argument("--qoe", choices=QOES, help="QoE variant (default: the run's or the policy folder's)")
    evaluate.add_argument("--weights", default="policy_best.pt", help="policy_best.pt (best on validation) or "
                                                                      "policy_final.pt (RUN only)")
    evaluate.add_argument("--baselines", default="bb,rb,bola,robustmpc,optimal",
                          help="comma-separated (bb and optimal give the normalized score), or 'none'")
    evaluate.add_argument("--out", type=Path, help="output folder (default: RUN/eval-<traces folder name>, or "
                                                   "runs/eval-<policy folder name>-<traces folder name>)")
    evaluate.add_argument("--json", action="store_true", help="print the summary as JSON")
    evaluate.set_defaults(handler=run)


@dataclass
class Scored:
    """The scored policy: its per-seed rows and what the baselines must be played with."""

    name: str
    seeds: list[list[dict]]
    video: object  # simulator.video.VideoProfile
    mode: str
    qoe: str
    out: Path
    meta: dict
    notes: list[str] = field(default_factory=list)
    first_rows: list[dict] | None = None  # per_trace.json's content (default: the first seed's rows)


class EvalError(Exception):
    """A reason to stop before scoring; ``code`` is the exit status (2: bad input, 1: scoring failed)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def run(args) -> int:
    from simulator.traces import TraceError, load_trace_dir

    if bool(args.run) == (args.policy is not None):
        print("error: give RUN folder(s) (trained runs) or --policy DIR (an exported policy), "
              + ("not both" if args.run else "one of them"), file=sys.stderr)
        return 2
    try:
        traces = load_trace_dir(args.traces, fmt=args.trace_format)
    except (OSError, ValueError, TraceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        scored = score_policy(args, traces) if args.policy is not None else score_runs(args, traces)
    except EvalError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.code
    return report(args, traces, scored)


def score_runs(args, traces) -> Scored:
    """The trained runs' torch policies, each scored through its caged design."""
    from llmabr.train.caged import evaluate_caged
    from simulator.video import VideoProfileError, load_profile

    try:
        results = [json.loads((run_dir / "result.json").read_text()) for run_dir in args.run]
        config = results[0]["config"]
        video_name = args.video or results[0]["video"]
        video = load_profile(video_name)
    except (OSError, ValueError, KeyError, VideoProfileError) as error:
        raise EvalError(str(error)) from None
    designs = {result.get("design", "design") for result in results}
    if len(designs) > 1:
        raise EvalError(f"the runs are of different designs ({', '.join(sorted(designs))}); give the seeds of one design")
    for run_dir in args.run:
        if not (run_dir / args.weights).exists():
            raise EvalError(f"{run_dir / args.weights} missing (did training finish?)")
    mode, qoe = args.mode or config["mode"], args.qoe or config["qoe"]
    seeds = []
    for run_dir in args.run:
        try:
            seeds.append(evaluate_caged(run_dir, traces, video_name, mode, qoe, args.weights))
        except RuntimeError as error:
            raise EvalError(f"{run_dir}: {error}", code=1) from None
    out = (args.out or args.run[0] / f"eval-{args.traces.resolve().name}").resolve()
    meta = {"runs": [str(r) for r in args.run], "weights": args.weights}
    return Scored(designs.pop(), seeds, video, mode, qoe, out, meta)


def score_policy(args, traces) -> Scored:
    """An exported policy folder: layout.json checked, the graph played through the caged ONNX actor."""
    from llmabr.export.folder import PolicyFolderError, read_policy_folder
    from llmabr.scoring.actor import ScoringError, score_onnx
    from simulator.config import SimConfig, test_config
    from simulator.video import VideoProfileError, load_profile

    try:
        policy = read_policy_folder(args.policy)
    except PolicyFolderError as error:
        raise EvalError(str(error)) from None
    chosen = {"video": args.video or policy.video, "mode": args.mode or policy.mode, "qoe": args.qoe or policy.qoe}
    absent = [name for name, value in chosen.items() if not value]
    if absent:
        raise EvalError(f"{args.policy}: layout.json does not record the {', '.join(absent)} the policy was trained "
                        f"with; give {' '.join(f'--{name}' for name in absent)}")
    if chosen["mode"] not in MODES or chosen["qoe"] not in QOES:
        raise EvalError(f"{args.policy / 'layout.json'}: mode {chosen['mode']!r} / qoe {chosen['qoe']!r} are not "
                        f"this simulator's ({', '.join(MODES)} / {', '.join(QOES)}); give --mode and --qoe")
    try:
        video = load_profile(chosen["video"])
    except VideoProfileError as error:
        source = "" if args.video else " (the profile layout.json names; give --video NAME|FILE|FOLDER)"
        raise EvalError(f"{error}{source}") from None
    protocol_history = test_config().history_len
    if policy.history_len != protocol_history:
        raise EvalError(f"{args.policy / 'layout.json'}: history_len {policy.history_len}; the simulator's test "
                        f"protocol builds rows with {protocol_history} past chunks, so this policy cannot be scored "
                        "here (export it from a run of this simulator)")
    if policy.n_levels != video.n_levels:
        raise EvalError(f"{args.policy / 'layout.json'}: the policy has {policy.n_levels} levels (ladder_kbps "
                        f"{policy.layout['ladder_kbps']}), video profile {video.name!r} has {video.n_levels}; give "
                        f"--video with a {policy.n_levels}-level profile")
    notes = []
    for name, value in chosen.items():
        recorded = policy.video if name == "video" else getattr(policy, name)
        if recorded and value != recorded:
            notes.append(f"{name} {value} (the policy was exported with {recorded})")
    if [float(kbps) for kbps in policy.layout["ladder_kbps"]] != [float(kbps) for kbps in video.bitrates_kbps]:
        notes.append(f"the video's ladder {[float(k) for k in video.bitrates_kbps]} kbps is not the exported one "
                     f"{policy.layout['ladder_kbps']} kbps")
    chunks_total = SimConfig(mode=chosen["mode"]).chunks_per_episode(video.n_chunks)
    if policy.layout["chunks_total"] != chunks_total:
        notes.append(f"episodes of {chunks_total} chunks (the policy was exported for {policy.layout['chunks_total']})")
    try:
        rows, levels = score_onnx(policy.graph_path.read_bytes(), policy.design, traces, video, chosen["mode"],
                                  chosen["qoe"], history_len=policy.history_len, input_name=policy.layout["input"],
                                  output_name=policy.layout["output"])
    except ScoringError as error:
        raise EvalError(f"{policy.graph_path}: scoring failed: {error}", code=1) from None
    out = (args.out or Path("runs") / f"eval-{args.policy.resolve().name}-{args.traces.resolve().name}").resolve()
    meta = {"policy": str(args.policy), "graph": "policy.onnx, run by onnxruntime in a caged process"}
    first_rows = [{**row, "levels": [int(level) for level in trace_levels]} for row, trace_levels in zip(rows, levels)]
    return Scored(policy.design, [rows], video, chosen["mode"], chosen["qoe"], out, meta, notes, first_rows)


def report(args, traces, scored: Scored) -> int:
    """Baselines, statistics, the output files and the table (or JSON) for a scored policy."""
    from rich.console import Console
    from rich.table import Table

    from llmabr.scoring.yardsticks import baseline_rows, compare, comparison_text, trace_groups
    from llmabr.train.evaluate import plot_cdf, summarize, write_csv

    design_name, seeds, video_name = scored.name, scored.seeds, scored.video.name
    names = [] if args.baselines == "none" else [b.strip() for b in args.baselines.split(",") if b.strip()]
    try:
        baselines = baseline_rows(traces, scored.video, scored.mode, scored.qoe, names=names) if names else {}
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if design_name in baselines:  # a design called "bb" must not overwrite the baseline's rows
        design_name = f"{design_name} (policy)"
    scored.out.mkdir(parents=True, exist_ok=True)
    out = scored.out
    rows_by_policy = {design_name: seeds, **{name: [rows] for name, rows in baselines.items()}}
    pairs = [(design_name, name) for name in baselines]
    stats = compare(rows_by_policy, trace_groups(seeds[0]), pairs=pairs)
    summary = {}
    for name, seed_rows in rows_by_policy.items():
        flat = [row for rows in seed_rows for row in rows]
        entry = summarize(flat)
        estimate = stats.policies[name]
        entry.update(seeds=len(seed_rows), qoe_per_chunk=estimate.mean, qoe_per_chunk_ci95=(estimate.low, estimate.high))
        if name in stats.normalized:
            norm = stats.normalized[name]
            entry.update(normalized=norm.mean, normalized_ci95=(norm.low, norm.high))
        if name != design_name:
            verdict, text = comparison_text(stats, design_name, name)
            difference = stats.difference(design_name, name)
            entry[f"{design_name}_minus_this"] = {"mean": difference.mean, "ci95": (difference.low, difference.high),
                                                  "verdict": verdict, "text": text}
        summary[name] = entry
    meta = {**scored.meta, "traces": str(args.traces), "video": video_name, "mode": scored.mode, "qoe": scored.qoe,
            "n_traces": stats.n_traces, "n_recordings": stats.n_groups, "notes": scored.notes,
            "ci": "95 % percentile bootstrap, 2000 resamples: training seeds, then recordings (paired across policies)",
            "scored_by": "trusted: this process ran the simulator; the policy answered levels from a caged process"}
    (out / "summary.json").write_text(json.dumps({**meta, "policies": summary}, indent=1))
    (out / "per_trace.json").write_text(json.dumps(scored.first_rows or seeds[0]))
    write_csv(out / "per_trace.csv", {(f"{design_name}/seed{i}" if len(seeds) > 1 else design_name): rows
                                      for i, rows in enumerate(seeds)} | baselines)
    plot_cdf(out / "cdf.png", {design_name: seeds[0], **baselines},
             f"{design_name} vs baselines on {args.traces.name} ({video_name})")
    if args.json:
        print(json.dumps(summary))
        return 0
    what = "exported policy (ONNX)" if args.policy is not None else f"{len(seeds)} seed(s)"
    table = Table(title=f"{len(traces)} test traces ({stats.n_groups} recordings) in {args.traces} ({video_name}, "
                        f"{scored.mode} mode, {scored.qoe} QoE); {design_name}: {what}")
    for column in ("policy", "QoE/chunk", "95% CI", "normalized", "95% CI", "kbps", "rebuffer %", "switches/min",
                   f"{design_name} vs it"):
        table.add_column(column, justify="right")
    for name, entry in summary.items():
        low, high = entry["qoe_per_chunk_ci95"]
        norm = (f"{entry['normalized']:.3f}", f"[{entry['normalized_ci95'][0]:.3f}, {entry['normalized_ci95'][1]:.3f}]") \
            if "normalized" in entry else ("-", "-")
        versus = entry.get(f"{design_name}_minus_this")
        table.add_row(name, f"{entry['qoe_per_chunk']:.3f}", f"[{low:.3f}, {high:.3f}]", *norm,
                      f"{entry['bitrate_kbps']:.0f}", f"{100 * entry['rebuffer_ratio']:.2f}",
                      f"{entry['switches_per_min']:.2f}",
                      "-" if versus is None else f"{versus['mean']:+.3f} {versus['verdict']}")
    Console(width=200).print(table)
    for note in scored.notes:
        print(f"note: {note}")
    print("CIs: training seeds and recordings resampled together (paired); normalized: BB = 0, offline optimum = 1")
    print(f"wrote {out / 'summary.json'}, {out / 'per_trace.csv'}, {out / 'cdf.png'}")
    return 0
