"""``llmabr search``: the main job.

The design search itself (proposer -> sandbox -> PPO -> archive) is issue #6 and is not built
yet. Until it lands this command runs the one end-to-end job that exists, and says so: every
classic baseline on synthetic traces through the C simulator, with the deterministic test
protocol. Nothing here pretends to be a search.
"""

from __future__ import annotations

import sys


def add_parser(commands) -> None:
    search = commands.add_parser(
        "search", help="design search (not built yet: runs the baseline evaluation on synthetic traces)"
    )
    search.add_argument("--network", default="broadband", help="network type of the synthetic traces")
    search.add_argument("--count", type=int, default=40, help="number of synthetic test traces")
    search.add_argument("--seed", type=int, default=0)
    search.set_defaults(handler=run)


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from simulator.baselines import BASELINES
    from simulator.baselines.protocol import run_test_protocol
    from simulator.traces import SYNTH_TYPES, generate
    from simulator.video import default_profile

    console = Console()
    console.print(
        "[bold yellow]llmabr search: the LLM design search is not implemented yet (issue #6).[/]\n"
        f"Running the classic baselines on {args.count} synthetic {args.network} traces instead "
        "(C simulator, default mode, deterministic test protocol)."
    )
    if args.network not in SYNTH_TYPES:
        print(f"error: --network must be one of {', '.join(SYNTH_TYPES)}", file=sys.stderr)
        return 2
    traces = generate(args.network, args.count, seed=args.seed)
    video = default_profile(args.network)
    table = Table(title=f"baselines on synthetic {args.network} ({video.name})")
    for column in ("algorithm", "QoE per chunk", "QoE sum", "rebuffer s", "bitrate kbps"):
        table.add_column(column, justify="right")
    for name in BASELINES:
        mean = run_test_protocol(name, traces, video)["mean"]
        table.add_row(name, f"{mean['qoe_per_chunk']:.3f}", f"{mean['qoe_sum']:.2f}",
                      f"{mean['rebuffer_s']:.2f}", f"{mean['bitrate_kbps']:.0f}")
    console.print(table)
    return 0
