"""Issue #8's evaluation on the real traces: one command per table, then RESULTS.md.

    python experiments/paper_eval.py main --network broadband     # or --network all (one after the other)
    python experiments/paper_eval.py generalization               # needs `main` of the types it crosses
    python experiments/paper_eval.py ablation-early-stop --network broadband
    python experiments/paper_eval.py ablation-mode --network broadband
    python experiments/paper_eval.py longer --network broadband --steps 2000000   # seed vs winner, trained longer
    python experiments/paper_eval.py promote                      # designs/<type>/<name>/, exported and served
    python experiments/paper_eval.py results                      # experiments/RESULTS.md and its plots
    python experiments/paper_eval.py all                          # all of the above, in this order

Every step needs ../shared (the real traces and the Envivio video) and says so when it is absent.
Runs go to ``runs/paper/<type>/`` (archives, trained policies: not committed); what the tables
are made of goes to ``experiments/results/paper/`` (JSON, per-trace CSV, PNG: committed).

The protocol (``PROTOCOL``, the same for every network type; ``--set KEY=VALUE`` adds search
overrides and is recorded): ``llmabr search`` with the offline proposer on the type's
``traces/splits/<type>/train.txt``, validation on ``val.txt`` (S2 early stopping, the finalists,
the winner: everything that chooses), test on ``test.txt`` (``test-idfree.txt`` for broadband:
the FCC units absent from training) which only scores. The search trains the seed design and the
finalists with the same S3 budget and seeds, so "seed" and "best" in the table had the same
training budget; the winner is the finalist with the best mean validation QoE over its seeds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from simulator.paths import shared_dir  # noqa: E402

NETWORKS = ("broadband", "3g", "4g", "5g", "satellite")
SPLITS = REPO / "traces" / "splits"
RUNS = REPO / "runs" / "paper"
RESULTS = REPO / "experiments" / "results" / "paper"
SEED_NAME = "seed-pensieve"
BASELINES = ("bb", "rb", "bola", "robustmpc")

# The search budget of every main-table run: 10 offline designs screened with 150k env steps each
# (S2, early stopping against the seed's curve), the top 2 and the seed trained 500k steps on 2
# seeds (S3), then tested. About 15 minutes of wall-clock per type on 2 cores.
PROTOCOL = ("budget.designs=10", "budget.screen_steps=150000", "budget.screen_eval_every=25000",
            "budget.train_steps=500000", "budget.train_seeds=2", "budget.top_k=2", "budget.minutes=60",
            "workers=2")
# Ablations screen only (no S3): equal designs and steps in both arms.
ABLATION = ("budget.screen_steps=150000", "budget.screen_eval_every=25000")


def test_list(network: str) -> Path:
    return SPLITS / network / ("test-idfree.txt" if network == "broadband" else "test.txt")


def split_overrides(network: str) -> list[str]:
    return [f"network={network}", f"traces={SPLITS / network / 'train.txt'}",
            f"test_traces={test_list(network)}", f"train.val_traces={SPLITS / network / 'val.txt'}"]


def need_shared() -> None:
    if shared_dir() is None:
        raise SystemExit("error: these experiments need ../shared (the real traces and the Envivio video); "
                         "it is absent here")


def llmabr(*args: str, log: Path) -> None:
    """Run the CLI as a user would (its own process: Ray, cages and all), its output into ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "llmabr.cli.main", *args]
    print("$ llmabr " + " ".join(args), flush=True)
    with open(log, "a") as handle:
        code = subprocess.call(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT)
    if code != 0:
        raise SystemExit(f"error: llmabr {args[0]} exited {code}; see {log}")


# -- main table -----------------------------------------------------------------------------------

def run_main(network: str, extra: list[str]) -> dict:
    run_dir = RUNS / network / "search"
    if (run_dir / "report.md").exists():
        print(f"{run_dir}: finished earlier, summarizing it")
    elif (run_dir / "archive.sqlite").exists():
        llmabr("search", "--resume", str(run_dir), log=RUNS / network / "search.log")
    else:
        sets = [*PROTOCOL, *split_overrides(network), *extra]
        llmabr("search", *[arg for item in sets for arg in ("--set", item)], "--out", str(run_dir),
               log=RUNS / network / "search.log")
    return summarize_main(network, run_dir, extra)


def search_compute(archive) -> dict:
    """Worker seconds per stage (one worker = one core) and the search's wall-clock."""
    per_stage: dict[str, float] = {}
    for task in archive.tasks():
        if task["started_s"] and task["finished_s"]:
            per_stage[task["stage"]] = per_stage.get(task["stage"], 0.0) + task["finished_s"] - task["started_s"]
    return {"worker_s_per_stage": per_stage, "core_hours": sum(per_stage.values()) / 3600.0,
            "wall_s": float(archive.meta("elapsed_s", 0.0))}


