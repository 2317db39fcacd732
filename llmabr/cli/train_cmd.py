"""``llmabr train DESIGN``: SB3 PPO on the simulator, in the cage, with a live progress bar."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def add_parser(commands) -> None:
    from llmabr.cli.traces_cmd import add_trace_format

    train = commands.add_parser("train", help="train a design with PPO (in the cage); results go to a run folder")
    train.add_argument("design", type=Path, help="design folder")
    train.add_argument("--network", help="network type (broadband, 3g, 4g, 5g, satellite)")
    train.add_argument("--traces", help="training trace folder, or 'synthetic' (validation is split from it)")
    add_trace_format(train)
    train.add_argument("--steps", type=int, help="env steps of training (total_steps)")
    train.add_argument("--seed", type=int)
    train.add_argument("--config", type=Path, help="TOML file over the defaults (llmabr/train/config.py)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. ppo.n_epochs=2")
    train.add_argument("--out", type=Path, help="run folder (default: runs/train-<design>-<network>-s<seed>-<time>)")
    train.add_argument("--deadline-s", type=float, default=3600.0, help="wall-clock limit of the caged trainer")
    train.add_argument("--seeds", type=int, default=1, help="train this many seeds (seed, seed+1, ...) and report mean and spread")
    train.add_argument("--early-stop", action="store_true",
                       help="S2: stop runs clearly below the seed design's curve (trains and caches that curve first if needed)")
    train.add_argument("--cache-dir", type=Path, default=Path("runs") / ".seed-curves", help="where seed curves are cached")
    train.set_defaults(handler=run)


def run(args) -> int:
    from dataclasses import replace

    from rich.console import Console

    from llmabr.design.format import DesignError, load_design
    from llmabr.train.config import load_config

    console = Console(stderr=True)
    overrides = list(args.set)
    if args.trace_format != "auto":
        overrides.append(f"trace_format={args.trace_format}")
    for flag, key in ((args.network, "network"), (args.traces, "traces"), (args.steps, "total_steps"), (args.seed, "seed")):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    try:
        config = load_config(args.config, overrides)
        design = load_design(args.design)
    except (ValueError, OSError, DesignError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    base = args.out or Path("runs") / f"train-{design.name}-{config.network}-{time.strftime('%Y%m%d-%H%M%S')}"
    reference = None
    if args.early_stop:
        config = replace(config, early_stop=replace(config.early_stop, enabled=True))
        reference = seed_reference(config, args, console)
        if reference is None:
            return 1
    results = []
    for offset in range(args.seeds):
        run_config = replace(config, seed=config.seed + offset)
        out = base / f"seed-{run_config.seed}" if args.seeds > 1 else base
        result = train_one(args.design, design.name, run_config, out, args, console, reference)
        if result is None:
            return 2
        results.append(result)
    ok = [r for r in results if r["status"] == "ok"]
    if args.seeds > 1 and ok:
        import numpy as np

        best = np.array([r["best_val_qoe"] for r in ok])
        console.print(f"{len(ok)}/{len(results)} seeds finished; best validation QoE per chunk: mean {best.mean():.3f}, "
                      f"std {best.std(ddof=1) if len(best) > 1 else 0.0:.3f}, min {best.min():.3f}, max {best.max():.3f}")
    return 0 if len(ok) == len(results) else 1


def seed_reference(config, args, console):
    """The seed design's validation curve for these settings, from the cache or trained now."""
    from llmabr.train.config import to_dict
    from llmabr.train.early_stop import seed_curve_path
    from simulator.paths import REPO_ROOT

    path = seed_curve_path(args.cache_dir, config.network, to_dict(config))
    if path.exists():
        console.print(f"S2 reference: cached seed curve {path}")
        return json.loads(path.read_text())
    console.print(f"S2 reference: training the seed design first (cached afterwards in {path})")
    from dataclasses import replace

    seed_config = replace(config, early_stop=replace(config.early_stop, enabled=False))
    out = path.with_suffix("")
    result = train_one(REPO_ROOT / "designs" / "pensieve", "pensieve", seed_config, out, args, console, None)
    if result is None or result["status"] != "ok":
        console.print("[bold red]could not train the seed design for the S2 reference[/]")
        return None
    curve = json.loads((out / "curve.json").read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(curve))
    return curve


def train_one(design_dir, name, config, out, args, console, reference):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from llmabr.train.caged import train_caged

    console.print(f"training [bold]{name}[/] on {config.network} ({config.traces}) for {config.total_steps:,} "
                  f"steps, seed {config.seed}, in the cage -> {out}")
    progress_file = Path(out).resolve() / "progress.json"
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,} steps"),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("PPO", total=config.total_steps, info="starting")

        def poll():
            try:
                state = json.loads(progress_file.read_text())
            except (OSError, ValueError):
                return
            if state.get("phase"):  # imitation before PPO (train.warm_start)
                bar.update(task, info=str(state["phase"]))
                return
            parts = [f"{state['steps_per_s']:,.0f} steps/s"]
            if state.get("recent_qoe_per_chunk") is not None:
                parts.append(f"train QoE {state['recent_qoe_per_chunk']:.3f}")
            if state.get("val_qoe_per_chunk") is not None:
                parts.append(f"val QoE {state['val_qoe_per_chunk']:.3f}")
            bar.update(task, completed=state["steps"], info=", ".join(parts))

        try:
            result = train_caged(design_dir, config, Path(out), wall_s=args.deadline_s, on_poll=poll,
                                 reference_curve=reference)
        except FileExistsError as error:
            print(f"error: {error}", file=sys.stderr)
            return None
    if result["status"] != "ok":
        console.print(f"[bold red]training failed[/]: {result['reason']}")
    elif result.get("stopped_early"):
        console.print(f"[yellow]{result['reason']}[/]")
    else:
        console.print(f"done: {result['steps']:,} steps in {result['wall_s']:.0f} s ({result['steps_per_s']:,.0f}/s); "
                      f"validation QoE per chunk: best {result['best_val_qoe']:.3f}, final {result['final_val_qoe']:.3f}")
    return result
