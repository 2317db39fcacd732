"""``llmabr bench search``: designs screened (S0 -> S1 -> S2) per hour, with and without S2 early stopping
(``compare="early-stop"``), or with 1 and N workers (``compare="workers"``: the scaling efficiency).

Both arms screen the same designs in the same order: the offline proposer writes them once
(half state designs, half network designs, each a mutation of the seed), and each arm is a real
``llmabr search`` (screening only: ``budget.train_seeds = 0``) that replays them, on the same
traces, with the same workers, one arm after the other in this process and on one Ray. Each arm
also screens the seed design first (its curve is the early-stopping reference), as every search
does. A design counts as screened when S2 reached a verdict on it (trained to the end, or
stopped early); designs rejected by S0/S1 are counted apart.

Throughput is designs screened per hour of the arm's wall-clock, from the start of the search to
the last S2 result; the ratio between the arms is the speed-up early stopping buys, or the scaling
from 1 to N workers. Each arm also reports what sizing a cluster needs: worker seconds per design in
S0/S1 and in S2, the driver's own time per task (building a task's data, writing its results into
the archive), the latency Ray adds per task (the archive's task time minus the worker's), and the
object-store traffic per design (task data both ways, plus the traces and probe rows put once).
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
    workers: int = 0
    check_worker_s: float = 0.0  # S0+S1 worker seconds, mean per check (the seed's included)
    screen_worker_s_mean: float = 0.0  # S2 worker seconds, mean per screen
    driver_ms_per_task: float = 0.0  # the driver's own time per task: dispatch + record
    ray_s_per_task: float = 0.0  # archive task time (claim to recorded) minus the worker's own time
    to_worker_kb_per_design: float = 0.0  # task data sent, per design (check + screen)
    from_worker_kb_per_design: float = 0.0  # results returned, per design (check.json + the S2 run folder)
    shared_kb: float = 0.0  # traces, video and probe rows, put once per search
    ray_startup_s: float = 0.0  # the local Ray's start (shared by the arms; 0 if Ray was already up)

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


def run_arm(name: str, out: Path, designs: Path, early_stop: bool, overrides: list[str], executor, console,
            workers: int | None = None) -> ArmResult:
    from llmabr.search.loop import SEED_NAME, Search

    n = len([p for p in designs.iterdir() if p.is_dir()])
    workers = workers or executor.workers
    config = load_search_config(None, [
        *overrides, "proposer=replay", f"replay={designs}", f"budget.designs={n}", "budget.train_seeds=0",
        f"early_stop={'true' if early_stop else 'false'}", "budget.minutes=100000", f"queue_ahead={max(4, n)}",
        f"workers={workers}"])
    started = time.monotonic()
    search = Search(out / name, config, console)
    executor.workers = workers  # one Ray for every arm; this arm keeps `workers` tasks in flight
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
    cost = task_costs(search.archive.tasks(), search.driver_stats, len(designs_rows) + 1)
    search.archive.close()
    return ArmResult(
        name=name, wall_s=wall_s, screened=len(screened),
        stopped_early=sum(1 for d in screened if d["metrics"]["S2"].get("stopped_early")),
        rejected_s0_s1=sum(1 for d in designs_rows if d["status"] == "rejected" and not d["metrics"].get("S2")),
        screen_worker_s=worker_s, screen_steps=steps,
        best_val_qoe=ranked[0]["val_qoe"] if ranked else None, best_name=ranked[0]["name"] if ranked else None,
        workers=workers, **cost)


def task_costs(tasks: list[dict], driver_stats: dict, n_designs: int) -> dict:
    """Per-task and per-design costs of a search, from its archive's task rows and the driver's counters."""
    def mean(values):
        return sum(values) / len(values) if values else 0.0

    def worker_s(stage):
        return [t["result"]["worker"]["wall_s"] for t in tasks if t["stage"] == stage and t["status"] == "done"
                and (t["result"] or {}).get("worker")]

    ray_s = [t["finished_s"] - t["started_s"] - t["result"]["worker"]["wall_s"] for t in tasks
             if t["finished_s"] is not None and t["started_s"] is not None and (t["result"] or {}).get("worker")]
    counted = [stats for stats in driver_stats.values() if stats.get("tasks")]
    n_tasks = sum(stats["tasks"] for stats in counted)
    return {
        "check_worker_s": mean(worker_s("check")), "screen_worker_s_mean": mean(worker_s("screen")),
        "driver_ms_per_task": 1000.0 * sum(stats["driver_s"] for stats in counted) / max(n_tasks, 1),
        "ray_s_per_task": mean(ray_s),
        "to_worker_kb_per_design": sum(stats["to_worker_bytes"] for stats in counted) / 1000.0 / max(n_designs, 1),
        "from_worker_kb_per_design": sum(stats["from_worker_bytes"] for stats in counted) / 1000.0 / max(n_designs, 1),
        "shared_kb": sum(stats.get("shared_bytes", 0) for stats in driver_stats.values()) / 1000.0,
    }


def bench_search(out: Path, n_designs: int, overrides: list[str], workers: int, seed: int, console,
                 compare: str = "early-stop") -> list[ArmResult]:
    """Both arms, one after the other, on one local Ray of ``workers`` CPUs."""
    from llmabr.search.executor import RayExecutor

    if compare not in ("early-stop", "workers"):
        raise ValueError(f"compare 'early-stop' or 'workers', not {compare!r}")
    out.mkdir(parents=True, exist_ok=True)
    designs = write_designs(out, n_designs, seed).resolve()
    executor = RayExecutor(workers)
    plan = ([("early-stop", True, workers), ("no-early-stop", False, workers)] if compare == "early-stop"
            else [("1-worker", True, 1), (f"{workers}-workers", True, workers)])
    try:
        arms = [run_arm(name, out, designs, early_stop, overrides, executor, console, arm_workers)
                for name, early_stop, arm_workers in plan]
    finally:
        executor.shutdown()
    for arm in arms:
        arm.ray_startup_s = executor.startup_s
    (out / "bench.json").write_text(json.dumps([{**vars(arm), "per_hour": arm.per_hour} for arm in arms], indent=1))
    return arms


def format_scaling(arms: list[ArmResult]) -> str:
    """1 vs N workers side by side, with the per-design costs that size a cluster."""
    lines = [f"{'arm':<11} {'workers':>7} {'screened':>8} {'wall min':>8} {'designs/h':>9} {'S0+S1 s':>8} "
             f"{'S2 s':>6} {'driver ms/task':>14} {'Ray s/task':>10} {'KB out/design':>13} {'KB back/design':>14}"]
    for arm in arms:
        lines.append(f"{arm.name:<11} {arm.workers:>7} {arm.screened:>8} {arm.wall_s / 60:>8.1f} {arm.per_hour:>9.1f} "
                     f"{arm.check_worker_s:>8.1f} {arm.screen_worker_s_mean:>6.1f} {arm.driver_ms_per_task:>14.1f} "
                     f"{arm.ray_s_per_task:>10.2f} {arm.to_worker_kb_per_design:>13.1f} "
                     f"{arm.from_worker_kb_per_design:>14.1f}")
    one, many = arms
    if one.per_hour > 0:
        ratio = many.per_hour / one.per_hour
        lines.append(f"scaling: {many.workers} workers screen {ratio:.2f}x the designs per hour of 1 worker "
                     f"(efficiency {100 * ratio / many.workers:.0f}%)")
    lines.append(f"put once per search: {arms[0].shared_kb:.0f} KB (traces, video, probe rows); "
                 f"local Ray start-up: {arms[0].ray_startup_s:.1f} s")
    return "\n".join(lines)


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