def summarize_main(network: str, run_dir: Path, extra: list[str]) -> dict:
    from llmabr.search.archive import Archive
    from llmabr.search.config import search_from_dict
    from llmabr.search.report import baseline_rows, paired_difference, per_trace
    from llmabr.train.evaluate import plot_cdf, summarize, write_csv

    archive = Archive(run_dir)
    config = search_from_dict(archive.meta("config"))
    designs = {d["name"]: d for d in archive.designs()}
    finalists = archive.meta("finalists") or []
    tested = {name: rows for name in finalists if (rows := per_trace(archive, name)) is not None}
    candidates = [name for name in tested if name != SEED_NAME]
    if SEED_NAME not in tested or not candidates:
        raise SystemExit(f"error: {run_dir}: the seed design and at least one finalist must have test results "
                         f"(finalists {finalists}, tested {list(tested)}); see {run_dir / 'report.md'}")
    best = max(candidates, key=lambda name: designs[name]["val_qoe"])
    rows_by_policy = {**baseline_rows(config, str(test_list(network))), "seed (pensieve)": tested[SEED_NAME],
                      "best searched": tested[best]}
    delta, (low, high) = paired_difference(tested[best], tested[SEED_NAME])
    table = {}
    for label, rows in rows_by_policy.items():
        stats = summarize(rows)
        entry = {key: stats[key] for key in ("qoe_per_chunk", "qoe_per_chunk_ci95", "bitrate_kbps",
                                             "rebuffer_ratio", "switches_per_min", "traces")}
        name = {"seed (pensieve)": SEED_NAME, "best searched": best}.get(label)
        if name is not None:
            s3 = designs[name]["metrics"]["S3"]
            entry |= {"design": name, "val_qoe": designs[name]["val_qoe"], "seeds": s3["seeds"],
                      "train_wall_s_per_seed": s3["wall_s"] / s3["seeds"], "train_core_hours": s3["wall_s"] / 3600.0}
        table[label] = entry
    out = RESULTS / network
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "per_trace.csv", rows_by_policy)
    plot_cdf(out / "cdf.png", rows_by_policy, f"{network}: per-trace test QoE ({test_list(network).name})")
    seed_qoe = table["seed (pensieve)"]["qoe_per_chunk"]
    data = {
        "network": network, "run": str(run_dir.relative_to(REPO)), "protocol": [*PROTOCOL, *extra],
        "video": config.train.video or "default for the type", "train_list": str((SPLITS / network / "train.txt").relative_to(REPO)),
        "val_list": str((SPLITS / network / "val.txt").relative_to(REPO)), "test_list": str(test_list(network).relative_to(REPO)),
        "proposer": "offline (no LLM endpoint configured)", "best": best, "finalists": finalists,
        "table": table, "improvement": {"qoe_per_chunk": delta, "ci95": [low, high],
                                        "percent": 100.0 * delta / abs(seed_qoe) if seed_qoe else None},
        "funnel": archive.funnel(), "compute": search_compute(archive),
        "designs": {name: {"kind": d["kind"], "origin": d["origin"], "stage": d["stage"], "status": d["status"],
                           "val_qoe": d["val_qoe"], "reason": d["reason"][:200]} for name, d in designs.items()},
    }
    archive.close()
    (out / "main.json").write_text(json.dumps(data, indent=1))
    print(f"{network}: best {best} {table['best searched']['qoe_per_chunk']:.3f} vs seed {seed_qoe:.3f} "
          f"({delta:+.3f}, CI {low:+.3f}..{high:+.3f}); RobustMPC {table['robustmpc']['qoe_per_chunk']:.3f}")
    return data


# -- generalization -------------------------------------------------------------------------------

def score_runs(run_dirs: list[Path], network: str, out: Path) -> list[dict]:
    """Per-trace test rows of ``network``'s test list, averaged over the runs (seeds); scored in the cage."""
    from llmabr.train.caged import evaluate_caged
    from simulator.video import DEFAULT_PROFILE_BY_NETWORK

    per_seed = []
    for run in run_dirs:
        result = json.loads((run / "result.json").read_text())
        per_seed.append(evaluate_caged(run, test_list(network), DEFAULT_PROFILE_BY_NETWORK[network],
                                       result["config"]["mode"], result["config"]["qoe"], "policy_best.pt",
                                       out / run.name))
    keys = [key for key, value in per_seed[0][0].items() if isinstance(value, (int, float))]
    return [{"trace": per_seed[0][i]["trace"], **{k: float(np.mean([rows[i][k] for rows in per_seed])) for k in keys}}
            for i in range(len(per_seed[0]))]


