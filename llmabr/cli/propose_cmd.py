"""``llmabr propose --kind state|network [--n N] [--out DIR]``: write N design folders.

The proposer is the LLM when an endpoint is configured (``--base-url`` / ``LLMABR_LLM_BASE_URL``
/ ``OPENAI_BASE_URL``, the API key variable set, or ``--local-model FILE.gguf``, for which the
command starts llama.cpp's server itself and stops it at the end), else the embedded offline
proposer, and the output says which. ``--replay PATH`` reads designs from a folder or a JSONL of replies instead.
``--check`` runs S0 and S1 on every design written and reports the pass rate.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def add_parser(commands) -> None:
    propose = commands.add_parser("propose", help="write N candidate designs (LLM, offline proposer or replay) as folders")
    propose.add_argument("--kind", choices=["state", "network"], default="state",
                         help="state: new state function, seed network; network: new trunk, seed state")
    propose.add_argument("--n", type=int, default=4, help="designs to write")
    propose.add_argument("--out", type=Path, help="output folder (default: runs/proposals-<kind>-<time>)")
    propose.add_argument("--seed", type=int, default=0, help="seed of the offline proposer")
    propose.add_argument("--parents", type=Path, help="folder of designs (with genome.json) to mutate and recombine")
    propose.add_argument("--network", default="broadband", help="network type the prompt describes")
    propose.add_argument("--traces", default="synthetic", help="training traces whose statistics the prompt gives")
    propose.add_argument("--offline", action="store_true", help="use the offline proposer even if an LLM is configured")
    propose.add_argument("--replay", type=Path, help="folder of designs or .jsonl of LLM replies to replay")
    propose.add_argument("--config", type=Path, help="TOML file whose [llm] section configures the endpoint")
    propose.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    propose.add_argument("--model", help="model name")
    propose.add_argument("--local-model", metavar="FILE.gguf",
                         help="local GGUF file: start llama.cpp's server for it, stop it at the end "
                              "(sets llm.local_model; needs pip install 'llmabr[local-llm]')")
    propose.add_argument("--api-key-env", help="environment variable holding the API key")
    propose.add_argument("--temperature", type=float)
    propose.add_argument("--max-repairs", type=int, default=2, help="repair round-trips per reply")
    propose.add_argument("--check", action="store_true", help="run S0 and S1 on every design and report the pass rate")
    propose.set_defaults(handler=run)


def _parents(folder: Path | None) -> list[dict]:
    from llmabr.proposer.proposal import read_parent

    if folder is None:
        return []
    parents = [read_parent(path) for path in sorted(folder.iterdir()) if path.is_dir()]
    return [parent for parent in parents if parent is not None]


def make_proposals(args, out: Path, console) -> tuple[list, list, str]:
    """(proposals, failures as (name, reason), label of the proposer)."""
    if args.replay is not None:
        from llmabr.proposer.replay import replay

        proposals, failures = replay(args.replay)
        return proposals[:args.n] if args.n else proposals, [(f.name, f.reason) for f in failures], \
            f"replay of {args.replay}"
    from llmabr.proposer.llm_config import llm_config_from

    local_model = str(Path(args.local_model).expanduser().resolve()) if args.local_model else None
    overrides = {key: value for key, value in (("base_url", args.base_url), ("model", args.model),
                                               ("api_key_env", args.api_key_env), ("temperature", args.temperature),
                                               ("local_model", local_model))
                 if value is not None}
    section = None
    if args.config is not None:
        import tomllib

        with open(args.config, "rb") as handle:
            section = tomllib.load(handle).get("llm", {})
    config = llm_config_from(section, overrides=overrides)
    if args.offline or not config.configured:
        from llmabr.proposer.offline import OfflineProposer

        proposer = OfflineProposer(args.seed)
        why = "--offline" if args.offline else "no LLM endpoint configured"
        return proposer.propose(args.kind, args.n, _parents(args.parents)), [], f"{proposer.label}; {why}"
    from llmabr.proposer.client import LLMClient
    from llmabr.proposer.context import build_context
    from llmabr.proposer.llm import LLMProposer, static_check

    context = build_context(args.network, args.traces)
    server = None
    if config.local_model is not None:
        from llmabr.proposer.local_server import LocalServer

        server = LocalServer.for_config(config, out / "llama_server.log")
        console.print(f"starting llama.cpp's server: {server.describe()}")
        config = server.start().client_config(config)
    try:
        client = LLMClient(config, out)
        proposer = LLMProposer(client, max_repairs=args.max_repairs, check=static_check)
        proposals, rejected = proposer.propose(args.kind, args.n, context)
    finally:
        if server is not None:
            server.stop()
    usage = client.usage()
    console.print(f"LLM usage: {usage}")
    return proposals, [(r.name, f"{r.stage}: {r.reason}") for r in rejected], proposer.label


def run(args) -> int:
    from rich.console import Console
    from rich.progress import track
    from rich.table import Table

    console = Console(stderr=True)
    if args.n < 1:
        print("error: --n must be at least 1", file=sys.stderr)
        return 2
    out = args.out or Path("runs") / f"proposals-{args.kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    try:
        proposals, failures, label = make_proposals(args, out, console)
    except (ValueError, OSError) as error:  # tomllib's TOMLDecodeError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # the LLM endpoint failed after its retries: say so, keep nothing half-written
        from llmabr.proposer.client import LLMError

        if isinstance(error, LLMError):
            print(f"error: the LLM endpoint failed: {error}", file=sys.stderr)
            return 1
        raise
    console.print(f"proposer: [bold]{label}[/]")
    for proposal in proposals:
        proposal.write(out / proposal.name)
    for name, reason in failures:
        console.print(f"[yellow]no design from {name}[/]: {reason}")
    summary = {"proposer": label, "kind": args.kind, "written": [p.name for p in proposals],
               "failures": [{"name": n, "reason": r} for n, r in failures]}
    if args.check and proposals:
        from llmabr.sandbox.checks import check_design

        table = Table(title=f"S0-S1 on {len(proposals)} designs")
        for column in ("design", "result", "reason"):
            table.add_column(column)
        reports = {}
        for proposal in track(proposals, description="checking", console=console):
            report = check_design(out / proposal.name)
            reports[proposal.name] = report
            (out / proposal.name / "check.json").write_text(json.dumps(report.to_dict(), indent=1))
            if not report.passed:
                table.add_row(proposal.name, f"rejected at {report.rejected_at}", report.summary()[:300])
        passed = sum(report.passed for report in reports.values())
        summary["checked"], summary["passed"] = len(reports), passed
        summary["rejected"] = {name: report.summary() for name, report in reports.items() if not report.passed}
        if passed < len(reports):
            console.print(table)
        console.print(f"S0-S1 pass rate: {passed}/{len(reports)} ({100 * passed / len(reports):.1f} %)")
    (out / "proposals.json").write_text(json.dumps(summary, indent=1) + "\n")
    console.print(f"wrote {len(proposals)} design folder(s) to {out}")
    return 0 if proposals else 1
