"""``llmabr eval RUN [RUN ...] --traces DIR``: the deterministic test protocol on held-out traces, against baselines.

Several RUN folders are the training seeds of one design. Every number is computed in this
process, which never executes design code: the design only answers levels from a caged process
(``llmabr.scoring.actor``). Baselines and the offline optimum run here. Reported per policy: mean
QoE per chunk, its normalized score ((QoE - BB) / (optimal - BB)), both with 95 % CIs that resample
training seeds and traces (grouped by recording), and the design's paired difference to each
baseline with a verdict. Writes into ``RUN/eval-<traces folder>/`` (the first RUN):
``summary.json``, ``per_trace.csv`` (every seed and baseline), ``per_trace.json`` (the first RUN's
rows) and ``cdf.png``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parser(commands) -> None:
    evaluate = commands.add_parser("eval", help="score trained run(s) on test traces (QoE and normalized score with "
                                                "seed-and-trace CIs, verdicts, CSV, CDF plot)")
    evaluate.add_argument("run", type=Path, nargs="+", help="run folder(s) made by llmabr train: the seeds of one design")
    evaluate.add_argument("--traces", required=True, type=Path, help="held-out test traces")
    evaluate.add_argument("--video", help="video profile (default: the one the run trained with)")
    evaluate.add_argument("--weights", default="policy_best.pt", help="policy_best.pt (best on validation) or policy_final.pt")
    evaluate.add_argument("--baselines", default="bb,rb,bola,robustmpc,optimal",
                          help="comma-separated (bb and optimal give the normalized score), or 'none'")
    evaluate.add_argument("--out", type=Path, help="output folder (default: RUN/eval-<traces folder name>)")
    evaluate.add_argument("--json", action="store_true", help="print the summary as JSON")
    evaluate.set_defaults(handler=run)


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from llmabr.scoring.yardsticks import baseline_rows, compare, comparison_text, trace_groups
    from llmabr.train.caged import evaluate_caged
    from llmabr.train.evaluate import plot_cdf, summarize, write_csv
    from simulator.traces import TraceError, load_trace_dir
    from simulator.video import VideoProfileError, load_profile

    try:
        results = [json.loads((run_dir / "result.json").read_text()) for run_dir in args.run]
        config = results[0]["config"]
        video_name = args.video or results[0]["video"]
        video = load_profile(video_name)
        traces = load_trace_dir(args.traces)
    except (OSError, ValueError, KeyError, TraceError, VideoProfileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    designs = {result.get("design", "design") for result in results}
    if len(designs) > 1:
        print(f"error: the runs are of different designs ({', '.join(sorted(designs))}); give the seeds of one design",
              file=sys.stderr)
        return 2
    for run_dir in args.run:
        if not (run_dir / args.weights).exists():
            print(f"error: {run_dir / args.weights} missing (did training finish?)", file=sys.stderr)
            return 2
    out = (args.out or args.run[0] / f"eval-{args.traces.resolve().name}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    design_name = designs.pop()
    seeds = []
    for run_dir in args.run:
        try:
            seeds.append(evaluate_caged(run_dir, traces, video_name, config["mode"], config["qoe"], args.weights))
        except RuntimeError as error:
            print(f"error: {run_dir}: {error}", file=sys.stderr)
            return 1
    names = [] if args.baselines == "none" else [b.strip() for b in args.baselines.split(",") if b.strip()]
    try:
        baselines = baseline_rows(traces, video, config["mode"], config["qoe"], names=names) if names else {}
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
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
            entry[f"{design_name}_minus_this"] = {"mean": stats.difference(design_name, name).mean,
                                                  "ci95": (stats.difference(design_name, name).low,
                                                           stats.difference(design_name, name).high),
                                                  "verdict": verdict, "text": text}
        summary[name] = entry
    meta = {"runs": [str(r) for r in args.run], "traces": str(args.traces), "video": video_name, "weights": args.weights,
            "n_traces": stats.n_traces, "n_recordings": stats.n_groups,
            "ci": "95 % percentile bootstrap, 2000 resamples: training seeds, then recordings (paired across policies)",
            "scored_by": "trusted: this process ran the simulator; the design answered levels from a caged process"}
    (out / "summary.json").write_text(json.dumps({**meta, "policies": summary}, indent=1))
    (out / "per_trace.json").write_text(json.dumps(seeds[0]))  # the first RUN's rows (its eval folder is here)
    write_csv(out / "per_trace.csv", {(f"{design_name}/seed{i}" if len(seeds) > 1 else design_name): rows
                                      for i, rows in enumerate(seeds)} | baselines)
    plot_cdf(out / "cdf.png", {design_name: seeds[0], **baselines},
             f"{design_name} vs baselines on {args.traces.name} ({video_name})")
    if args.json:
        print(json.dumps(summary))
        return 0
    table = Table(title=f"{len(traces)} test traces ({stats.n_groups} recordings) in {args.traces} ({video_name}); "
                        f"{design_name}: {len(seeds)} seed(s)")
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
    print("CIs: training seeds and recordings resampled together (paired); normalized: BB = 0, offline optimum = 1")
    print(f"wrote {out / 'summary.json'}, {out / 'per_trace.csv'}, {out / 'cdf.png'}")
    return 0