def run_generalization() -> dict:
    from llmabr.search.archive import Archive
    from llmabr.train.evaluate import evaluate, summarize
    from simulator.baselines import make_baseline
    from simulator.layout import Layout
    from simulator.traces import load_trace_dir
    from simulator.video import default_profile

    sources = [n for n in NETWORKS if (RESULTS / n / "main.json").exists()]
    if not sources:
        raise SystemExit("error: no main-table result yet; run `python experiments/paper_eval.py main --network all`")
    jobs = []
    for source in sources:
        main = json.loads((RESULTS / source / "main.json").read_text())
        archive = Archive(REPO / main["run"])
        for role, name in (("best", main["best"]), ("seed", SEED_NAME)):
            runs = sorted(p for p in archive.folder(name).glob("train-s*") if (p / "policy_best.pt").exists())
            for target in NETWORKS:
                jobs.append((source, role, name, runs, target))
        archive.close()
    print(f"generalization: {len(jobs)} (policy, test set) pairs, scored in the cage, 2 at a time", flush=True)

    def one(job):
        source, role, name, runs, target = job
        rows = score_runs(runs, target, RUNS / "generalization" / source / role / target)
        return source, role, name, target, summarize(rows)

    matrix: dict = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for source, role, name, target, stats in pool.map(one, jobs):
            matrix.setdefault(role, {}).setdefault(source, {"design": name})[target] = {
                "qoe_per_chunk": stats["qoe_per_chunk"], "ci95": stats["qoe_per_chunk_ci95"],
                "bitrate_kbps": stats["bitrate_kbps"], "rebuffer_ratio": stats["rebuffer_ratio"]}
            print(f"  {role} of {source} on {target}: {stats['qoe_per_chunk']:.3f}", flush=True)
    robustmpc = {}
    for target in NETWORKS:
        video = default_profile(target)
        rows = evaluate(make_baseline("robustmpc", video, Layout(16, video.n_levels)),
                        load_trace_dir(test_list(target)), video)
        robustmpc[target] = summarize(rows)["qoe_per_chunk"]
    data = {"sources": sources, "targets": list(NETWORKS), "matrix": matrix, "robustmpc": robustmpc,
            "note": "each cell: the policy trained on the row's type, played on the column's test list with the "
                    "column's video profile (the ladder a player on that network streams); mean over the S3 seeds"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "generalization.json").write_text(json.dumps(data, indent=1))
    return data


# -- longer training ------------------------------------------------------------------------------

def run_longer(network: str, steps: int, seeds: int) -> dict:
    """The seed and the searched winner of ``network`` retrained side by side with a larger budget.

    The main table compares them at the search's S3 budget; this asks whether the difference
    holds once both are trained longer. ``llmabr train`` as a user runs it, two runs at a time.
    """
    from llmabr.search.archive import Archive
    from llmabr.search.report import paired_difference
    from llmabr.train.evaluate import summarize

    main = json.loads((RESULTS / network / "main.json").read_text())
    promoted = REPO / "designs" / network / main["best"]
    if promoted.is_dir():  # the committed copy: the search run (under runs/) need not be on this machine
        best = promoted
    else:
        archive = Archive(REPO / main["run"])
        best = archive.folder(main["best"])
        archive.close()
    designs = {"seed (pensieve)": REPO / "designs" / "pensieve", "best searched": best}
    out = RUNS / network / f"longer-{steps}"
    jobs = [(role, folder, seed) for role, folder in designs.items() for seed in range(seeds)]

    def train(job):
        role, folder, seed = job
        run = out / f"{'seed' if role.startswith('seed') else 'best'}-s{seed}"
        if not (run / "result.json").exists():
            shutil.rmtree(run, ignore_errors=True)
            llmabr("train", str(folder), "--network", network, "--traces", str(SPLITS / network / "train.txt"),
                   "--set", f"val_traces={SPLITS / network / 'val.txt'}", "--steps", str(steps), "--seed", str(seed),
                   "--deadline-s", "7200", "--out", str(run), log=out / f"{run.name}.log")
        return role, run

    runs: dict[str, list[Path]] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for role, run in pool.map(train, jobs):
            runs.setdefault(role, []).append(run)
    rows = {role: score_runs(paths, network, out / "test" / role.split()[0]) for role, paths in runs.items()}
    delta, (low, high) = paired_difference(rows["best searched"], rows["seed (pensieve)"])
    table = {}
    for role, paths in runs.items():
        stats = summarize(rows[role])
        results = [json.loads((path / "result.json").read_text()) for path in paths]
        table[role] = {**{k: stats[k] for k in ("qoe_per_chunk", "qoe_per_chunk_ci95", "bitrate_kbps",
                                                 "rebuffer_ratio", "switches_per_min", "traces")},
                       "best_val_qoe": [r.get("best_val_qoe") for r in results],
                       "train_wall_s_per_seed": float(np.mean([r["wall_s"] for r in results]))}
    data = {"network": network, "steps": steps, "seeds": seeds, "best": main["best"], "table": table,
            "improvement": {"qoe_per_chunk": delta, "ci95": [low, high]},
            "robustmpc": main["table"]["robustmpc"]["qoe_per_chunk"], "test_list": main["test_list"]}
    (RESULTS / network / f"longer_{steps}.json").write_text(json.dumps(data, indent=1))
    print(f"{network} at {steps:,} steps: best {table['best searched']['qoe_per_chunk']:.3f} vs seed "
          f"{table['seed (pensieve)']['qoe_per_chunk']:.3f} ({delta:+.3f}, CI {low:+.3f}..{high:+.3f})", flush=True)
    return data


# -- ablations ------------------------------------------------------------------------------------

