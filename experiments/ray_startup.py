"""Issue #20, point 3: how long a local Ray takes to start, before and after, and what it starts.

    python experiments/ray_startup.py [--rounds 5] [--out experiments/results/ray_startup]

Three ways to start the search's local Ray, each measured in a fresh process, alternating, ``--rounds``
times: ``before`` (the executor until issue 20: ``include_dashboard=False`` and a job-wide
``runtime_env`` that set ``OMP_NUM_THREADS``), ``after`` (``RayExecutor(2)`` as it is now: no
runtime_env, since Ray already sets ``OMP_NUM_THREADS=1`` in a 1-CPU task's worker), and ``dashboard``
(``RayExecutor(2, dashboard=True)``, what ``--ray-dashboard`` asks for). For each: ``ray.init``'s
wall-clock, the time until a first 1-CPU task has answered (what a search waits for before its first
evaluation), the processes Ray started and their resident memory. Medians go to ``summary.md``,
every measurement to ``startup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("before", "after", "dashboard")

PROBE = r"""
import json, os, sys, time
from pathlib import Path
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
variant = sys.argv[1]
started = time.perf_counter()
if variant == "before":
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
else:
    from llmabr.search.executor import RayExecutor
    import ray
    started = time.perf_counter()  # the executor's module imports ray: not Ray's start-up
    RayExecutor(2, dashboard=variant == "dashboard")
init_s = time.perf_counter() - started

@ray.remote(num_cpus=1)
def first():
    return os.environ.get("OMP_NUM_THREADS")

omp = ray.get(first.remote())
first_task_s = time.perf_counter() - started

names, rss = [], 0
from llmabr.sandbox.cage import descendants
for pid in descendants(os.getpid()):
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        continue
    words = [a.decode() for a in argv if a]
    script = next((Path(w).name for w in words if w.endswith(".py")), None)
    name = script or (Path(words[0]).name if words and "/" in words[0] else (words[0] if words else "?"))
    if script is None and ("-c" in words or "'" in name):  # a python -c child of the dashboard (its modules)
        name = "python -c (dashboard module)"
    names.append(name)
ray.shutdown()
print(json.dumps({"variant": variant, "init_s": init_s, "first_task_s": first_task_s, "omp_num_threads": omp,
                  "processes": sorted(names), "rss_mb": rss / 1e6}))
"""


def measure(variant: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, variant], cwd=REPO, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"{variant}: the probe failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "ray_startup")
    args = parser.parse_args()
    runs = []
    for round_index in range(args.rounds):
        for variant in VARIANTS:
            runs.append(measure(variant))
            print(f"round {round_index + 1} {variant:<9} init {runs[-1]['init_s']:5.1f} s, first task "
                  f"{runs[-1]['first_task_s']:5.1f} s, {len(runs[-1]['processes'])} processes", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "startup.json").write_text(json.dumps({"cpus": os.cpu_count(), "load_before": os.getloadavg(),
                                                       "runs": runs}, indent=1) + "\n")
    lines = [f"Local Ray start-up, {args.rounds} rounds alternating, a fresh process each, {os.cpu_count()} CPUs "
             f"(load average {os.getloadavg()[0]:.1f} at the end); medians.", "",
             "| variant | ray.init s | first task answered s | processes | resident MB | started |", "|---|---:|---:|---:|---:|---|"]
    for variant in VARIANTS:
        mine = [run for run in runs if run["variant"] == variant]
        kinds = sorted(set(mine[-1]["processes"]))
        lines.append(f"| {variant} | {statistics.median(r['init_s'] for r in mine):.1f} | "
                     f"{statistics.median(r['first_task_s'] for r in mine):.1f} | {len(mine[-1]['processes'])} | "
                     f"{statistics.median(r['rss_mb'] for r in mine):.0f} | {', '.join(kinds)} |")
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
