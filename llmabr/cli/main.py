"""``llmabr`` command line: one sub-command module per job, each adding its own parser."""

from __future__ import annotations

import argparse
import sys

from llmabr.cli import (archive_cmd, baseline_cmd, bench_cmd, check_cmd, eval_cmd, export_cmd, propose_cmd, search_cmd,
                        serve_cmd, traces_cmd, train_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmabr",
        description="Design adaptive-bitrate controllers with an LLM; simulate, train, evaluate.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (search_cmd, archive_cmd, propose_cmd, check_cmd, train_cmd, eval_cmd, export_cmd, serve_cmd,
                   traces_cmd, baseline_cmd, bench_cmd):
        module.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