def run_ablation_early_stop(network: str, designs: int, extra: list[str]) -> dict:
    from rich.console import Console

    from llmabr.search.bench import bench_search

    out = RUNS / network / "ablation-early-stop"
    if out.exists():
        shutil.rmtree(out)
    overrides = [*ABLATION, *split_overrides(network), *extra]
    arms = bench_search(out, designs, overrides, workers=2, seed=1, console=Console(stderr=True))
    data = {"network": network, "designs": designs, "overrides": overrides,
            "arms": [{**vars(arm), "per_hour": arm.per_hour} for arm in arms]}
    with_es, without = arms
    data["worker_s_saved_percent"] = 100.0 * (1.0 - with_es.screen_worker_s / without.screen_worker_s)
    data["steps_saved_percent"] = 100.0 * (1.0 - with_es.screen_steps / without.screen_steps)
    (RESULTS / network).mkdir(parents=True, exist_ok=True)
    (RESULTS / network / "ablation_early_stop.json").write_text(json.dumps(data, indent=1))
    return data


def run_ablation_mode(network: str, designs: int, extra: list[str]) -> dict:
    """``paper`` (states, networks, then top-k x top-k combinations) vs ``evolve`` with as many designs."""
    from llmabr.search.archive import Archive

    top_k = 2
    arms = {"paper": designs - top_k * top_k, "evolve": designs}  # paper proposes designs + k^2 combinations
    results = {}
    for mode, n in arms.items():
        run_dir = RUNS / network / f"ablation-mode-{mode}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        sets = [*ABLATION, *split_overrides(network), *extra, f"mode={mode}", f"budget.designs={n}",
                f"budget.top_k={top_k}", "budget.train_seeds=0", "early_stop=false", "budget.minutes=100000"]
        started = time.monotonic()
        llmabr("search", *[arg for item in sets for arg in ("--set", item)], "--out", str(run_dir),
               log=RUNS / network / f"ablation-mode-{mode}.log")
        archive = Archive(run_dir)
        screened = [d for d in archive.designs() if d["name"] != SEED_NAME and d["metrics"].get("S2")]
        seed = archive.design(SEED_NAME)
        ranked = sorted((d for d in screened if d["val_qoe"] is not None), key=lambda d: -d["val_qoe"])
        compute = search_compute(archive)
        results[mode] = {
            "designs_proposed": len([d for d in archive.designs() if d["name"] != SEED_NAME]),
            "screened": len(screened), "seed_val_qoe": seed["val_qoe"] if seed else None,
            "best_val_qoe": ranked[0]["val_qoe"] if ranked else None, "best": ranked[0]["name"] if ranked else None,
            "best_kind": ranked[0]["kind"] if ranked else None,
            "above_seed": sum(1 for d in ranked if seed and d["val_qoe"] > seed["val_qoe"]),
            "top3_mean_val_qoe": float(np.mean([d["val_qoe"] for d in ranked[:3]])) if ranked else None,
            "screen_worker_s": compute["worker_s_per_stage"].get("screen", 0.0),
            "worker_s": sum(compute["worker_s_per_stage"].values()), "wall_s": time.monotonic() - started}
        archive.close()
        print(f"{mode}: {results[mode]}", flush=True)
    data = {"network": network, "designs": designs, "top_k": top_k, "arms": results,
            "overrides": [*ABLATION, *extra]}
    (RESULTS / network).mkdir(parents=True, exist_ok=True)
    (RESULTS / network / "ablation_mode.json").write_text(json.dumps(data, indent=1))
    return data


# -- promotion ------------------------------------------------------------------------------------

def serve_once(export_dir: Path, log: Path) -> dict:
    """Start ``llmabr serve`` on the exported policy, ask for two decisions over HTTP, stop it."""
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    layout = json.loads((export_dir / "layout.json").read_text())
    ladder = layout["ladder_kbps"]
    with open(log, "w") as handle:
        server = subprocess.Popen([sys.executable, "-m", "llmabr.cli.main", "serve", "--policy", str(export_dir),
                                   "--port", str(port)], cwd=REPO, stdout=handle, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)
        levels = []
        for chunk in (None, {"bitrate_kbps": ladder[1], "buffer_s": 4.0, "download_time_s": 1.0,
                             "chunk_bytes": ladder[1] * 500.0, "rebuffer_s": 0.0}):
            body = {"session_id": "promote", "chunk": chunk, "next_chunk_bytes": [k * 500.0 for k in ladder],
                    "chunks_left": layout["chunks_total"] - len(levels) - 1}
            request = urllib.request.Request(url + "/v1/decide", json.dumps(body).encode(),
                                              {"Content-Type": "application/json"})
            levels.append(json.loads(urllib.request.urlopen(request, timeout=5).read())["level"])
        return {"ok": True, "levels": levels}
    except OSError as error:
        return {"ok": False, "error": str(error)}
    finally:
        server.terminate()
        server.wait(timeout=30)


