"""The LLM-ABR paper's published state designs, replayed through ``llmabr search --replay``.

    python experiments/nada_replay.py README_PATH                    # all four types, then the results
    python experiments/nada_replay.py README_PATH --network 4g       # one type (and the results so far)
    python experiments/nada_replay.py --results                      # only rewrite the results from the runs

README_PATH is a copy of the README of the paper authors' public repository (hzy46/NADA) that the
user provides: its section "Top Performing States" holds the best GPT-3.5 and GPT-4 state designs
per dataset (FCC, Starlink, 4G, 5G), written to the paper's per-player numpy prompt. Their code
is not part of this repository: it is extracted at run time into ``runs/nada_replay/<type>/designs``
(ignored by git), unchanged, as one loose ``.py`` file per design, which the replay proposer reads
as a NADA state design with the seed's network completing it.

Datasets map to our network types as the traces do: FCC -> broadband, Starlink -> satellite,
4G -> 4g, 5G -> 5g. Per type, one search (``PROTOCOL``): the two published designs are the only
proposals, both go to S3 with the seed design (top_k 2), all three trained with the same budget
and the same 5 seeds on ``traces/splits/<type>/train.txt`` (validation on ``val.txt``), then
scored on the leak-free test list by the trusted scorer (a process that runs no design code).
Each published design is compared with the seed design and with RobustMPC by a paired two-level
bootstrap (training seeds, then test traces grouped by recording); a CI that holds 0 reads "no
significant difference".

Writes ``experiments/results/nada_replay/<type>.json``, ``README.md`` (the table) and the section
between the ``nada-replay`` markers of ``experiments/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from experiments.paper_eval import SEED_NAME, llmabr, need_shared, split_overrides, test_list  # noqa: E402

RUNS = REPO / "runs" / "nada_replay"
RESULTS = REPO / "experiments" / "results" / "nada_replay"
RESULTS_MD = REPO / "experiments" / "RESULTS.md"
BEGIN, END = "<!-- nada-replay:begin -->", "<!-- nada-replay:end -->"

DATASET_TO_NETWORK = {"fcc": "broadband", "starlink": "satellite", "4g": "4g", "5g": "5g"}
HEADING = re.compile(r"The best state from (GPT-[0-9.]+) for the (\w+) dataset", re.IGNORECASE)
FENCE = re.compile(r"```python\n(.*?)```", re.DOTALL)

# Equal budgets for the three policies of a type. Both published designs always reach S3 (top_k 2),
# so S2 only has to run them once; early stopping is off so that nothing is cut on a short curve.
# 50k PPO steps after the search's imitation warm start, set by the compute we have (2 cores, four
# types, 15 runs each). S1's normalization check only warns (``check_normalization=warn``): the
# published designs scale features for the paper's videos, not for our ladders, and the question is
# how they do as published; what S1 would have said is reported next to each design.
PROTOCOL = ("budget.designs=2", "budget.top_k=2", "budget.train_seeds=5", "budget.screen_steps=12288",
            "budget.screen_eval_every=6144", "budget.train_steps=50000", "budget.minutes=60", "early_stop=false",
            "workers=2", "check_normalization=warn")


def extract(readme: Path) -> dict[str, dict[str, str]]:
    """{network type: {design name: source}} from the README's "Top Performing States" section."""
    text = readme.read_text(errors="replace")
    designs: dict[str, dict[str, str]] = {}
    for match in HEADING.finditer(text):
        model, dataset = match.group(1), match.group(2).lower()
        fence = FENCE.search(text, match.end())
        if dataset not in DATASET_TO_NETWORK or fence is None:
            continue
        network = DATASET_TO_NETWORK[dataset]
        name = f"nada-{model.lower().replace('.', '').replace('-', '')}-{dataset}"  # e.g. nada-gpt35-fcc
        designs.setdefault(network, {})[name] = fence.group(1)
    if not designs:
        raise SystemExit(f"error: {readme}: no 'The best state from GPT-... for the ... dataset' heading followed "
                         "by a ```python block; is it the README of hzy46/NADA?")
    return designs


def write_designs(network: str, sources: dict[str, str]) -> Path:
    folder = RUNS / network / "designs"
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in sources.items():
        (folder / f"{name}.py").write_text(source)
    return folder


def run_search(network: str, designs: Path, extra: list[str]) -> Path:
    run_dir = RUNS / network / "search"
    log = RUNS / network / "search.log"
    if (run_dir / "report.md").exists():
        print(f"{run_dir}: finished earlier, summarizing it")
    elif (run_dir / "archive.sqlite").exists():
        llmabr("search", "--resume", str(run_dir), log=log)
    else:
        sets = [*PROTOCOL, *split_overrides(network), *extra]
        llmabr("search", "--replay", str(designs), *[arg for item in sets for arg in ("--set", item)],
               "--out", str(run_dir), log=log)
    return run_dir


