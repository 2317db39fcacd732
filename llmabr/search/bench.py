"""``llmabr bench search``: designs screened (S0 -> S1 -> S2) per hour, with and without S2 early stopping.

Both arms screen the same designs in the same order: the offline proposer writes them once
(half state designs, half network designs, each a mutation of the seed), and each arm is a real
``llmabr search`` (screening only: ``budget.train_seeds = 0``) that replays them, on the same
traces, with the same workers, one arm after the other in this process and on one Ray. Each arm
also screens the seed design first (its curve is the early-stopping reference), as every search
does. A design counts as screened when S2 reached a verdict on it (trained to the end, or
stopped early); designs rejected by S0/S1 are counted apart.

Throughput is designs screened per hour of the arm's wall-clock, from the start of the search to
the last S2 result; the ratio between the arms is the speed-up early stopping buys.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from llmabr.proposer.offline import OfflineProposer
from llmabr.search.config import load_search_config


@dataclass
class ArmResult:
    name: str
    wall_s: float
    screened: int  # S2 verdicts on proposed designs (the seed not counted)
    stopped_early: int
    rejected_s0_s1: int
    screen_worker_s: float  # worker seconds spent in S2, the seed's included
    screen_steps: int  # env steps trained in S2, the seed's included
    best_val_qoe: float | None
    best_name: str | None

    @property
    def per_hour(self) -> float:
        return 3600.0 * self.screened / self.wall_s if self.wall_s > 0 else 0.0


def write_designs(out: Path, n: int, seed: int) -> Path:
    """``n`` distinct offline designs (mutations of the seed), half state and half network, as folders."""
    proposer = OfflineProposer(seed)
    states = proposer.propose("state", (n + 1) // 2)
    networks = proposer.propose("network", n // 2)
    folder = out / "designs"
    folder.mkdir(parents=True, exist_ok=True)
    ordered = [d for pair in zip(states, networks) for d in pair] + states[len(networks):]
    for index, proposal in enumerate(ordered):  # a numbered prefix keeps the replay order
        proposal.write(folder / f"{index:03d}-{proposal.name}")
    return folder


def run_arm(name: str, out: Path, designs: Path, early_stop: bool, overrides: list[str], executor, console) -> ArmResult:
    from llmabr.search.loop import SEED_NAME, Search

    n = len([p for p in designs.iterdir() if p.is_dir()])
    config = load_search_config(None, [
        *overrides, "proposer=replay", f"replay={designs}", f"budget.designs={n}", "budget.train_seeds=0",
        f"early_stop={'true' if early_stop else 'false'}", "budget.minutes=100000", f"queue_ahead={max(4, n)}"])
    started = time.monotonic()
    search = Search(out / name, config, console)
    search.run(executor)
    screens = [t for t in search.archive.tasks(stage="screen") if t["status"] == "done" or t["status"] == "failed"]
    last_screen_s = max((t["finished_s"] for t in screens if t["finished_s"]), default=None)
    first_started_s = min((t["started_s"] for t in search.archive.tasks() if t["started_s"]), default=None)
    # wall-clock from the search's start to its last S2 verdict (Ray start-up excluded: shared by both arms)
    wall_s = (last_screen_s - first_started_s) if last_screen_s and first_started_s else time.monotonic() - started
    designs_rows = [d for d in search.archive.designs() if d["name"] != SEED_NAME]
    screened = [d for d in designs_rows if d["metrics"].get("S2")]
    steps = sum(int((t["result"] or {}).get("steps") or 0) for t in screens)
    worker_s = sum(t["finished_s"] - t["started_s"] for t in screens if t["finished_s"] and t["started_s"])
    ranked = [d for d in search.archive.top(stage="screened") if d["name"] != SEED_NAME]
    search.archive.close()
    return ArmResult(
        name=name, wall_s=wall_s, screened=len(screened),
        stopped_early=sum(1 for d in screened if d["metrics"]["S2"].get("stopped_early")),
        rejected_s0_s1=sum(1 for d in designs_rows if d["status"] == "rejected" and not d["metrics"].get("S2")),
        screen_worker_s=worker_s, screen_steps=steps,
        best_val_qoe=ranked[0]["val_qoe"] if ranked else None, best_name=ranked[0]["name"] if ranked else None)


def bench_search(out: Path, n_designs: int, overrides: list[str], workers: int, seed: int, console) -> list[ArmResult]:
    from llmabr.search.executor import RayExecutor

    out.mkdir(parents=True, exist_ok=True)
    designs = write_designs(out, n_designs, seed).resolve()
    executor = RayExecutor(workers)
    try:
        arms = [run_arm(name, out, designs, early_stop, [*overrides, f"workers={workers}"], executor, console)
                for name, early_stop in (("early-stop", True), ("no-early-stop", False))]
    finally:
        executor.shutdown()
    (out / "bench.json").write_text(json.dumps([{**vars(arm), "per_hour": arm.per_hour} for arm in arms], indent=1))
    return arms


def format_table(arms: list[ArmResult], screen_steps: int) -> str:
    lines = [f"{'arm':<15} {'screened':>8} {'stopped':>7} {'S0/S1 rej':>9} {'wall min':>8} {'designs/h':>9} "
             f"{'S2 steps':>10} {'S2 worker s':>11}  best (validation)"]
    for arm in arms:
        best = f"{arm.best_val_qoe:.3f} {arm.best_name}" if arm.best_val_qoe is not None else "-"
        lines.append(f"{arm.name:<15} {arm.screened:>8} {arm.stopped_early:>7} {arm.rejected_s0_s1:>9} "
                     f"{arm.wall_s / 60:>8.1f} {arm.per_hour:>9.1f} {arm.screen_steps:>10,} {arm.screen_worker_s:>11.0f}  {best}")
    with_stop, without = arms
    if without.per_hour > 0 and without.screen_steps > 0:
        lines.append(f"S2 budget {screen_steps:,} steps per design; early stopping: "
                     f"{with_stop.per_hour / without.per_hour:.2f}x designs per hour, "
                     f"{100 * (1 - with_stop.screen_steps / without.screen_steps):.0f}% fewer S2 steps")
    return "\n".join(lines)
