"""Issue 18 point 5: over the rounds of an evolve search, does the offline proposer's best validation score improve?

    python experiments/offline_evolve.py run --network broadband 4g --arm conditioned seed-only
    python experiments/offline_evolve.py table

Two arms, each a real ``llmabr search --mode evolve`` with the same rounds (``ROUNDS`` of
``ROUND_SIZE`` designs: states, networks, states, ...), the same S2 budget, seed, workers and
traces (``traces/splits/<type>/train.txt``, validation ``val.txt``; the type's default ladder):

- ``conditioned``: the offline proposer as the search runs it (``proposer=offline``): mutations
  biased by the training traces' statistics, parents chosen by validation score (tournament
  among the screened designs and the seed), failed designs' neighbourhoods avoided;
- ``seed-only``: what the offline proposer did before: every design a mutation of the seed, with
  no trace profile. What it proposes does not depend on the archive, so it is written up front
  (``OfflineProposer(seed)`` without profile or parents, in the evolve order) and screened by
  the same search through ``proposer=replay``.

Screening only (``budget.train_seeds=0``): a design's score is its S2 best validation QoE per
chunk, the number every choice of the search is made on; test traces are never used. S2 early
stopping is on, as in any search (a design trailing the seed's curve is stopped and rejected).
``queue_ahead=2`` keeps proposals close behind the evaluations, so a round's same-kind parents
(two rounds back) are screened before it is proposed.

Per run, ``experiments/results/offline_evolve/<type>-<arm>-s<seed>.json``: the trace profile, the
seed design's score, every design (round, kind, parent, validation QoE, verdict) and per round
the best so far; ``table`` writes README.md from all of them. Run folders: runs/offline_evolve/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console

from llmabr.proposer.context import trace_profile
from llmabr.proposer.offline import OfflineProposer
from llmabr.search.config import load_search_config
from simulator.paths import REPO_ROOT

RESULTS = REPO_ROOT / "experiments" / "results" / "offline_evolve"
RUNS = REPO_ROOT / "runs" / "offline_evolve"
ROUNDS = 6
ROUND_SIZE = 4
SETTINGS = ["mode=evolve", f"round_size={ROUND_SIZE}", f"budget.designs={ROUNDS * ROUND_SIZE}", "budget.train_seeds=0",
            "budget.minutes=100000", "queue_ahead=2"]


def overrides(network: str, seed: int, workers: int) -> list[str]:
    splits = REPO_ROOT / "traces" / "splits" / network
    return [*SETTINGS, f"network={network}", f"traces={splits / 'train.txt'}", f"train.val_traces={splits / 'val.txt'}",
            f"seed={seed}", f"workers={workers}"]


def write_seed_only(folder: Path, seed: int) -> Path:
    """The previous offline proposer's designs for this search: seed mutations, no profile, in evolve order."""
    proposer = OfflineProposer(seed)
    states = proposer.propose("state", ROUND_SIZE * ((ROUNDS + 1) // 2))
    networks = proposer.propose("network", ROUND_SIZE * (ROUNDS // 2))
    folder.mkdir(parents=True, exist_ok=True)
    for round_index in range(ROUNDS):
        source = states if round_index % 2 == 0 else networks
        start = ROUND_SIZE * (round_index // 2)
        for offset, proposal in enumerate(source[start:start + ROUND_SIZE]):
            proposal.write(folder / f"{round_index * ROUND_SIZE + offset:03d}-{proposal.name}")  # numbered: replay order
    return folder


def run_one(network: str, arm: str, seed: int, workers: int, executor, console) -> dict:
    from llmabr.search.loop import SEED_NAME, Search

    key = f"{network}-{arm}-s{seed}"
    run_dir = RUNS / key
    settings = overrides(network, seed, workers)
    if arm == "conditioned":
        settings.append("proposer=offline")
    else:
        settings += ["proposer=replay", f"replay={write_seed_only(RUNS / f'{key}-designs', seed)}"]
    config = load_search_config(None, settings)
    started = time.monotonic()
    search = Search(run_dir, None if (run_dir / "archive.sqlite").exists() else config, console)  # resumes if there
    search.run(executor)
    archive = search.archive
    scale = archive.meta("val_yardsticks")
    normalized = lambda qoe: None if qoe is None else (qoe - scale["bb"]) / (scale["optimal"] - scale["bb"])  # noqa: E731
    seed_row = archive.design(SEED_NAME)
    designs = [{"name": d["name"], "round": d["round"], "kind": d["kind"], "parent": d["parent"], "status": d["status"],
                "reason": d["reason"][:160], "val_qoe": d["val_qoe"], "val_normalized": normalized(d["val_qoe"]),
                "stopped_early": bool(d["metrics"].get("S2", {}).get("stopped_early"))}
               for d in archive.designs() if d["name"] != SEED_NAME]
    rounds, best_so_far = [], None
    for index in range(ROUNDS):
        members = [d for d in designs if d["round"] == index]
        scored = [d["val_qoe"] for d in members if d["val_qoe"] is not None]
        kept = [d["val_qoe"] for d in members if d["val_qoe"] is not None and d["status"] == "ok"]
        if kept:
            best_so_far = max(kept + ([best_so_far] if best_so_far is not None else []))
        rounds.append({"round": index, "kind": members[0]["kind"] if members else None, "designs": len(members),
                       "passed_s2": len(kept), "stopped_early": sum(d["stopped_early"] for d in members),
                       "rejected_s0_s1": sum(d["status"] != "ok" and d["val_qoe"] is None for d in members),
                       "round_best": max(kept, default=None), "round_mean": sum(scored) / len(scored) if scored else None,
                       "best_so_far": best_so_far, "best_so_far_normalized": normalized(best_so_far)})
    result = {"network": network, "arm": arm, "seed": seed, "settings": settings, "wall_s": time.monotonic() - started,
              "profile": vars(trace_profile(network, config.traces)), "yardsticks": scale,
              "seed_val_qoe": seed_row["val_qoe"] if seed_row else None,
              "seed_normalized": normalized(seed_row["val_qoe"]) if seed_row else None, "rounds": rounds, "designs": designs}
    archive.close()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{key}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def rescore(network: str, seed: int, fresh_seeds: list[int]) -> dict:
    """The seed design and each arm's best design screened again with other training seeds (S2 budget, no early
    stop): is a search's best better than the seed design, or only the luckiest S2 run of the round?"""
    from dataclasses import replace

    from llmabr.search.loop import SEED_NAME
    from llmabr.train.caged import train_caged

    out = {"network": network, "search_seed": seed, "fresh_seeds": fresh_seeds, "designs": {}}
    for arm in ("conditioned", "seed-only"):
        path = RESULTS / f"{network}-{arm}-s{seed}.json"
        if not path.exists():
            print(f"{network} {arm} s{seed}: no search result ({path.name}), skipped", file=sys.stderr)
            continue
        result = json.loads(path.read_text())
        kept = [d for d in result["designs"] if d["status"] == "ok" and d["val_qoe"] is not None]
        best = max(kept, key=lambda d: d["val_qoe"])
        run_dir = RUNS / f"{network}-{arm}-s{seed}"
        candidates = [(f"best of {arm}", best["name"], best["val_qoe"])]
        if arm == "conditioned":
            candidates.insert(0, ("seed design", SEED_NAME, result["seed_val_qoe"]))
        config = load_search_config(None, result["settings"])
        for label, name, search_score in candidates:
            scores = []
            for fresh in fresh_seeds:
                train_config = replace(config.train, network=network, traces=config.traces,
                                       total_steps=config.budget.screen_steps, seed=fresh,
                                       eval_every_steps=config.budget.screen_eval_every)
                folder = run_dir / "designs" / name
                rescore_dir = RUNS / "rescore" / f"{network}-{arm}-{name}-s{fresh}"
                shutil.rmtree(rescore_dir, ignore_errors=True)
                outcome = train_caged(folder, train_config, rescore_dir, wall_s=3600.0, val_yardsticks=result["yardsticks"])
                scores.append(outcome.get("best_val_qoe"))
                print(f"{network} {label} {name} seed {fresh}: {fmt(scores[-1])}", file=sys.stderr)
            out["designs"][label] = {"name": name, "search_val_qoe": search_score, "fresh_val_qoe": scores}
    (RESULTS / f"rescore-{network}-s{seed}.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


README_HEAD = """# Offline proposer over the rounds of an evolve search

Written by `python experiments/offline_evolve.py table` from the JSON files here (see that script's
docstring for the protocol). Scores are S2 best validation QoE per chunk (normalized score in
brackets: BB 0, offline optimum 1); one training seed per design, so a round's best is the luckiest
of its designs' runs: the second table screens the seed design and each arm's best again on fresh
training seeds.

"""


def fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table() -> str:
    results = [json.loads(path.read_text()) for path in sorted(RESULTS.glob("*-s[0-9]*.json"))
               if not path.name.startswith("rescore-")]
    lines = ["| type | arm | seed | seed design | " + " | ".join(f"best after round {r}" for r in range(ROUNDS))
             + f" | last - round 0 | top-3 mean | mean of each round (0..{ROUNDS - 1}) | stopped early / S2 verdicts |",
             "|---|---|---:|---:|" + "---:|" * ROUNDS + "---:|---:|---|---|"]
    for result in sorted(results, key=lambda r: (r["network"], r["arm"], r["seed"])):
        rounds = result["rounds"]
        bests = [f"{fmt(r['best_so_far'])} ({fmt(r['best_so_far_normalized'], 2)})" for r in rounds]
        first, last = rounds[0]["best_so_far"], rounds[-1]["best_so_far"]
        gain = fmt(last - first) if first is not None and last is not None else "-"
        means = " / ".join(fmt(r["round_mean"], 2) for r in rounds)
        kept = sorted((d["val_qoe"] for d in result["designs"] if d["status"] == "ok" and d["val_qoe"] is not None),
                      reverse=True)
        top3 = fmt(sum(kept[:3]) / 3) if len(kept) >= 3 else "-"
        stopped = sum(r["stopped_early"] for r in rounds)
        verdicts = sum(r["passed_s2"] + r["stopped_early"] for r in rounds)
        lines.append(f"| {result['network']} | {result['arm']} | {result['seed']} | {fmt(result['seed_val_qoe'])} "
                     f"({fmt(result['seed_normalized'], 2)}) | " + " | ".join(bests) + f" | {gain} | {top3} | {means} | "
                     f"{stopped} / {verdicts} |")
    lines += ["", "| type | search seed | design | S2 score in the search | S2 score on fresh training seeds | fresh mean |",
              "|---|---:|---|---:|---|---:|"]
    for path in sorted(RESULTS.glob("rescore-*.json")):
        rescored = json.loads(path.read_text())
        for label, row in rescored["designs"].items():
            fresh = [score for score in row["fresh_val_qoe"] if score is not None]
            lines.append(f"| {rescored['network']} | {rescored['search_seed']} | {label} ({row['name']}) | "
                         f"{fmt(row['search_val_qoe'])} | {' / '.join(fmt(v) for v in row['fresh_val_qoe'])} "
                         f"(seeds {', '.join(map(str, rescored['fresh_seeds']))}) | "
                         f"{fmt(sum(fresh) / len(fresh)) if fresh else '-'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run")
    run.add_argument("--network", nargs="+", default=["broadband", "4g"])
    run.add_argument("--arm", nargs="+", choices=["conditioned", "seed-only"], default=["conditioned", "seed-only"])
    run.add_argument("--seed", nargs="+", type=int, default=[0])
    run.add_argument("--workers", type=int, default=1)
    commands.add_parser("table")
    again = commands.add_parser("rescore", help="the seed design and each arm's best, screened on fresh seeds")
    again.add_argument("--network", nargs="+", default=["broadband", "4g"])
    again.add_argument("--seed", type=int, default=0, help="the searches' seed")
    again.add_argument("--fresh-seeds", nargs="+", type=int, default=[11, 12, 13])
    args = parser.parse_args()
    if args.command == "table":
        text = table()
        (RESULTS / "README.md").write_text(README_HEAD + text + "\n")
        print(text)
        return 0
    if args.command == "rescore":
        for network in args.network:
            rescore(network, args.seed, args.fresh_seeds)
        return 0
    from llmabr.search.executor import RayExecutor

    console = Console(stderr=True)
    executor = RayExecutor(args.workers)
    try:
        for seed in args.seed:
            for network in args.network:
                for arm in args.arm:
                    result = run_one(network, arm, seed, args.workers, executor, console)
                    print(f"{network} {arm} s{seed}: seed design {fmt(result['seed_val_qoe'])}, best so far by round "
                          + ", ".join(fmt(r["best_so_far"]) for r in result["rounds"])
                          + f" ({result['wall_s'] / 60:.1f} min)", file=sys.stderr)
    finally:
        executor.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
