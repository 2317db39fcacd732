"""``llmabr archive list|show|diff|promote RUN ...``: read a search's archive, promote a design."""

from __future__ import annotations

import difflib
import json
import shutil
import sys
from pathlib import Path


def add_parser(commands) -> None:
    archive = commands.add_parser("archive", help="inspect a search archive (list, show, diff) or promote a design")
    sub = archive.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="every design with its stage, status and scores")
    listing.add_argument("run", type=Path)
    listing.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="one design: metadata, metrics, reason, source")
    show.add_argument("run", type=Path)
    show.add_argument("name")
    diff = sub.add_parser("diff", help="unified diff of two designs' sources")
    diff.add_argument("run", type=Path)
    diff.add_argument("a")
    diff.add_argument("b")
    promote = sub.add_parser("promote", help="copy a design into designs/ with its metrics")
    promote.add_argument("run", type=Path)
    promote.add_argument("name")
    promote.add_argument("--to", type=Path, help="destination (default: designs/<network>/<name>)")
    promote.add_argument("--force", action="store_true",
                         help="promote even when the design is not better than the seed design on validation")
    archive.set_defaults(handler=run)


def run(args) -> int:
    from llmabr.search.archive import Archive, ArchiveError

    if not (args.run / "archive.sqlite").exists():
        print(f"error: {args.run}: no archive.sqlite (not a search run folder)", file=sys.stderr)
        return 2
    try:
        archive = Archive(args.run)
    except ArchiveError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    names = [args.name] if args.action in ("show", "promote") else [args.a, args.b] if args.action == "diff" else []
    for name in names:
        if archive.design(name) is None:
            print(f"error: no design {name!r} in {args.run}; see: llmabr archive list {args.run}", file=sys.stderr)
            return 2
    return {"list": _list, "show": _show, "diff": _diff, "promote": _promote}[args.action](archive, args)


def _list(archive, args) -> int:
    designs = archive.designs()
    if args.json:
        print(json.dumps([{k: v for k, v in d.items() if k != "metrics"} for d in designs], indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{args.run}: {len(designs)} designs")
    for column in ("design", "kind", "origin", "stage", "status", "val QoE", "test QoE"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason", max_width=60, overflow="ellipsis", no_wrap=True)
    for d in designs:
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        table.add_row(d["name"], d["kind"], d["origin"], d["stage"], d["status"], fmt(d["val_qoe"]),
                      fmt(d["test_qoe"]), d["reason"][:80])
    Console(width=None if sys.stdout.isatty() else 200).print(table)  # no 80-column squeeze in pipes and logs
    return 0


def _show(archive, args) -> int:
    design = archive.design(args.name)
    folder = archive.folder(args.name)
    print(json.dumps({k: v for k, v in design.items()}, indent=1, default=str))
    for file in ("state.py", "net.py"):
        if (folder / file).exists():
            print(f"\n# ---- {file}\n{(folder / file).read_text()}")
    return 0


def _diff(archive, args) -> int:
    for file in ("state.py", "net.py"):
        a, b = archive.folder(args.a) / file, archive.folder(args.b) / file
        left = a.read_text().splitlines(keepends=True) if a.exists() else []
        right = b.read_text().splitlines(keepends=True) if b.exists() else []
        sys.stdout.writelines(difflib.unified_diff(left, right, f"{args.a}/{file}", f"{args.b}/{file}"))
    return 0


def validation_verdict(archive, name: str, seed_name: str = "seed-pensieve") -> tuple[str, str]:
    """(verdict, explanation) of ``name`` against the seed design on validation: the per-trace rows of
    every S3 seed's validation-best checkpoint, paired two-level bootstrap (seeds, then recordings)."""
    from llmabr.scoring.yardsticks import compare, comparison_text, trace_groups

    if name == seed_name:
        return "seed", f"{name} is the seed design itself"
    rows = {}
    for who in (name, seed_name):
        files = sorted(archive.folder(who).glob("train-s*/val_best.json")) if archive.design(who) else []
        if not files:
            return "unknown", f"{who} has no S3 validation results to compare (trained with trusted scoring?)"
        rows[who] = [json.loads(path.read_text()) for path in files]
    stats = compare(rows, trace_groups(rows[name][0]), pairs=[(name, seed_name)])
    verdict, line = comparison_text(stats, name, seed_name, unit=" val QoE/chunk")
    return verdict, f"{line}: {verdict} ({len(rows[name])} vs {len(rows[seed_name])} seeds, {stats.n_groups} recordings)"


def _promote(archive, args) -> int:
    from simulator.paths import REPO_ROOT

    design = archive.design(args.name)
    config = archive.meta("config") or {}
    verdict, why = validation_verdict(archive, args.name)
    if verdict != "better" and not args.force:
        print(f"error: not promoting {args.name}: it is not better than the seed design on validation ({why}); "
              f"--force promotes it anyway", file=sys.stderr)
        return 2
    target = args.to or REPO_ROOT / "designs" / config.get("network", "any") / args.name
    if target.exists():
        print(f"error: {target} exists; choose --to", file=sys.stderr)
        return 2
    target.mkdir(parents=True)
    for file in ("design.toml", "state.py", "net.py", "genome.json"):
        if (archive.folder(args.name) / file).exists():
            shutil.copy2(archive.folder(args.name) / file, target / file)
    metrics = {"from_run": str(archive.run_dir), "network": config.get("network"), "traces": config.get("traces"),
               "test_traces": config.get("test_traces"), "val_qoe": design["val_qoe"], "test_qoe": design["test_qoe"],
               "stage": design["stage"], "metrics": design["metrics"],
               "versus_seed_on_validation": {"verdict": verdict, "detail": why, "forced": verdict != "better"}}
    (target / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float) + "\n")
    print(f"promoted {args.name} -> {target} (versus the seed design on validation: {why})")
    return 0