def run_promote() -> dict:
    promoted = {}
    for network in NETWORKS:
        if not (RESULTS / network / "main.json").exists():
            continue
        main = json.loads((RESULTS / network / "main.json").read_text())
        run_dir, best = REPO / main["run"], main["best"]
        dest = REPO / "designs" / network / best
        if dest.exists():
            shutil.rmtree(dest)
        llmabr("archive", "promote", str(run_dir), best, "--to", str(dest), log=RUNS / network / "promote.log")
        stored = json.loads((dest / "metrics.json").read_text())  # machine paths -> repository paths
        for key in ("from_run", "traces", "test_traces"):
            if isinstance(stored.get(key), str) and stored[key].startswith(str(REPO) + "/"):
                stored[key] = stored[key][len(str(REPO)) + 1:]
        (dest / "metrics.json").write_text(json.dumps(stored, indent=1) + "\n")
        export_dir = RUNS / network / "export-best"
        shutil.rmtree(export_dir, ignore_errors=True)
        completed = subprocess.run([sys.executable, "-m", "llmabr.cli.main", "export", f"{run_dir}:{best}",
                                    "--out", str(export_dir), "--json"], cwd=REPO, capture_output=True, text=True)
        export = json.loads(completed.stdout) if completed.returncode == 0 else {"error": completed.stderr.strip()[-500:]}
        served = serve_once(export_dir, RUNS / network / "serve-best.log") if completed.returncode == 0 else {"ok": False}
        row, seed = main["table"]["best searched"], main["table"]["seed (pensieve)"]
        metrics = {
            "network": network, "design": best, "search_run": main["run"], "protocol": main["protocol"],
            "test_list": main["test_list"], "val_qoe": row["val_qoe"],
            "test": {k: row[k] for k in ("qoe_per_chunk", "qoe_per_chunk_ci95", "bitrate_kbps", "rebuffer_ratio",
                                         "switches_per_min", "traces")},
            "seed_test_qoe_per_chunk": seed["qoe_per_chunk"], "improvement_over_seed": main["improvement"],
            "robustmpc_test_qoe_per_chunk": main["table"]["robustmpc"]["qoe_per_chunk"],
            "export": {k: export.get(k) for k in ("onnx_bytes", "parameters", "parity", "latency", "error") if k in export},
            "serve": served,
            "reproduce": [f"python experiments/paper_eval.py main --network {network}",
                          f"llmabr export {main['run']}:{best} --out runs/paper/{network}/export-best",
                          f"llmabr serve --policy runs/paper/{network}/export-best"],
        }
        (dest / "paper_eval.json").write_text(json.dumps(metrics, indent=1) + "\n")
        promoted[network] = {"design": best, "export_ok": completed.returncode == 0, "serve_ok": served.get("ok")}
        print(f"{network}: promoted {best} to {dest.relative_to(REPO)}; export "
              f"{'ok' if completed.returncode == 0 else 'FAILED'}, serve {'ok' if served.get('ok') else 'FAILED'}",
              flush=True)
    (RESULTS / "promoted.json").write_text(json.dumps(promoted, indent=1))
    return promoted


# -- RESULTS.md -----------------------------------------------------------------------------------

PENSIEVE_COST = ("Pensieve (ANCHORS.md): 16 A3C agents, about 4 h to train one policy (50k iterations x 300 ms), "
                 "about 25 h on a laptop CPU")
PAPER_COST = ("LLM-ABR/NADA: ANCHORS.md records no compute figure for the paper. Its search trains every screened "
              "design with PPO and then combines the top 30 states with the top 30 networks (900 combinations, "
              "each a full training: a figure from a public summary of the paper, not checked against the paper "
              "itself here); at our measured seed-training cost that step alone would take the core-hours given in "
              "the last column, against our whole search's core-hours in the second")


def fmt_ci(ci) -> str:
    return f"{ci[0]:.3f} to {ci[1]:.3f}"


