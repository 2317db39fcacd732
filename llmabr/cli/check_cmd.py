"""``llmabr check PATH [--json]``: S0 (static) and S1 (caged probe) on a design folder.

Exit status 0 only when the design passes every check; 1 when it is rejected; 2 on usage errors.
"""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(commands) -> None:
    check = commands.add_parser("check", help="run the S0 static check and the S1 caged probe on a design folder")
    check.add_argument("path", type=Path, metavar="PATH", help="design folder (design.toml, state.py, net.py)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--deadline-s", type=float, default=None, help="wall-clock deadline of the probe process")
    check.add_argument("--max-abs-p99", type=float, default=None, help="normalization threshold (|x| p99 per column)")
    check.add_argument("--keep-workdir", action="store_true", help="keep the sandbox folder for inspection")
    check.set_defaults(handler=run)


def config_from_args(args):
    from dataclasses import replace

    from llmabr.sandbox.checks import CheckConfig

    config = CheckConfig(keep_workdir=args.keep_workdir)
    if args.max_abs_p99 is not None:
        config = replace(config, max_abs_p99=args.max_abs_p99)
    if args.deadline_s is not None:
        config = replace(config, limits=replace(config.limits, wall_s=args.deadline_s))
    return config


def run(args) -> int:
    from llmabr.sandbox.checks import check_design

    if not args.path.exists():
        print(f"error: {args.path}: no such design folder", file=sys.stderr)
        return 2
    report = check_design(args.path, config_from_args(args))
    if args.json:
        print(report.to_json())
    else:
        print_report(report)
    return 0 if report.passed else 1


def print_report(report) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    verdict = "[bold green]PASSED[/]" if report.passed else f"[bold red]REJECTED at {report.rejected_at}[/]"
    console.print(f"design [bold]{report.design}[/] ({report.kind}): {verdict}")
    checks = Table(title="checks")
    for column in ("stage", "check", "result", "reason"):
        checks.add_column(column, overflow="fold")
    for check in report.checks:
        result = "[green]pass[/]" if check.passed else "[red]FAIL[/]"
        checks.add_row(check.stage, check.name, result, check.reason)
    console.print(checks)
    if report.features:
        features = Table(title=f"features on the probe rows ({report.probe_source} traces)")
        for column in ("feature", "dims", "min", "max", "mean", "p99 |x|", "p99 |x| by network"):
            features.add_column(column, justify="right" if column not in ("feature", "p99 |x| by network") else "left")
        for stats in report.features:
            by_network = ", ".join(f"{net} {value:.3g}" for net, value in stats.p99_abs_by_network.items())
            features.add_row(stats.name, str(stats.dims), f"{stats.min:.3g}", f"{stats.max:.3g}", f"{stats.mean:.3g}",
                             f"{stats.p99_abs:.3g}", by_network)
        console.print(features)
    facts = []
    if report.param_count is not None:
        facts.append(f"parameters {report.param_count:,}")
    if report.latency_ms:
        facts.append("latency " + ", ".join(f"{k} {v:.2f} ms" for k, v in report.latency_ms.items()))
    if report.s0_ms is not None:
        facts.append(f"S0 {report.s0_ms:.1f} ms")
    if report.s1_s is not None:
        facts.append(f"S1 {report.s1_s:.2f} s")
    if facts:
        console.print("; ".join(facts))
