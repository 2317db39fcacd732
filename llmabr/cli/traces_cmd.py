"""``llmabr traces stats DIR``, ``llmabr traces convert DIR --out DIR`` and ``llmabr traces synth ...``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

STAT_ROWS = (
    ("count", "traces", "{:.0f}"),
    ("hours", "hours", "{:.4g}"),
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
    add_trace_format(stats, "--format")
    stats.add_argument("--report", action="store_true", help="print what loading did to each file (rows averaged, "
                                                            "gaps held, splits, rows dropped and why)")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.set_defaults(handler=run_stats)
    convert = actions.add_parser("convert", help="write any loadable trace folder as Pensieve-cooked files, with a "
                                                 "manifest.json of what was split, averaged or dropped")
    convert.add_argument("folder", metavar="DIR", help="folder (or .txt list) of traces in any supported form")
    convert.add_argument("--out", required=True, type=Path, metavar="DIR", help="new (or empty) output folder")
    add_trace_format(convert)
    convert.set_defaults(handler=run_convert)
    synth = actions.add_parser("synth", help="write synthetic traces calibrated to a real network type")
    synth.add_argument("--type", required=True, choices=SYNTH_TYPES, dest="network_type")
    synth.add_argument("--count", type=int, required=True)
    synth.add_argument("--out", required=True, type=Path, metavar="DIR")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--duration-s", type=float, default=None, help="length of every trace (default: as the real set)")
    synth.set_defaults(handler=run_synth)


def add_trace_format(parser, *aliases: str) -> None:
    """``--trace-format NAME|FILE`` for a command that reads a trace folder."""
    from simulator.traces import FORMATS, PRESET_NAMES

    parser.add_argument("--trace-format", *aliases, dest="trace_format", default="auto", metavar="NAME|FILE",
                        help=f"how to read the traces: {', '.join(FORMATS)}, a CSV preset ({', '.join(PRESET_NAMES)}) "
                             "or a mapping file (.toml/.json; see traces/README.md). Default: detect each file, "
                             "using a trace-format.toml found in the folder")


def run_stats(args) -> int:
    from simulator.traces import TraceError, load_trace_dir_reports, trace_stats
    from simulator.traces.report import combined_summary

    try:
        traces, reports = load_trace_dir_reports(args.folder, fmt=args.trace_format)
    except (TraceError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stats = trace_stats(traces)
    if args.report:  # beside --json the reports go to stderr, so stdout stays one JSON object
        for report in reports:
            print(f"{report.path}: {report.summary()}", file=sys.stderr if args.json else sys.stdout)
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
    print(f"loaded: {combined_summary(reports)}" + ("" if args.report else " (--report: per file)"))
    return 0


def run_convert(args) -> int:
    from simulator.traces import TraceError
    from simulator.traces.convert import MANIFEST_NAME, convert_dir

    try:
        manifest = convert_dir(args.folder, args.out, fmt=args.trace_format)
    except (TraceError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot write {args.out}: {error.strerror or error}", file=sys.stderr)
        return 2
    print(f"wrote {manifest['traces']} traces ({manifest['hours']:.2f} h, Pensieve cooked format) to {args.out}; "
          f"{manifest['summary']}; details in {args.out / MANIFEST_NAME}")
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
