"""``llmabr bench sim|check|train|search``: measurements, never tests.

sim: chunk-steps/s of the C core at N = 1, 16, 256, 4096 vs the Python reference; check: S0+S1 time
per design vs a caged torch import; train: PPO env-steps/s vs SB3 on a zero-cost VecEnv; search:
designs screened per hour with and without S2 early stopping, or with 1 and N workers (--scaling).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def add_parser(commands) -> None:
    from llmabr.cli.traces_cmd import add_trace_format

    bench = commands.add_parser("bench", help="benchmarks (measurements, not tests)")
    targets = bench.add_subparsers(dest="target", required=True, metavar="TARGET")
    sim = targets.add_parser(
        "sim", help="simulator chunk-steps/s: C core at N=1,16,256,4096 vs the pure-Python reference, one core",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sim.add_argument("--traces", help="trace folder (default: ../shared broadband/test, else synthetic broadband)")
    add_trace_format(sim)
    sim.add_argument("--video", help="video profile name or folder (default: envivio, else envivio-synth)")
    sim.add_argument("--mode", choices=["default", "pensieve"], default="default")
    sim.add_argument("--seconds", type=float, default=2.0, help="measuring time per configuration")
    sim.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    sim.set_defaults(handler=run_sim)
    check = targets.add_parser(
        "check", help="S0+S1 wall time per seed design, next to the floor: a caged process that only imports torch",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    check.add_argument("designs", nargs="*", help="design folders (default: every folder in designs/)")
    check.add_argument("--repeat", type=int, default=3, help="runs per design (the median is reported)")
    check.set_defaults(handler=run_check)
    train = targets.add_parser(
        "train", help="PPO env-steps/s with a design vs SB3 on a zero-cost VecEnv (same settings, same network)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    train.add_argument("design", nargs="?", default=None, help="design folder (default: designs/pensieve)")
    train.add_argument("--steps", type=int, default=30_720, help="env steps per run (10 rollouts at the default 64 x 48)")
    train.add_argument("--versus", action="append", default=[], metavar="KEY=VALUE",
                       help="also run the design under these PPO settings, side by side (e.g. ppo.n_epochs=4)")
    train.add_argument("--compare", type=Path, metavar="DESIGN",
                       help="also run this design under the same settings, side by side (e.g. a NADA design "
                            "next to the torch design it mirrors)")
    train.add_argument("--validation", action="store_true",
                       help="instead: whole training runs with trusted validation vs validation in the trainer's "
                            "process, alternating (--steps per run, --eval-every, --rounds)")
    train.add_argument("--eval-every", type=int, default=20_000, help="with --validation: env steps between validations")
    train.add_argument("--rounds", type=int, default=2, help="with --validation: runs per arm (median reported)")
    train.set_defaults(handler=run_train)
    search = targets.add_parser(
        "search", help="designs screened (S0-S2) per hour, same designs: with and without S2 early stopping, or "
                       "with 1 and N workers (--scaling)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    search.add_argument("--designs", type=int, default=16, help="offline designs screened by each arm")
    search.add_argument("--workers", type=int, default=2, help="local Ray workers (one core each)")
    search.add_argument("--scaling", action="store_true",
                        help="instead: 1 worker vs --workers, with the per-design costs that size a cluster "
                             "(worker seconds per stage, driver time per task, object-store traffic)")
    search.add_argument("--network", default="broadband")
    search.add_argument("--traces", default="synthetic", help="training traces folder, or 'synthetic'")
    search.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="search setting, e.g. budget.screen_steps=40000 (the quick budget is the default)")
    search.add_argument("--seed", type=int, default=0, help="offline proposer seed")
    search.add_argument("--out", type=Path, help="folder for both arms' runs (default: runs/bench-search-<time>)")
    search.set_defaults(handler=run_search_bench)


def _inputs(args):
    from simulator.paths import shared_traces
    from simulator.traces import generate, load_trace_dir
    from simulator.video import default_profile, load_profile

    if args.traces:
        traces, source = load_trace_dir(args.traces, fmt=args.trace_format), args.traces
    elif shared_traces("broadband", "test") is not None:
        folder = shared_traces("broadband", "test")
        traces, source = load_trace_dir(folder), str(folder)
    else:
        traces, source = generate("broadband", 50, seed=0), "synthetic broadband (50 traces)"
    video = load_profile(args.video) if args.video else default_profile("broadband")
    return traces, source, video


def run_sim(args) -> int:
    from simulator.bench import bench_sim, pin_to_one_core, speedup
    from simulator.config import SimConfig
    from simulator.traces import TraceError
    from simulator.video import VideoProfileError

    try:
        traces, source, video = _inputs(args)
    except (TraceError, VideoProfileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    cpu = pin_to_one_core()
    config = SimConfig(mode=args.mode)
    if not args.json:
        print(f"traces: {source} ({len(traces)} traces); video: {video.name}; mode: {args.mode}; "
              f"training noise on; pinned to cpu {cpu}; {args.seconds:.1f} s per row")
        print(f"{'backend':<10} {'N':>6} {'chunk-steps/s':>15}")

    def show(result):
        if not args.json:
            print(f"{result.backend:<10} {result.num_envs:>6} {result.steps_per_s:>15,.0f}", flush=True)

    results = bench_sim(traces, video, seconds=args.seconds, config=config, progress=show)
    ratio = speedup(results)
    if args.json:
        print(json.dumps({
            "results": [{"backend": r.backend, "num_envs": r.num_envs, "steps_per_s": r.steps_per_s} for r in results],
            "speedup": ratio, "cpu": cpu, "traces": source, "video": video.name, "mode": args.mode,
        }))
    else:
        print(f"speedup: {ratio:.0f}x")
    return 0


def run_check(args) -> int:
    import statistics
    import sys as _sys
    import tempfile
    import time
    from pathlib import Path

    from llmabr.sandbox.cage import CageLimits, run_caged
    from llmabr.sandbox.checks import check_design
    from simulator.paths import REPO_ROOT

    folders = [Path(d) for d in args.designs] or sorted(p for p in (REPO_ROOT / "designs").iterdir()
                                                       if (p / "design.toml").exists())
    if not folders:
        print("error: no design folders found", file=sys.stderr)
        return 2

    def floor_s() -> float:
        with tempfile.TemporaryDirectory(prefix="llmabr-bench-") as workdir:
            start = time.perf_counter()
            run_caged([_sys.executable, "-I", "-c", "import torch"], Path(workdir), CageLimits())
            return time.perf_counter() - start

    check_design(folders[0])  # warm the probe batches (built once per process) and the file cache
    floors = [floor_s() for _ in range(args.repeat)]
    floor = statistics.median(floors)
    print(f"floor (caged process importing torch, nothing else): {floor:.2f} s")
    print(f"{'design':<24} {'passed':>6} {'S0 ms':>8} {'S1+cage s':>10} {'total s':>8} {'x floor':>8}")
    worst = 0.0
    for folder in folders:
        totals, s0s = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            report = check_design(folder)
            totals.append(time.perf_counter() - start)
            s0s.append(report.s0_ms or 0.0)
        total = statistics.median(totals)
        worst = max(worst, total)
        print(f"{folder.name:<24} {str(report.passed):>6} {statistics.median(s0s):>8.1f} "
              f"{total - statistics.median(s0s) / 1000:>10.2f} {total:>8.2f} {total / floor:>8.2f}")
    print(f"worst design: {worst:.2f} s per S0+S1 check (goal: under 3 s)")
    return 0


def run_train(args) -> int:
    import sys as _sys
    import tempfile
    from pathlib import Path

    from llmabr.sandbox.cage import CageLimits, run_caged
    from simulator.paths import REPO_ROOT

    design = Path(args.design or REPO_ROOT / "designs" / "pensieve").resolve()
    if args.validation:
        return run_validation_bench(args, design)
    compare = args.compare.resolve() if args.compare else None
    if compare is not None and not compare.is_dir():
        print(f"error: {args.compare}: no such design folder", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="llmabr-bench-") as workdir:
        extra = [json.dumps(args.versus)] if args.versus else []
        extra += ["--compare", str(compare)] if compare else []
        readable = bench_readable(design) + ((str(compare),) if compare else ())
        cage = run_caged([_sys.executable, "-I", "-m", "llmabr.train.bench", str(design), str(args.steps), *extra],
                         Path(workdir), CageLimits(wall_s=1800.0, cpu_s=3600, readable=readable))
    lines = cage.stdout_tail.strip().splitlines()
    if cage.returncode != 0 or not lines:
        print(f"error: the benchmark process {cage.describe()}: {cage.stderr_tail[-800:]}", file=sys.stderr)
        return 1
    result = json.loads(lines[-1])
    from llmabr.train.config import PPOConfig

    ppo = PPOConfig()
    print(f"design {design.name} ({result.get('kind', 'torch')}), PPO defaults ({ppo.n_envs} players x "
          f"{ppo.n_steps} steps, minibatch {ppo.batch_size}, {ppo.n_epochs} epochs), {args.steps:,} steps per run, "
          "one torch thread, in the cage")
    print(f"{'run':<14} {'steps/s':>9} {'rollout s':>10} {'update s':>9} {'update share':>13}")
    for name in ("sb3_ceiling", "abr", "abr_versus", "compare"):
        if name not in result:
            continue
        run = result[name]
        print(f"{name:<14} {run['steps_per_s']:>9,.0f} {run['rollout_s']:>10.2f} {run['update_s']:>9.2f} "
              f"{run['update_s'] / run['wall_s']:>12.0%}")
    if "versus_ratio" in result:
        print(f"defaults vs {' '.join(args.versus)} (abr_versus): {result['versus_ratio']:.2f}x env-steps/s")
    if "compare_ratio" in result:
        other = result["compare"]
        print(f"compare: design {other['design']} ({other['kind']}) trains at {result['compare_ratio']:.2f}x the "
              f"env-steps/s of {design.name} ({result.get('kind', 'torch')}), same settings, same process")
    print(f"ratio to SB3 ceiling: {100 * result['ratio']:.0f}%")
    return 0


def bench_readable(design) -> tuple[str, ...]:
    """What the caged benchmark reads: the design, the synthetic-trace settings, the Envivio sizes if present."""
    from simulator.paths import REPO_ROOT
    from simulator.video import envivio_dir

    envivio = envivio_dir()
    return (str(design), str(REPO_ROOT / "traces" / "synth"), *([str(envivio)] if envivio else []))


def run_validation_bench(args, design) -> int:
    from llmabr.scoring.bench import bench_validation
    from llmabr.train.config import load_config

    config = load_config(None, [f"total_steps={args.steps}", f"eval_every_steps={args.eval_every}"])
    print(f"design {design.name}: {args.steps:,} steps per run, validation every {args.eval_every:,} steps on "
          f"{config.val_max_traces} synthetic {config.network} traces, {args.rounds} runs per arm, alternating")

    def report(arm, index, rate):
        print(f"  {arm:<8} run {index + 1}: {rate:,.0f} env-steps/s (whole run, wall-clock)", flush=True)

    result = bench_validation(design, config, args.rounds, report)
    print(f"trusted validation vs in-process validation: {result['ratio']:.3f}x env-steps/s "
          f"(median {statistics.median(result['trusted']):,.0f} vs {statistics.median(result['local']):,.0f})")
    return 0


def run_search_bench(args) -> int:
    import time

    from rich.console import Console

    from llmabr.search.bench import bench_search, format_scaling, format_table
    from llmabr.search.config import load_search_config

    overrides = [*args.set, f"network={args.network}", f"traces={args.traces}"]
    try:
        config = load_search_config(None, overrides)  # settings errors before anything starts
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.designs < 1:
        print("error: --designs must be at least 1", file=sys.stderr)
        return 2
    out = args.out or Path("runs") / f"bench-search-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and any(out.iterdir()):
        print(f"error: {out} is not empty", file=sys.stderr)
        return 2
    console = Console(stderr=True)
    if args.scaling and args.workers < 2:
        print("error: --scaling compares 1 worker with --workers, which must be at least 2", file=sys.stderr)
        return 2
    console.print(f"screening the same {args.designs} offline designs twice ({config.network}, traces {config.traces}, "
                  f"S2 {config.budget.screen_steps:,} steps): "
                  + (f"with 1 worker, then {args.workers}" if args.scaling
                     else f"{args.workers} workers, with early stopping, then without"))
    arms = bench_search(out, args.designs, overrides, args.workers, args.seed, console,
                        compare="workers" if args.scaling else "early-stop")
    print(format_scaling(arms) if args.scaling else format_table(arms, config.budget.screen_steps))
    print(f"runs and bench.json: {out}")
    return 0