def write_results() -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mains = {n: json.loads((RESULTS / n / "main.json").read_text()) for n in NETWORKS
             if (RESULTS / n / "main.json").exists()}
    if not mains:
        raise SystemExit("error: no main-table result yet; run `python experiments/paper_eval.py main --network all`")
    lines = ["# Results: LLM-ABR-style design search on broadband, 3G, 4G, 5G and satellite traces", "",
             "Generated by `python experiments/paper_eval.py results` from `experiments/results/paper/` (do not "
             "edit by hand: rerun the steps below). Every number was measured on this project's 2-core machine "
             "(no GPU), with the real traces of ../shared and the split lists of `traces/splits/`.", "",
             "## Setup", "",
             "- **Data** (`traces/splits/README.md`): broadband = FCC (train/val from the source's train folder, "
             "**test = `broadband/test-idfree.txt`**, the 20 source test files whose FCC unit is absent from "
             "training: the source's own test set shares units with training); 3G = Norway (source split; val from "
             "train); 4G = Lumos LTE + Belgium, 5G = Lumos 5G, satellite = Starlink: split 70/15/15 % by trace ID. "
             "Only file lists are committed.",
             "- **Video**: Envivio (300-4300 kbps, real chunk sizes) for broadband and 3G, whose traces sit above "
             "4.3 Mbps only 1-2 % of the time; the high ladders `high-4g` (2-20 Mbps), `high-5g` (20-160 Mbps) and "
             "`high-satellite` (5-110 Mbps) for the others, whose traces sit above 4.3 Mbps 91-96 % of the time "
             "(MANIFEST), so with Envivio every algorithm would stream the top level and look alike. The 4G/5G "
             "ladders are those of the SIGCOMM'21 5G study that produced those traces; satellite's is placed "
             "between the Starlink traces' p10 and median. No public video has chunk sizes at these ladders, so "
             "the high profiles carry synthetic VBR chunk sizes with Envivio's variability (`simulator/video.py`). "
             "QoE lin on each ladder (Mbps units), so QoE values are comparable within a type, not across types.",
             "- **Protocol** (the same for every type; `PROTOCOL` in `experiments/paper_eval.py`): `llmabr search` "
             "with the offline proposer (**no LLM endpoint was configured in these runs, so there is no "
             "LLM-proposed row**), "
             f"`{' '.join(next(iter(mains.values()))['protocol'])}`: the seed design and the top-2 screened designs "
             "are then trained with the **same S3 budget and seeds**; the winner is chosen on validation QoE, the "
             "test list only scores. Baselines and policies play the deterministic test protocol (every trace "
             "once, 48 chunks, start row 1, first chunk unscored); QoE is the mean per chunk; CIs are 95 % "
             "bootstrap over test traces; the improvement is a paired bootstrap over traces.", ""]

    # main table
    lines += ["## Main table", ""]
    verdicts = []
    for network, main in mains.items():
        t = main["table"]
        imp = main["improvement"]
        lines += [f"### {network} (test: `{main['test_list']}`, {t['robustmpc']['traces']} traces)", "",
                  "| policy | QoE/chunk | 95 % CI | kbps | rebuffer % | switches/min | vs seed | train wall-clock per seed | train core-h |",
                  "|---|---:|---|---:|---:|---:|---|---:|---:|"]
        for label, row in t.items():
            vs = (f"{imp['qoe_per_chunk']:+.3f} ({fmt_ci(imp['ci95'])})" if label == "best searched" else "")
            wall = f"{row['train_wall_s_per_seed'] / 60:.1f} min" if "train_wall_s_per_seed" in row else "-"
            core = f"{row['train_core_hours']:.2f}" if "train_core_hours" in row else "-"
            name = f"{label} `{row['design']}`" if label == "best searched" else label
            lines.append(f"| {name} | {row['qoe_per_chunk']:.3f} | {fmt_ci(row['qoe_per_chunk_ci95'])} | "
                         f"{row['bitrate_kbps']:.0f} | {100 * row['rebuffer_ratio']:.2f} | {row['switches_per_min']:.2f} | "
                         f"{vs} | {wall} | {core} |")
        best, seed = t["best searched"]["qoe_per_chunk"], t["seed (pensieve)"]["qoe_per_chunk"]
        heuristic = max(BASELINES, key=lambda b: t[b]["qoe_per_chunk"])
        low, high = imp["ci95"]
        word = "beat" if low > 0 else "lost to" if high < 0 else "did not clearly differ from"
        verdict = (f"**{network}**: the searched design {word} the seed ({imp['qoe_per_chunk']:+.3f} QoE/chunk, "
                   f"{imp['percent']:+.1f} %, CI {low:+.3f} to {high:+.3f}); best heuristic {heuristic} "
                   f"{t[heuristic]['qoe_per_chunk']:.3f}, seed {seed:.3f}, searched {best:.3f}.")
        verdicts.append(verdict)
        funnel = main["funnel"]
        lines += ["", verdict, "",
                  f"Cascade: {', '.join(f'{k} {v}' for k, v in funnel.items())}. Search: "
                  f"{main['compute']['wall_s'] / 60:.1f} min wall-clock, {main['compute']['core_hours']:.2f} core-hours "
                  f"({', '.join(f'{k} {v / 3600:.2f}' for k, v in main['compute']['worker_s_per_stage'].items())}). "
                  f"Per-trace rows: `experiments/results/paper/{network}/per_trace.csv`; CDF: "
                  f"![{network} CDF](results/paper/{network}/cdf.png)", ""]

    # overview plot: QoE relative to RobustMPC per type
    figure, axis = plt.subplots(figsize=(10, 4))
    policies = list(next(iter(mains.values()))["table"])
    width = 0.8 / len(policies)
    for index, policy in enumerate(policies):
        values = [100.0 * (m["table"][policy]["qoe_per_chunk"] / m["table"]["robustmpc"]["qoe_per_chunk"] - 1.0)
                  for m in mains.values()]
        axis.bar(np.arange(len(mains)) + index * width, values, width, label=policy)
    axis.set_xticks(np.arange(len(mains)) + 0.4 - width / 2, list(mains))
    axis.set_ylabel("test QoE vs RobustMPC (%)")
    axis.axhline(0, color="black", linewidth=0.8)
    axis.legend(fontsize=7, ncol=3)
    axis.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    figure.savefig(RESULTS / "main.png", dpi=110)
    plt.close(figure)
    lines += ["### Summary", "", *[f"- {v}" for v in verdicts], "",
              "![test QoE of every policy relative to RobustMPC, per network type](results/paper/main.png)", ""]

    # generalization
    gen_path = RESULTS / "generalization.json"
    if gen_path.exists():
        gen = json.loads(gen_path.read_text())
        targets = gen["targets"]
        lines += ["## Generalization", "", gen["note"] + ". Bold: the diagonal (trained and tested on the same "
                  "type). QoE per chunk; the last row is RobustMPC on the column's test set.", ""]
        for role, title in (("best", "best searched design of the row's type"), ("seed", "seed design trained on the row's type")):
            lines += [f"**{title}**", "", "| trained on \\ tested on | " + " | ".join(targets) + " |",
                      "|---|" + "---:|" * len(targets)]
            for source, row in gen["matrix"].get(role, {}).items():
                cells = []
                for target in targets:
                    value = row[target]["qoe_per_chunk"]
                    cells.append(f"**{value:.3f}**" if target == source else f"{value:.3f}")
                lines.append(f"| {source} (`{row['design']}`) | " + " | ".join(cells) + " |")
            lines += ["| RobustMPC | " + " | ".join(f"{gen['robustmpc'][t]:.3f}" for t in targets) + " |", ""]
        figure, axes = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained")
        for axis, role in zip(axes, ("best", "seed")):
            sources = list(gen["matrix"].get(role, {}))
            grid = np.array([[100.0 * (gen["matrix"][role][s][t]["qoe_per_chunk"] / gen["robustmpc"][t] - 1.0)
                              for t in targets] for s in sources])
            image = axis.imshow(grid, cmap="RdYlGn", vmin=-50, vmax=50)
            axis.set_xticks(range(len(targets)), targets)
            axis.set_yticks(range(len(sources)), sources)
            axis.set_xlabel("tested on")
            axis.set_ylabel("trained on")
            axis.set_title(f"{role}: QoE vs RobustMPC (%)")
            for i in range(len(sources)):
                for j in range(len(targets)):
                    axis.text(j, i, f"{grid[i, j]:+.0f}", ha="center", va="center", fontsize=8)
        figure.colorbar(image, ax=axes, shrink=0.8)
        figure.savefig(RESULTS / "generalization.png", dpi=110)
        plt.close(figure)
        lines += ["![generalization matrices relative to RobustMPC](results/paper/generalization.png)", ""]
    else:
        lines += ["## Generalization", "", "Not run yet: `python experiments/paper_eval.py generalization`.", ""]

    longer = [json.loads(path.read_text())  # every `longer` run, in the types' order (table and Reproduce)
              for network in NETWORKS for path in sorted((RESULTS / network).glob("longer_*.json"))]
    if longer:
        lines += ["## Longer training", "", "The main table compares seed and winner at the search's S3 budget. Here "
                  "both are retrained side by side with a larger budget (`paper_eval.py longer`), to see whether the "
                  "difference holds once the seed has had time to learn.", "",
                  "| network | steps x seeds | seed QoE/chunk (CI) | best searched QoE/chunk (CI) | difference (CI) | RobustMPC | train wall-clock per run (seed / best) |",
                  "|---|---|---|---|---|---:|---|"]
        for run in longer:
            seed, best = run["table"]["seed (pensieve)"], run["table"]["best searched"]
            imp = run["improvement"]
            lines.append(f"| {run['network']} | {run['steps']:,} x {run['seeds']} | {seed['qoe_per_chunk']:.3f} "
                         f"({fmt_ci(seed['qoe_per_chunk_ci95'])}) | {best['qoe_per_chunk']:.3f} "
                         f"({fmt_ci(best['qoe_per_chunk_ci95'])}) | {imp['qoe_per_chunk']:+.3f} ({fmt_ci(imp['ci95'])}) | "
                         f"{run['robustmpc']:.3f} | {seed['train_wall_s_per_seed'] / 60:.1f} / "
                         f"{best['train_wall_s_per_seed'] / 60:.1f} min |")
        lines.append("")
        for run in longer:
            short = mains[run["network"]]["improvement"]
            low, high = run["improvement"]["ci95"]
            verdict = ("the searched design still beats the seed" if low > 0 else
                       "the seed now beats the searched design" if high < 0 else "the two no longer clearly differ")
            above = [role for role, row in run["table"].items() if row["qoe_per_chunk"] > run["robustmpc"]]
            lines.append(f"**{run['network']}**: at the search's S3 budget the searched design led by "
                         f"{short['qoe_per_chunk']:+.3f} ({fmt_ci(short['ci95'])}); at {run['steps']:,} steps "
                         f"{verdict} ({run['improvement']['qoe_per_chunk']:+.3f}, {fmt_ci([low, high])}). "
                         f"Above RobustMPC at this budget: {', '.join(above) if above else 'neither'}.")
            lines.append("")
        lines += ["Part of a gain measured at a small training budget can be the seed's slower learning rather than a "
                  "better design: read the main table's differences with this section in mind.", ""]

    # ablations
    lines += ["## Ablations", ""]
    for network in NETWORKS:
        path = RESULTS / network / "ablation_early_stop.json"
        if path.exists():
            es = json.loads(path.read_text())
            a, b = es["arms"]
            lines += [f"**S2 early stopping on/off** ({network}, the same {es['designs']} offline designs replayed in "
                      f"both arms, screening only, `{' '.join(o for o in es['overrides'] if o.startswith('budget'))}`): "
                      f"with early stopping {a['screened']} screened ({a['stopped_early']} stopped early), "
                      f"{a['screen_worker_s'] / 60:.1f} worker-min in S2, {a['per_hour']:.0f} designs/hour, best validation "
                      f"QoE {a['best_val_qoe']:.3f} (`{a['best_name']}`); without: {b['screened']} screened, "
                      f"{b['screen_worker_s'] / 60:.1f} worker-min, {b['per_hour']:.0f}/hour, best {b['best_val_qoe']:.3f} "
                      f"(`{b['best_name']}`). Compute saved: {es['worker_s_saved_percent']:.0f} % of S2 worker time, "
                      f"{es['steps_saved_percent']:.0f} % of S2 env steps.", ""]
        path = RESULTS / network / "ablation_mode.json"
        if path.exists():
            mode = json.loads(path.read_text())
            lines += [f"**`paper` vs `evolve` at equal compute** ({network}, {mode['designs']} designs each, screening "
                      f"only, early stopping off so both arms train exactly the same number of steps):", "",
                      "| mode | designs screened | best val QoE | best design (kind) | designs above the seed | mean of top 3 | S2 worker-min |",
                      "|---|---:|---:|---|---:|---:|---:|"]
            for name, arm in mode["arms"].items():
                lines.append(f"| {name} | {arm['screened']} | {arm['best_val_qoe']:.3f} | `{arm['best']}` ({arm['best_kind']}) | "
                             f"{arm['above_seed']} (seed {arm['seed_val_qoe']:.3f}) | {arm['top3_mean_val_qoe']:.3f} | "
                             f"{arm['screen_worker_s'] / 60:.1f} |")
            lines.append("")

    # compute
    lines += ["## Compute", "", "| network | search wall-clock | search core-hours | seed training core-hours (all seeds) | "
              "900 trainings at the seed's cost (core-hours) |", "|---|---:|---:|---:|---:|"]
    for network, main in mains.items():
        seed = main["table"]["seed (pensieve)"]
        lines.append(f"| {network} | {main['compute']['wall_s'] / 60:.1f} min | {main['compute']['core_hours']:.2f} | "
                     f"{seed['train_core_hours']:.2f} | {900 * seed['train_wall_s_per_seed'] / 3600:.0f} |")
    total = sum(m["compute"]["core_hours"] for m in mains.values())
    lines += ["", f"Whole pipeline (all main-table searches): {total:.2f} core-hours on a 2-core machine, no GPU.",
              f"For comparison: {PENSIEVE_COST}. {PAPER_COST}.", ""]

    promoted = RESULTS / "promoted.json"
    if promoted.exists():
        lines += ["## Promoted designs", "", "| network | design | exported | served |", "|---|---|---|---|"]
        for network, row in json.loads(promoted.read_text()).items():
            lines.append(f"| {network} | `designs/{network}/{row['design']}` (metrics.json) | "
                         f"{'yes' if row['export_ok'] else 'no'} | {'yes' if row['serve_ok'] else 'no'} |")
        lines.append("")
    lines += ["## Reproduce", "", "```", "python experiments/paper_eval.py main --network all   # the main tables",
              "python experiments/paper_eval.py generalization", "python experiments/paper_eval.py ablation-early-stop "
              "--network broadband", "python experiments/paper_eval.py ablation-mode --network broadband",
              "python experiments/paper_eval.py promote"]
    for run in longer:
        lines.append(f"python experiments/paper_eval.py longer --network {run['network']} --steps {run['steps']} "
                     f"--seeds {run['seeds']}")
    lines += ["python experiments/paper_eval.py results", "```", ""]
    path = REPO / "experiments" / "RESULTS.md"
    path.write_text("\n".join(lines))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=["main", "generalization", "ablation-early-stop", "ablation-mode", "longer", "promote",
                                         "results", "all"], help="'all': every step above in order (~2 h on 2 cores)")
    parser.add_argument("--network", default="broadband", help="a network type, or 'all' (main only)")
    parser.add_argument("--designs", type=int, default=12, help="designs per ablation arm")
    parser.add_argument("--steps", type=int, default=2_000_000, help="longer: env steps per training run")
    parser.add_argument("--seeds", type=int, default=2, help="longer: seeds per design")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra search override")
    args = parser.parse_args(argv)
    if args.step != "results":
        need_shared()
    networks = list(NETWORKS) if args.network == "all" else [args.network]
    for network in networks:
        if network not in NETWORKS:
            raise SystemExit(f"error: unknown network {network!r}; known: {', '.join(NETWORKS)}")
    if args.step == "all":
        for network in NETWORKS:
            run_main(network, args.set)
        run_ablation_early_stop("broadband", args.designs, args.set)
        run_ablation_mode("broadband", args.designs, args.set)
        run_generalization()
        run_promote()
    elif args.step == "main":
        for network in networks:
            run_main(network, args.set)
    elif args.step == "generalization":
        run_generalization()
    elif args.step == "ablation-early-stop":
        run_ablation_early_stop(networks[0], args.designs, args.set)
    elif args.step == "ablation-mode":
        run_ablation_mode(networks[0], args.designs, args.set)
    elif args.step == "longer":
        run_longer(networks[0], args.steps, args.seeds)
    elif args.step == "promote":
        run_promote()
    print(f"wrote {write_results()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
