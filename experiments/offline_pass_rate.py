"""Issue #5, point 4: the share of offline-proposer designs that pass S0-S1 (goal: at least 90 %).

    python experiments/offline_pass_rate.py --n 200 --out experiments/results/offline_pass_rate

Half the designs are state designs, half network designs. The first half of each comes from the
seed design (mutated one to three times), the second half from parents: the designs of the first
half that passed, mutated or recombined - what a search feeds back. Every design is written as a
folder and checked exactly as ``llmabr check`` does (S1 in the cage). Writes ``summary.md`` and
``designs.csv`` (one row per design: kind, network type, generation, verdict, reason).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from llmabr.proposer.offline import OfflineProposer, genome_hash
from llmabr.sandbox.checks import check_design


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--designs", type=Path, default=Path("runs/offline-pass-rate"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    proposer = OfflineProposer(args.seed)
    quarter = args.n // 4
    rows, passed_parents, seen = [], {"state": [], "network": []}, set()
    started = time.perf_counter()
    for generation in ("from seed", "from parents"):
        for kind in ("state", "network"):
            parents = passed_parents[kind] if generation == "from parents" else []
            proposals = proposer.propose(kind, quarter, parents, seen)
            seen |= {genome_hash(proposal.genome) for proposal in proposals}
            for proposal in tqdm(proposals, desc=f"{kind} {generation}", file=sys.stderr):
                folder = proposal.write(args.designs / proposal.name)
                report = check_design(folder)
                if report.passed:
                    passed_parents[kind].append({"name": proposal.name, "genome": proposal.genome})
                net = proposal.genome["net"]
                rows.append({"design": proposal.name, "kind": kind, "generation": generation, "net_type": net["type"],
                             "features": len(proposal.genome["state"]["features"]), "passed": report.passed,
                             "rejected_at": report.rejected_at or "",
                             "reason": "" if report.passed else report.summary()[:400]})
    with open(args.out / "designs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    passed = sum(row["passed"] for row in rows)
    lines = [f"# Offline proposer: S0-S1 pass rate over {len(rows)} designs", "",
             f"**{passed}/{len(rows)} passed ({100 * passed / len(rows):.1f} %)**; seed {args.seed}; "
             f"{time.perf_counter() - started:.0f} s on this machine.", "",
             "| kind | generation | designs | passed |", "|---|---|---:|---:|"]
    groups = Counter((row["kind"], row["generation"]) for row in rows)
    for (kind, generation), count in groups.items():
        ok = sum(row["passed"] for row in rows if row["kind"] == kind and row["generation"] == generation)
        lines.append(f"| {kind} | {generation} | {count} | {ok} |")
    lines += ["", "Network types among network designs: " + ", ".join(
        f"{t} {c}" for t, c in Counter(row["net_type"] for row in rows if row["kind"] == "network").most_common()),
        "Distinct designs: " + str(len({row['design'] for row in rows})), ""]
    failures = [row for row in rows if not row["passed"]]
    if failures:
        lines += ["Rejections:", ""] + [f"- {row['design']} ({row['rejected_at']}): {row['reason']}" for row in failures]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
