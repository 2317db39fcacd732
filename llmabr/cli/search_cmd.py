"""``llmabr search``: the main job (proposer -> S0/S1 -> S2 -> S3 -> test, on Ray, into an archive).

With no arguments: the embedded default (offline proposer unless an LLM endpoint is configured,
synthetic broadband traces, two workers, about ten minutes), ending with ``RUN/report.md``.
``--resume RUN`` continues a search that was stopped or killed, with nothing lost or redone.
``--local-model FILE.gguf`` (``llm.local_model``) proposes with a local model: the search starts
llama.cpp's server for it, uses it with no API key, and stops it when the search ends, however it ends.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def add_parser(commands) -> None:
    from llmabr.cli.traces_cmd import add_trace_format

    search = commands.add_parser("search", help="run the design search (embedded defaults: ~10 min, no API key)")
    search.add_argument("--config", type=Path, help="TOML over the defaults (llmabr/search/config.py; [llm] section)")
    search.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="dotted override, e.g. budget.designs=30 or train.ppo.n_epochs=2 or llm.model=gpt-4o")
    search.add_argument("--out", type=Path, help="run folder (default: runs/search-<time>)")
    search.add_argument("--resume", type=Path, metavar="RUN", help="continue the search in RUN")
    search.add_argument("--mode", choices=["evolve", "paper"])
    search.add_argument("--network", help="network type (broadband, 3g, 4g, 5g, satellite)")
    search.add_argument("--traces", help="training traces folder, or 'synthetic'")
    search.add_argument("--test-traces", help="held-out test traces folder, or 'synthetic'")
    add_trace_format(search)
    search.add_argument("--workers", type=int, help="parallel evaluations (local Ray: one core each)")
    search.add_argument("--ray-address", help="join an existing Ray cluster (e.g. auto or HOST:6379); its nodes need "
                                              "this package, not the run folder or the traces (tasks carry data)")
    search.add_argument("--ray-dashboard", action="store_true",
                        help="start the local Ray with its dashboard (off by default: it slows start-up); allowed "
                             "with --resume")
    search.add_argument("--minutes", type=float, help="time budget")
    search.add_argument("--replay", help="evaluate designs written elsewhere (a folder of designs or a JSONL of "
                                         "LLM replies) instead of proposing; sets proposer=replay")
    search.add_argument("--local-model", type=Path, metavar="FILE.gguf",
                        help="propose with this local GGUF model: starts llama.cpp's server for it, stops it at the "
                             "end (sets llm.local_model; needs pip install 'llmabr[local-llm]')")
    search.set_defaults(handler=run)


def run(args) -> int:
    from rich.console import Console

    from llmabr.search.archive import ArchiveError
    from llmabr.search.config import load_search_config

    console = Console(stderr=True)
    overrides = list(args.set)
    if args.trace_format != "auto":  # training, validation and test traces alike
        overrides.append(f"train.trace_format={args.trace_format}")
    for flag, key in ((args.mode, "mode"), (args.network, "network"), (args.traces, "traces"),
                      (args.test_traces, "test_traces"), (args.workers, "workers"), (args.ray_address, "ray_address"),
                      (args.minutes, "budget.minutes")):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    if args.replay is not None:
        overrides += ["proposer=replay", f"replay={Path(args.replay).resolve()}"]
    if args.local_model is not None:
        overrides.append(f"llm.local_model={args.local_model.expanduser().resolve()}")
    try:
        if args.resume is not None:
            if overrides or args.config:
                raise ValueError("--resume continues with the run's own settings; drop the other options")
            if not (args.resume / "archive.sqlite").exists():
                raise ValueError(f"{args.resume}: no archive.sqlite, nothing to resume")
            config, run_dir = None, args.resume
        else:
            config = load_search_config(args.config, overrides)
            if config.proposer == "replay":  # refuse an unusable source before a run folder exists
                from llmabr.search.proposing import load_replay

                load_replay(config.replay, config.budget.designs)
            local_model = config.llm.get("local_model")
            if local_model is not None and config.proposer in ("auto", "llm"):  # a missing file or llama_cpp: say so now
                from llmabr.proposer.local_server import check_local_model

                check_local_model(local_model)
            run_dir = args.out or Path("runs") / f"search-{time.strftime('%Y%m%d-%H%M%S')}"
            if (run_dir / "archive.sqlite").exists():
                raise ValueError(f"{run_dir} already holds a search; use --resume {run_dir} or another --out")
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    from llmabr.search.executor import RayExecutor
    from llmabr.search.loop import Search
    from llmabr.search.report import write_report

    search = None
    try:
        search = Search(run_dir, config, console)
        console.print(f"search [bold]{run_dir}[/]: {search.config.mode} mode, {search.proposing.label}, "
                      f"{search.config.workers} worker(s), budget {search.config.budget.minutes:g} min")
        executor = RayExecutor(search.config.workers, search.config.ray_address, dashboard=args.ray_dashboard)
        where = f"Ray cluster {search.config.ray_address}" if search.config.ray_address else "local Ray"
        console.print(f"{where}: connected in {executor.startup_s:.1f} s"
                      + (f", dashboard http://{executor.dashboard_url}" if executor.dashboard_url else ""))
        try:
            summary = search.run(executor)
        finally:
            executor.shutdown()
        summary["llm_cost_usd"] = search.proposing.cost_usd()
        summary["llm_usage"] = search.proposing.usage()
        report = write_report(search.archive, search.config, search.test_traces, summary)
    except ArchiveError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ConnectionError as error:  # the Ray cluster at --ray-address does not answer
        print(f"error: {error}\nthe run folder is kept: continue with llmabr search --resume {run_dir} once the "
              "cluster answers", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as error:  # e.g. a replay source with nothing usable
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - only LLMError is handled; anything else is raised again
        # An LLMError here means the local model's server did not start. The client module (and the
        # openai package, an optional extra) is only looked up if something imported it already.
        client = sys.modules.get("llmabr.proposer.client")
        if client is None or not isinstance(error, client.LLMError):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted; continue with: llmabr search --resume {run_dir}", file=sys.stderr)
        return 130
    finally:
        if search is not None:
            search.proposing.close()  # the local model's server, if the search started one
    console.print(f"report: {report}")
    print(report.read_text().split("\n\n")[2] if report.exists() else "")
    return 0
