"""``llmabr eval RUN --traces DIR``: the deterministic test protocol on held-out traces, against baselines.

The trained design is scored in the cage; the baselines (trusted code) in this process. Writes
into ``RUN/eval-<traces folder>/``: ``summary.json``, ``per_trace.csv`` and ``cdf.png``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parser(commands) -> None:
    evaluate = commands.add_parser("eval", help="score a trained run on test traces (QoE with 95%% CIs, CSV, CDF plot)")
    evaluate.add_argument("run", type=Path, help="run folder made by llmabr train")
    evaluate.add_argument("--traces", required=True, type=Path, help="held-out test traces")
    evaluate.add_argument("--video", help="video profile (default: the one the run trained with)")
    evaluate.add_argument("--weights", default="policy_best.pt", help="policy_best.pt (best on validation) or policy_final.pt")
    evaluate.add_argument("--baselines", default="bb,rb,bola,robustmpc", help="comma-separated, or 'none'")
    evaluate.add_argument("--out", type=Path, help="output folder (default: RUN/eval-<traces folder name>)")
    evaluate.add_argument("--json", action="store_true", help="print the summary as JSON")
    evaluate.set_defaults(handler=run)


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from llmabr.train.caged import evaluate_caged
    from llmabr.train.evaluate import plot_cdf, summarize, write_csv
    from simulator.baselines import make_baseline
    from simulator.layout import Layout
    from simulator.traces import TraceError, load_trace_dir
    from simulator.video import VideoProfileError, load_profile

    try:
        result = json.loads((args.run / "result.json").read_text())
        config = result["config"]
        video_name = args.video or result["video"]
        video = load_profile(video_name)
        traces = load_trace_dir(args.traces)
    except (OSError, ValueError, KeyError, TraceError, VideoProfileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not (args.run / args.weights).exists():
        print(f"error: {args.run / args.weights} missing (did training finish?)", file=sys.stderr)
        return 2
    out = (args.out or args.run / f"eval-{args.traces.resolve().name}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        design_rows = evaluate_caged(args.run, args.traces, video_name, config["mode"], config["qoe"], args.weights, out)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    design_name = result.get("design", "design")
    rows = {design_name: design_rows}
    layout = Layout(16, video.n_levels)
    from llmabr.train.evaluate import evaluate

    for name in [b.strip() for b in args.baselines.split(",") if b.strip() and args.baselines != "none"]:
        rows[name] = evaluate(make_baseline(name, video, layout), traces, video, mode=config["mode"], qoe=config["qoe"])
    summary = {name: summarize(policy_rows) for name, policy_rows in rows.items()}
    (out / "summary.json").write_text(json.dumps({"run": str(args.run), "traces": str(args.traces), "video": video_name,
                                                   "weights": args.weights, "policies": summary}, indent=1))
    write_csv(out / "per_trace.csv", rows)
    plot_cdf(out / "cdf.png", rows, f"{design_name} vs baselines on {args.traces.name} ({video_name})")
    if args.json:
        print(json.dumps(summary))
        return 0
    table = Table(title=f"{len(traces)} test traces in {args.traces} ({video_name})")
    for column in ("policy", "QoE/chunk", "95% CI", "QoE/trace", "kbps", "rebuffer %", "switches/min"):
        table.add_column(column, justify="right")
    for name, stats in summary.items():
        low, high = stats["qoe_per_chunk_ci95"]
        table.add_row(name, f"{stats['qoe_per_chunk']:.3f}", f"[{low:.3f}, {high:.3f}]", f"{stats['qoe_per_trace']:.2f}",
                      f"{stats['bitrate_kbps']:.0f}", f"{100 * stats['rebuffer_ratio']:.2f}",
                      f"{stats['switches_per_min']:.2f}")
    Console().print(table)
    print(f"wrote {out / 'summary.json'}, {out / 'per_trace.csv'}, {out / 'cdf.png'}")
    return 0
