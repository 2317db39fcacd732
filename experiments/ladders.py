"""Issue 17, point 2: the old ``high-*`` video ladders next to the new ``service-*`` defaults.

    nice -n 10 python experiments/ladders.py                   # 4g, 5g, satellite (about 30 s here)
    nice -n 10 python experiments/ladders.py --network 4g      # one type

Writes ``experiments/results/ladders.md`` (the table) and ``experiments/results/ladders.json``
(every per-trace row). For each network type, on its leak-free test list
``traces/splits/<type>/test.txt``, both profiles are scored with the deterministic test protocol
(``simulator.baselines.protocol.run_test_protocol``: default mode, QoE lin, chunk 0 excluded) for
BB, RB, BOLA and RobustMPC, and with the offline optimum
(``simulator.baselines.optimal.run_optimal``: the DP with the future bandwidth known). The
ladders were fixed from public encoding ladders before this ran (``simulator/video.py``); this
only measures them, on the test lists because it reports and chooses nothing.

QoE lin is in Mbps of the profile's own ladder and its stall penalty is the ladder's top rung in
Mbps per second (``SimConfig.rebuffer_penalty_for``), so raw QoE compares algorithms within one
profile, not across profiles; "% of optimum" and the stall columns compare the profiles.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS = REPO / "experiments" / "results"
NETWORKS = ("4g", "5g", "satellite")
OLD_PROFILE = {"4g": "high-4g", "5g": "high-5g", "satellite": "high-satellite"}
ALGORITHMS = ("bb", "rb", "bola", "robustmpc", "optimal")
LABELS = {"bb": "BB", "rb": "RB", "bola": "BOLA", "robustmpc": "RobustMPC", "optimal": "optimum (offline)"}


def stall_terms(row: dict, penalty_per_s: float) -> tuple[float, float]:
    """(bitrate utility, stall penalty) of one per-trace row, QoE lin units (Mbps x chunks)."""
    return row["bitrate_kbps"] / 1000.0 * row["chunks"], penalty_per_s * row["rebuffer_s"]


def summarize(rows: list[dict], penalty_per_s: float, optimal_qoe_sum: float) -> dict:
    """Means over traces, plus how much and how often stalls weighed."""
    terms = [stall_terms(row, penalty_per_s) for row in rows]
    utility = sum(u for u, _ in terms)
    stall = sum(s for _, s in terms)
    qoe_sum = float(np.mean([row["qoe_sum"] for row in rows]))
    return {
        "qoe_per_chunk": qoe_sum / rows[0]["chunks"],
        "pct_of_optimum": 100.0 * qoe_sum / optimal_qoe_sum,
        "rebuffer_ratio": float(np.mean([row["rebuffer_ratio"] for row in rows])),
        "rebuffer_s": float(np.mean([row["rebuffer_s"] for row in rows])),
        "bitrate_kbps": float(np.mean([row["bitrate_kbps"] for row in rows])),
        "traces_with_stall": sum(row["rebuffer_s"] > 0 for row in rows),
        "traces_stall_dominated": sum(s > u for u, s in terms),
        "stall_share_of_utility": stall / utility,
        "n_traces": len(rows),
    }


def measure(network: str) -> dict:
    """Every algorithm on both profiles of ``network``'s test list: {profile: {algorithm: rows}}."""
    from simulator.baselines.optimal import run_optimal
    from simulator.baselines.protocol import run_test_protocol
    from simulator.traces import load_trace_dir
    from simulator.video import DEFAULT_PROFILE_BY_NETWORK, load_profile

    traces = load_trace_dir(REPO / "traces" / "splits" / network / "test.txt")
    out = {}
    for name in (OLD_PROFILE[network], DEFAULT_PROFILE_BY_NETWORK[network]):
        video = load_profile(name)
        per_algorithm = {}
        for algorithm in ALGORITHMS:
            started = time.perf_counter()
            if algorithm == "optimal":
                result = run_optimal(traces, video)
            else:
                result = run_test_protocol(algorithm, traces, video)
            per_algorithm[algorithm] = [{k: v for k, v in row.items() if k != "levels"}
                                        for row in result["per_trace"]]
            print(f"  {network} {name} {algorithm}: {result['mean']['qoe_per_chunk']:.3f} per chunk "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
        out[name] = {"ladder_kbps": video.bitrates_kbps.tolist(), "rows": per_algorithm}
    return out


def markdown(measured: dict) -> str:
    from simulator.config import test_config

    lines = [
        "# Video ladders: old `high-*` against the new `service-*` defaults (issue 17)", "",
        "Written by `nice -n 10 python experiments/ladders.py` (per-trace rows in `ladders.json`). Each "
        "type's leak-free test list `traces/splits/<type>/test.txt`, deterministic test protocol "
        "(default mode, QoE lin, chunk 0 excluded), the offline optimum by `run_optimal`. QoE lin is in "
        "Mbps of the profile's ladder and a stall second costs the ladder's top rung in Mbps, so raw QoE "
        "compares algorithms within a profile only; **% of optimum** and the stall columns compare "
        "profiles. *Stalled* = traces with any rebuffering; *stall-dominated* = traces whose stall "
        "penalty exceeds their whole bitrate utility (QoE below zero from stalls alone); *stall / "
        "utility* = total stall penalty over total bitrate utility. The test lists are small (4g 29, 5g 18, "
        "satellite 9 traces) and no confidence interval is given: one trace can move a mean (the last "
        "section names the largest single change).", ""]
    for network, profiles in measured.items():
        lines += [f"## {network}", ""]
        for name, data in profiles.items():
            ladder = ", ".join(f"{rate / 1000:g}" for rate in data["ladder_kbps"])
            lines.append(f"- `{name}`: {ladder} Mbps")
        lines += ["", "| profile | algorithm | QoE per chunk | % of optimum | rebuffer ratio | rebuffer s per trace "
                      "| mean bitrate kbps | stalled | stall-dominated | stall / utility |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, data in profiles.items():
            penalty = test_config().rebuffer_penalty_for(data["ladder_kbps"][-1])
            optimal_sum = float(np.mean([row["qoe_sum"] for row in data["rows"]["optimal"]]))
            for algorithm in ALGORITHMS:
                s = summarize(data["rows"][algorithm], penalty, optimal_sum)
                data.setdefault("summary", {})[algorithm] = s
                lines.append(
                    f"| `{name}` | {LABELS[algorithm]} | {s['qoe_per_chunk']:.3f} | {s['pct_of_optimum']:.1f} "
                    f"| {s['rebuffer_ratio']:.2%} | {s['rebuffer_s']:.1f} | {s['bitrate_kbps']:,.0f} "
                    f"| {s['traces_with_stall']}/{s['n_traces']} | {s['traces_stall_dominated']}/{s['n_traces']} "
                    f"| {s['stall_share_of_utility']:.1%} |")
        lines.append("")
    lines += what_changed(measured)
    return "\n".join(lines) + "\n"


def what_changed(measured: dict) -> list[str]:
    """Old profile -> new profile, per type, from the summaries ``markdown`` computed."""
    heuristics = [a for a in ALGORITHMS if a != "optimal"]
    lines = ["## What changed (old `high-*` -> new `service-*`)", ""]
    totals = {"old": [0, 0, 0], "new": [0, 0, 0]}  # stalled, stall-dominated, runs (heuristic x trace)
    for network, profiles in measured.items():
        (old_name, old), (new_name, new) = profiles.items()
        cells = []
        for algorithm in heuristics:
            before, after = old["summary"][algorithm], new["summary"][algorithm]
            cells.append(f"{LABELS[algorithm]} {before['rebuffer_ratio']:.2%} -> {after['rebuffer_ratio']:.2%}")
            for side, s in (("old", before), ("new", after)):
                totals[side][0] += s["traces_with_stall"]
                totals[side][1] += s["traces_stall_dominated"]
                totals[side][2] += s["n_traces"]
        mean_pct = [np.mean([p["summary"][a]["pct_of_optimum"] for a in heuristics]) for p in (old, new)]
        # the single trace whose stall time moved most, for the algorithm where it moved most
        moves = []
        for algorithm in heuristics:
            for row_old, row_new in zip(old["rows"][algorithm], new["rows"][algorithm]):
                moves.append((row_new["rebuffer_s"] - row_old["rebuffer_s"], algorithm, row_old["name"],
                              row_old["rebuffer_s"], row_new["rebuffer_s"]))
        delta, algorithm, trace, before_s, after_s = max(moves, key=lambda move: abs(move[0]))
        lines.append(
            f"- **{network}**: rebuffer ratio {'; '.join(cells)}. The four heuristics reach "
            f"{mean_pct[0]:.1f} % of the optimum on average on `{old_name}` and {mean_pct[1]:.1f} % on "
            f"`{new_name}`; the optimum itself streams {old['summary']['optimal']['bitrate_kbps']:,.0f} -> "
            f"{new['summary']['optimal']['bitrate_kbps']:,.0f} kbps. Largest single change: {LABELS[algorithm]} "
            f"on `{trace}`, {before_s:.1f} -> {after_s:.1f} s of stall.")
    runs = totals["old"][2]
    lines += ["", f"Over the three types and the four heuristics ({runs} heuristic x trace runs): runs with "
              f"any stall {totals['old'][0]} -> {totals['new'][0]}; runs where stalls dominated (stall penalty "
              f"above the whole bitrate utility) {totals['old'][1]} -> {totals['new'][1]}.", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", choices=NETWORKS, action="append",
                        help="a network type (repeatable; default: all three)")
    parser.add_argument("--out", type=Path, default=RESULTS / "ladders.md")
    args = parser.parse_args(argv)
    measured = {}
    for network in args.network or NETWORKS:
        print(f"{network}:", flush=True)
        measured[network] = measure(network)
    text = markdown(measured)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(measured) + "\n")
    print(text)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
