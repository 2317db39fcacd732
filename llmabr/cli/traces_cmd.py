"""``llmabr traces stats DIR`` and ``llmabr traces synth --type T --count N --out DIR``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

STAT_ROWS = (
    ("count", "traces", "{:.0f}"),
    ("hours", "hours", "{:.2f}"),
    ("mean_mbps", "mean Mbps", "{:.3f}"),
    ("median_mbps", "median Mbps", "{:.3f}"),
    ("p10_mbps", "p10 Mbps", "{:.3f}"),
    ("p90_mbps", "p90 Mbps", "{:.3f}"),
    ("zero_share", "zero-bandwidth time", "{:.2%}"),
    ("trace_mean_median_mbps", "per-trace mean, median", "{:.3f}"),
    ("cv_median", "within-trace CV (median)", "{:.3f}"),
    ("acf1_median", "1 s autocorrelation (median)", "{:.3f}"),
)


def add_parser(commands) -> None:
    from simulator.traces import SYNTH_TYPES

    traces = commands.add_parser("traces", help="inspect and generate throughput traces")
    actions = traces.add_subparsers(dest="action", required=True, metavar="ACTION")
    stats = actions.add_parser("stats", help="count, hours, mean/median/p10/p90 Mbps, zero share (time-weighted)")
    stats.add_argument("folder", metavar="DIR", help="folder of traces (any supported format, searched recursively)")
    stats.add_argument("--format", default="auto", help="auto, cooked, mahimahi, sabre or csv")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.set_defaults(handler=run_stats)
    synth = actions.add_parser("synth", help="write synthetic traces calibrated to a real network type")
    synth.add_argument("--type", required=True, choices=SYNTH_TYPES, dest="network_type")
    synth.add_argument("--count", type=int, required=True)
    synth.add_argument("--out", required=True, type=Path, metavar="DIR")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--duration-s", type=float, default=None, help="length of every trace (default: as the real set)")
    synth.set_defaults(handler=run_synth)


def run_stats(args) -> int:
    from simulator.traces import TraceError, load_trace_dir, trace_stats

    try:
        traces = load_trace_dir(args.folder, fmt=args.format)
    except (TraceError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stats = trace_stats(traces)
    if args.json:
        print(json.dumps(stats))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"traces in {args.folder}", show_header=False)
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, label, fmt in STAT_ROWS:
        table.add_row(label, fmt.format(stats[key]))
    Console().print(table)
    return 0


def run_synth(args) -> int:
    from rich.progress import track

    from simulator.traces import generate, write_cooked

    if args.count < 1:
        print("error: --count must be at least 1", file=sys.stderr)
        return 2
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"error: cannot create {args.out}: {error.strerror}", file=sys.stderr)
        return 2
    traces = generate(args.network_type, args.count, seed=args.seed, duration_s=args.duration_s)
    for trace in track(traces, description=f"writing {args.count} {args.network_type} traces",
                       disable=not sys.stderr.isatty()):
        write_cooked(trace, args.out / trace.name)
    print(f"wrote {args.count} synthetic {args.network_type} traces (Pensieve cooked format) to {args.out}")
    return 0
