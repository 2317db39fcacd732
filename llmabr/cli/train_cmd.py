"""``llmabr train DESIGN``: SB3 PPO on the simulator, in the cage, with a live progress bar."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def add_parser(commands) -> None:
    train = commands.add_parser("train", help="train a design with PPO (in the cage); results go to a run folder")
    train.add_argument("design", type=Path, help="design folder")
    train.add_argument("--network", help="network type (broadband, 3g, 4g, 5g, satellite)")
    train.add_argument("--traces", help="training trace folder, or 'synthetic' (validation is split from it)")
    train.add_argument("--steps", type=int, help="env steps of training (total_steps)")
    train.add_argument("--seed", type=int)
    train.add_argument("--config", type=Path, help="TOML file over the defaults (llmabr/train/config.py)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. ppo.n_epochs=2")
    train.add_argument("--out", type=Path, help="run folder (default: runs/train-<design>-<network>-s<seed>-<time>)")
    train.add_argument("--deadline-s", type=float, default=3600.0, help="wall-clock limit of the caged trainer")
    train.set_defaults(handler=run)


def run(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from llmabr.design.format import DesignError, load_design
    from llmabr.train.caged import train_caged
    from llmabr.train.config import load_config

    console = Console(stderr=True)
    overrides = list(args.set)
    for flag, key in ((args.network, "network"), (args.traces, "traces"), (args.steps, "total_steps"), (args.seed, "seed")):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    try:
        config = load_config(args.config, overrides)
        design = load_design(args.design)
    except (ValueError, OSError, DesignError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = args.out or Path("runs") / f"train-{design.name}-{config.network}-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    console.print(f"training [bold]{design.name}[/] on {config.network} ({config.traces}) for {config.total_steps:,} "
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
            parts = [f"{state['steps_per_s']:,.0f} steps/s"]
            if state.get("recent_qoe_per_chunk") is not None:
                parts.append(f"train QoE {state['recent_qoe_per_chunk']:.3f}")
            if state.get("val_qoe_per_chunk") is not None:
                parts.append(f"val QoE {state['val_qoe_per_chunk']:.3f}")
            bar.update(task, completed=state["steps"], info=", ".join(parts))

        try:
            result = train_caged(args.design, config, Path(out), wall_s=args.deadline_s, on_poll=poll)
        except FileExistsError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    if result["status"] != "ok":
        console.print(f"[bold red]training failed[/]: {result['reason']}")
        return 1
    console.print(f"done: {result['steps']:,} steps in {result['wall_s']:.0f} s ({result['steps_per_s']:,.0f}/s); "
                  f"validation QoE per chunk: best {result['best_val_qoe']:.3f}, final {result['final_val_qoe']:.3f}")
    return 0
