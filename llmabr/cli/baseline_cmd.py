"""``llmabr baseline``: score a heuristic (BB, RB, BOLA, FastMPC, RobustMPC) on a trace folder.

Runs the deterministic test protocol (``simulator.baselines.protocol``): every trace once, in
sorted order, start row 1, no noise, the first chunk (fetched at level 1) excluded. Prints per
trace the QoE sum over chunks 1..end, the total rebuffer time and the mean bitrate, then the
means and the mean per-chunk QoE; ``--json`` prints one JSON object instead.

``--algo optimal`` is the offline-optimal bound (``simulator.baselines.optimal``): a dynamic
program that knows each trace's future picks a level sequence, which is replayed under the same
protocol; each row also shows an upper bound on any sequence's QoE sum (JSON: ``upper_bound``,
``gap_bound``, ``levels``). ``--grid-scale`` refines or coarsens its grid; ``--no-bound`` skips
the upper bound.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ALGORITHMS = ("bb", "rb", "bola", "fastmpc", "robustmpc", "optimal")
NETWORK_TYPES = ("broadband", "3g", "4g", "5g", "satellite")


def add_parser(commands) -> None:
    from llmabr.cli.traces_cmd import add_trace_format

    baseline = commands.add_parser(
        "baseline", help="score a heuristic ABR baseline on a trace folder (deterministic test protocol)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    baseline.add_argument("--algo", required=True, choices=ALGORITHMS, help="the baseline to run")
    baseline.add_argument("--traces", required=True, help="folder of throughput traces")
    add_trace_format(baseline)
    baseline.add_argument("--video", help="video profile name or folder (default: by network type, guessed from "
                                          "the trace path; envivio in pensieve mode)")
    baseline.add_argument("--compat", choices=["pensieve"], help="Pensieve compatibility mode (48 chunks, its quirks)")
    baseline.add_argument("--as-committed", action="store_true",
                          help="fastmpc/robustmpc: keep Pensieve's off-by-one planning index (plans k+1..k+5)")
    baseline.add_argument("--qoe", choices=["lin", "log", "hd"], default="lin", help="QoE variant (default: lin)")
    baseline.add_argument("--backend", choices=["c", "reference"], default="c",
                          help="simulator backend (reference: the slow pure-Python specification)")
    baseline.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    optimal = baseline.add_argument_group("--algo optimal (the offline-optimal bound)")
    optimal.add_argument("--grid-scale", type=float, default=1.0,
                         help="multiply every merge cell of its grid (default 1: 0.1 s buffer cells; 0.5 is twice "
                              "as fine: slower, closer to the optimum, a tighter upper bound)")
    optimal.add_argument("--no-bound", action="store_true", help="skip the upper bound (about 60%% of the time)")
    baseline.set_defaults(handler=run)


def guess_network_type(traces_path: str) -> str | None:
    """The network type named by a component of the trace path (e.g. .../3g/test), or None."""
    for part in reversed(Path(traces_path).resolve().parts):
        if part.lower() in NETWORK_TYPES:
            return part.lower()
    return None


def _video(args):
    from simulator.video import default_profile, load_profile

    if args.video:
        return load_profile(args.video)
    if args.compat == "pensieve":
        return default_profile("broadband")  # Pensieve's Envivio video (or its synthetic stand-in)
    return default_profile(guess_network_type(args.traces) or "broadband")


def run(args) -> int:
    from simulator.baselines.protocol import run_test_protocol
    from simulator.traces import TraceError, load_trace_dir
    from simulator.video import VideoProfileError

    if args.as_committed and args.algo not in ("fastmpc", "robustmpc"):
        print(f"error: --as-committed applies to fastmpc and robustmpc, not {args.algo}", file=sys.stderr)
        return 2
    mode = args.compat or "default"
    try:
        traces = load_trace_dir(args.traces, fmt=args.trace_format)
        video = _video(args)
        if args.algo == "optimal":
            from simulator.baselines.optimal import Grid, run_optimal

            result = run_optimal(traces, video, mode=mode, qoe=args.qoe, grid=Grid().scaled(args.grid_scale),
                                 bound=not args.no_bound, backend=args.backend, progress=None)
        else:
            result = run_test_protocol(args.algo, traces, video, mode=mode, as_committed=args.as_committed,
                                       qoe=args.qoe, backend=args.backend)
    except (TraceError, VideoProfileError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result["settings"]["traces"] = str(args.traces)
    if args.json:
        print(json.dumps(result))
    else:
        _print_table(result)
    return 0


def _print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    settings, mean = result["settings"], result["mean"]
    variant = " (as committed)" if settings["as_committed"] else ""
    title = (f"{settings['policy']}{variant} on {settings['traces']}: {settings['n_traces']} traces, "
             f"video {settings['video']}, mode {settings['mode']}, QoE {settings['qoe']}, "
             f"chunks 1..{settings['chunks_scored']}")
    print(title)
    bounded = mean.get("upper_bound") is not None  # the optimal bound: its upper bound beside each sum
    table = Table()
    table.add_column("trace")
    for header in ("QoE sum", "rebuffer s", "mean kbps") + (("upper bound",) if bounded else ()):
        table.add_column(header, justify="right")
    for row in result["per_trace"]:
        bound = (f"{row['upper_bound']:.4f}",) if bounded else ()
        table.add_row(row["name"], f"{row['qoe_sum']:.4f}", f"{row['rebuffer_s']:.4f}", f"{row['bitrate_kbps']:.2f}",
                      *bound)
    table.add_section()
    bound = (f"{mean['upper_bound']:.4f}",) if bounded else ()
    table.add_row("mean", f"{mean['qoe_sum']:.4f}", f"{mean['rebuffer_s']:.4f}", f"{mean['bitrate_kbps']:.2f}",
                  *bound, style="bold")
    Console(width=max(120, Console().width)).print(table)
    print(f"mean QoE per chunk: {mean['qoe_per_chunk']:.4f}")
    if bounded:
        print(f"upper bound on any level sequence's mean QoE per chunk: {mean['upper_bound_per_chunk']:.4f} "
              f"(planned in {settings['plan_s']:.1f} s)")