def s1_warning(folder: Path) -> str:
    """What S1's normalization check would have rejected the design for ("" when nothing)."""
    try:
        checks = json.loads((folder / "check.json").read_text())["checks"]
    except (OSError, ValueError, KeyError):
        return ""
    return next((c["reason"] for c in checks if c["name"] == "normalization" and c["reason"].startswith("warning")), "")


def summarize(network: str, run_dir: Path) -> dict:
    """Each published design against the seed design and RobustMPC on the type's test list."""
    from llmabr.scoring.stats import verdict
    from llmabr.scoring.yardsticks import baseline_rows, compare, trace_groups
    from llmabr.search.archive import Archive
    from llmabr.search.config import search_from_dict
    from llmabr.search.report import BASELINES, seed_rows
    from simulator.traces import load_trace_dir
    from simulator.video import default_profile, load_profile

    archive = Archive(run_dir)
    config = search_from_dict(archive.meta("config"))
    designs = {d["name"]: d for d in archive.designs()}
    by_seed = {name: rows for name in archive.meta("finalists") or [] if (rows := seed_rows(archive, name))}
    if SEED_NAME not in by_seed:
        raise SystemExit(f"error: {run_dir}: the seed design has no test results; see {run_dir / 'report.md'}")
    published = sorted(name for name in designs if name.startswith("nada-"))
    video = load_profile(config.train.video) if config.train.video else default_profile(config.network)
    baselines = baseline_rows(load_trace_dir(test_list(network)), video, config.train.mode, config.train.qoe,
                              names=BASELINES, cache_dir=RUNS / "yardsticks")
    tested = [name for name in published if name in by_seed]
    pairs = [(name, other) for name in tested for other in (SEED_NAME, "robustmpc")]
    policies = {**{name: [rows] for name, rows in baselines.items()},
                **{name: by_seed[name] for name in [SEED_NAME, *tested]}}
    stats = compare(policies, trace_groups(baselines["bb"]), pairs=pairs)

    def estimate(name: str) -> dict:
        value = stats.policies[name]
        entry = {"qoe_per_chunk": value.mean, "ci95": [value.low, value.high]}
        if name in stats.normalized:
            entry["normalized"] = stats.normalized[name].mean
        return entry

    rows = {}
    for name in published:
        design = designs[name]
        row = {"stage": design["stage"], "status": design["status"], "reason": (design["reason"] or "")[:300],
               "val_qoe": design["val_qoe"], "s1_warning": s1_warning(archive.folder(name))}
        if name in tested:
            row |= estimate(name)
            for other in (SEED_NAME, "robustmpc"):
                difference = stats.difference(name, other)
                row[f"vs_{'seed' if other == SEED_NAME else other}"] = {
                    "qoe_per_chunk": difference.mean, "ci95": [difference.low, difference.high],
                    "percent": 100.0 * difference.mean / abs(stats.policies[other].mean),
                    "verdict": verdict(difference.low, difference.high)}
            s3 = design["metrics"].get("S3", {})
            if s3.get("seeds"):
                row["train_wall_s_per_seed"] = s3["wall_s"] / s3["seeds"]
        rows[name] = row
    seed_s3 = designs[SEED_NAME]["metrics"].get("S3", {})
    data = {"network": network, "run": str(run_dir.relative_to(REPO)), "protocol": list(PROTOCOL),
            "test_list": str(test_list(network).relative_to(REPO)), "traces": stats.n_traces,
            "recordings": stats.n_groups, "resamples": stats.resamples,
            "seed": {**estimate(SEED_NAME), "val_qoe": designs[SEED_NAME]["val_qoe"],
                     "train_wall_s_per_seed": seed_s3["wall_s"] / seed_s3["seeds"] if seed_s3.get("seeds") else None},
            "robustmpc": estimate("robustmpc"), "optimal": estimate("optimal"), "designs": rows}
    archive.close()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{network}.json").write_text(json.dumps(data, indent=1))
    return data


def signed(value: float, ci: list[float]) -> str:
    return f"{value:+.3f} ({ci[0]:+.3f} to {ci[1]:+.3f})"


def write_results() -> str:
    """The table from every ``<type>.json`` so far, into results/nada_replay/README.md and RESULTS.md."""
    lines = ["## The paper's published designs, replayed", "",
             "The best GPT-3.5 and GPT-4 state designs that the LLM-ABR authors published (README of hzy46/NADA), run "
             "unchanged through `llmabr search --replay` on the matching network type: the seed design and both "
             "published designs trained with the same budget and the same 5 seeds "
             f"(`{' '.join(PROTOCOL)}`, imitation warm start first), scored on the leak-free test list by the trusted "
             "scorer. Differences are paired two-level bootstraps (seeds, then traces grouped by recording); "
             "\"no significant difference\" where the CI holds 0. Reproduce: "
             "`python experiments/nada_replay.py PATH/TO/NADA/README.md` (the README is not in this repository).", "",
             "| type | design | QoE per chunk (CI) | normalized | vs seed design (CI) | verdict | vs RobustMPC (CI) | "
             "verdict | training s per seed | S1 normalization (warn only) |",
             "|---|---|---|---:|---|---|---|---|---:|---|"]
    found = sorted(RESULTS.glob("*.json"))
    for path in found:
        data = json.loads(path.read_text())
        network, seed = data["network"], data["seed"]
        lines.append(f"| {network} | seed design (pensieve) | {seed['qoe_per_chunk']:.3f} ({seed['ci95'][0]:.3f} to "
                     f"{seed['ci95'][1]:.3f}) | {seed.get('normalized', float('nan')):.2f} | | | | | "
                     f"{seed['train_wall_s_per_seed'] or float('nan'):.0f} | |")
        for name, row in data["designs"].items():
            if "qoe_per_chunk" not in row:
                lines.append(f"| {network} | {name} | not tested: {row['stage']} {row['status']}: "
                             f"{' '.join(row['reason'].split())[:200]} | | | | | | | |")
                continue
            vs_seed, vs_mpc = row["vs_seed"], row["vs_robustmpc"]
            lines.append(
                f"| {network} | {name} | {row['qoe_per_chunk']:.3f} ({row['ci95'][0]:.3f} to {row['ci95'][1]:.3f}) | "
                f"{row.get('normalized', float('nan')):.2f} | {signed(vs_seed['qoe_per_chunk'], vs_seed['ci95'])}, "
                f"{vs_seed['percent']:+.1f} % | {vs_seed['verdict']} | "
                f"{signed(vs_mpc['qoe_per_chunk'], vs_mpc['ci95'])} | {vs_mpc['verdict']} | "
                f"{row.get('train_wall_s_per_seed', float('nan')):.0f} | "
                + (row["s1_warning"].split(" exceed ")[0].replace("warning (normalization = warn): ", "") + " exceed the limits"
                   if row.get("s1_warning") else "passes") + " |")
        lines.append(f"| {network} | robustmpc | {data['robustmpc']['qoe_per_chunk']:.3f} | "
                     f"{data['robustmpc'].get('normalized', float('nan')):.2f} | | | | | | |")
    if not found:
        lines.append("| (no type has been run yet) | | | | | | | | | |")
    section = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "README.md").write_text(section)
    text = RESULTS_MD.read_text()
    block = f"{BEGIN}\n{section}{END}"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        marker = "\n## Reproduce"
        text = text.replace(marker, f"\n{block}\n{marker}", 1) if marker in text else text + f"\n{block}\n"
    RESULTS_MD.write_text(text)
    return section


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("readme", nargs="?", type=Path, help="a copy of the README of hzy46/NADA")
    parser.add_argument("--network", action="append", choices=sorted(DATASET_TO_NETWORK.values()),
                        help="run only these types (default: every type the README has designs for)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more search overrides")
    parser.add_argument("--results", action="store_true", help="only rewrite the results from finished runs")
    args = parser.parse_args(argv)
    if args.results:
        print(write_results())
        return 0
    if args.readme is None:
        parser.error("README_PATH is required (or --results)")
    if not args.readme.is_file():
        raise SystemExit(f"error: {args.readme}: no such file")
    need_shared()
    designs = extract(args.readme)
    for network in args.network or sorted(designs):
        if network not in designs:
            print(f"{network}: the README has no published design for it; skipped")
            continue
        folder = write_designs(network, designs[network])
        print(f"{network}: {', '.join(sorted(designs[network]))} -> {folder.relative_to(REPO)}", flush=True)
        data = summarize(network, run_search(network, folder, args.set))
        for name, row in data["designs"].items():
            if "vs_seed" in row:
                print(f"  {name}: {row['qoe_per_chunk']:.3f} vs seed {data['seed']['qoe_per_chunk']:.3f}: "
                      f"{signed(row['vs_seed']['qoe_per_chunk'], row['vs_seed']['ci95'])} ({row['vs_seed']['verdict']})")
            else:
                print(f"  {name}: not tested ({row['stage']} {row['status']}: {row['reason'][:160]})")
    print(write_results())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
