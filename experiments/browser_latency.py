"""Issue #7, point 5: decision latency in the browser and model size of the seed design.

    python experiments/browser_latency.py [--run RUN] --out experiments/results/browser_latency

Exports ``designs/pensieve`` (RUN, a folder of ``llmabr train``; without it a 4,000-step run is
trained first - weights do not change the graph, so size and latency are the seed design's) with
``llmabr export`` twice, as the default float64 graph and with ``--precision float32``, then
plays sessions of a 48-segment (192 s, Pensieve's episode) 6-level DASH stream in headless
Chromium with the dash.js plugin, each trace once per graph, through the test harness's pacing
server (tests/players). Latency is measured in the page around ``session.run`` (onnxruntime-web,
wasm, one thread) for every decision of every session; after each session the page also times
``--bench-runs`` more calls on the rows it logged (steady state, no video download in flight).

Writes ``summary.md`` and ``latency.json`` (every measurement) into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the harness lives in tests/players, next to the browser test

from tests.players.harness import (  # noqa: E402
    NODE_MODULES,
    Session,
    make_dash_stream,
    missing_tools,
    run_sessions,
)

LLMABR = [sys.executable, "-m", "llmabr.cli.main"]
PRECISIONS = ("float64", "float32")  # export's default first
LADDER_KBPS = [300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0]
SEGMENT_S = 4.0
N_SEGMENTS = 48
# Three network conditions; the buffer target covers the whole video, so a session lasts as long
# as its downloads, not as long as the video.
TRACES = {
    "2-5mbps": [(5.0, 5.0), (5.0, 2.0)],
    "8-12mbps": [(5.0, 12.0), (5.0, 8.0)],
    "1-2mbps": [(5.0, 2.0), (5.0, 1.0)],
}


def quantiles_ms(values: list[float]) -> dict:
    array = np.asarray(values, dtype=float)
    return {"n": int(array.size), "median_ms": float(np.median(array)), "p99_ms": float(np.quantile(array, 0.99)),
            "max_ms": float(array.max()), "mean_ms": float(array.mean())}


def package_version(name: str) -> str:
    return json.loads((NODE_MODULES / name / "package.json").read_text())["version"]


def play(stream: Path, exports: dict[str, Path], bench_runs: int, work: Path) -> dict[str, dict]:
    """Every trace with every exported graph, the graphs taking turns; precision -> pooled and per-session stats."""
    sessions = [Session(f"{precision}-{name}", trace, precision, timeout_s=400.0,
                        query={"bufferS": N_SEGMENTS * SEGMENT_S + 10}, bench_runs=bench_runs)
                for name, trace in TRACES.items() for precision in exports]
    results = run_sessions(stream, exports, sessions, work / "sessions", driver_timeout_s=3000.0)
    measured = {}
    for precision in exports:
        per_session, all_run_ms, all_decision_ms, all_bench_ms, all_ready_ms = [], [], [], [], []
        for name in TRACES:
            result = results[f"{precision}-{name}"]
            if result["error"] or not result["log"] or result["log"]["error"]:
                raise SystemExit(f"session {precision}-{name} failed: "
                                 f"{result['error'] or result['log'] and result['log']['error']}\n"
                                 + "\n".join(result["console"][-20:]))
            log = result["log"]
            run_ms = [d["runMs"] for d in log["decisions"]]
            decision_ms = [d["decisionMs"] for d in log["decisions"]]
            ready_ms = [d["readyMs"] for d in log["decisions"]]
            all_ready_ms += ready_ms
            bench_ms = (result.get("bench") or {}).get("runMs") or []
            all_run_ms += run_ms
            all_decision_ms += decision_ms
            all_bench_ms += bench_ms
            summary = result["summary"]
            per_session.append({
                "trace": name, "segments": len(log["segments"]), "run": quantiles_ms(run_ms),
                "decision": quantiles_ms(decision_ms), "ready": quantiles_ms(ready_ms),
                "bench": quantiles_ms(bench_ms) if bench_ms else None,
                "avg_bitrate_kbps": summary["avgBitrateKbps"], "rebuffer_s": summary["rebufferS"],
                "switches": summary["switches"], "load_ms": log["loadMs"], "warmup_ms": log["warmupMs"],
                "stale_answers": log["staleAnswers"], "cross_origin_isolated": log["crossOriginIsolated"],
                "browser": result["browser"]})
        measured[precision] = {
            "pooled": {"run": quantiles_ms(all_run_ms), "decision": quantiles_ms(all_decision_ms),
                       "ready": quantiles_ms(all_ready_ms),
                       "bench": quantiles_ms(all_bench_ms) if all_bench_ms else None},
            "sessions": per_session, "run_ms": all_run_ms, "decision_ms": all_decision_ms, "ready_ms": all_ready_ms,
            "bench_run_ms": all_bench_ms}
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a llmabr train run of designs/pensieve (default: train 4,000 steps)")
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "browser_latency")
    parser.add_argument("--bench-runs", type=int, default=1000, help="steady-state session.run calls per session")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    if missing := missing_tools():
        raise SystemExit("needs " + "; ".join(missing))

    work = args.work or Path(tempfile.mkdtemp(prefix="browser-latency-"))
    work.mkdir(parents=True, exist_ok=True)
    run = args.run
    if run is None:
        run = work / "run"
        if not (run / "result.json").exists():
            subprocess.run(LLMABR + ["train", str(REPO / "designs" / "pensieve"), "--network", "broadband",
                                     "--traces", "synthetic", "--steps", "4000", "--out", str(run)], check=True)
    # What export writes by default (float64) and the float32 graph it writes when asked, side by side.
    exports, infos = {}, {}
    for precision in PRECISIONS:
        exports[precision] = work / f"export-{precision}"
        subprocess.run(LLMABR + ["export", str(run), "--out", str(exports[precision]), "--precision", precision],
                       check=True)
        infos[precision] = json.loads((exports[precision] / "export.json").read_text())

    stream = work / "stream"
    if not (stream / "sizes.json").exists():
        make_dash_stream(stream, LADDER_KBPS, N_SEGMENTS * SEGMENT_S, SEGMENT_S)
    measured = play(stream, exports, args.bench_runs, work)

    environment = {"browser": measured[PRECISIONS[0]]["sessions"][0]["browser"], "dashjs": package_version("dashjs"),
                   "onnxruntime_web": package_version("onnxruntime-web"), "cpus": os.cpu_count(),
                   "load_average_1min": os.getloadavg()[0], "machine": platform.machine()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latency.json").write_text(json.dumps({
        "environment": environment,
        **{precision: {"onnx_bytes": infos[precision]["onnx_bytes"], "parameters": infos[precision]["parameters"],
                       "python_latency": infos[precision]["latency"], "parity": infos[precision]["parity"],
                       **measured[precision]} for precision in PRECISIONS}}, indent=1))
    (args.out / "summary.md").write_text(summary_md(args, infos, measured, environment))
    print((args.out / "summary.md").read_text())
    return 0


def summary_md(args, infos: dict, measured: dict, environment: dict) -> str:
    default, other = PRECISIONS
    info, pooled = infos[default], measured[default]["pooled"]
    onnx_bytes = info["onnx_bytes"]
    goal_latency = "met" if pooled["run"]["median_ms"] < 1.0 else "not met"
    goal_size = "met" if onnx_bytes < 1_000_000 else "not met"
    ratio = pooled["run"]["median_ms"] / measured[other]["pooled"]["run"]["median_ms"]
    lines = [
        "# Browser decision latency and model size: designs/pensieve",
        "",
        f"Model: `llmabr export` of designs/pensieve (default: {default} arithmetic), {info['parameters']:,} "
        f"parameters (actor only), `policy.onnx` **{onnx_bytes:,} bytes** ({onnx_bytes / 2**20:.2f} MiB; goal < 1 MB: "
        f"{goal_size}). {info['graph']['rewrite']['values_packed']:,} of its weights are stored exactly in 3.5 bytes "
        f"each (llmabr/export/packing.py) and decoded once when the session loads; as plain float32 the weights alone "
        f"would take {4 * info['parameters']:,} bytes. Parity with the torch policy: max |logit diff| "
        f"{info['parity']['max_abs_logit_diff']:.1e} on {info['parity']['rows']} rows ({info['parity']['criterion']}, "
        f"tolerance {info['parity']['tolerance']:g}). Beside it, in the same run: `--precision {other}` "
        f"({infos[other]['onnx_bytes']:,} bytes; max |logit diff| {infos[other]['parity']['max_abs_logit_diff']:.1e}, "
        f"{infos[other]['parity']['criterion']}).",
        "",
        f"Player: dash.js {environment['dashjs']} with llmabr/players/dashjs, onnxruntime-web "
        f"{environment['onnxruntime_web']} (wasm, 1 thread), headless Chromium {environment['browser']}, "
        f"{environment['cpus']} CPU cores (1-min load average {environment['load_average_1min']:.1f} at the end). The "
        "page is cross-origin isolated, so `performance.now()` ticks in 5 us steps, not 100 us.",
        "",
        f"Stream: {N_SEGMENTS} segments x {SEGMENT_S:g} s, ladder {', '.join(f'{k:g}' for k in LADDER_KBPS)} kbps "
        "(ffmpeg x264, 320x180 noisy test pattern), served on 127.0.0.1 paced by each trace, 80 ms added before "
        "the first byte of every response. Each trace is played once per graph, the graphs taking turns.",
        "",
        "| graph | decisions | run median ms | run p99 ms | with row median ms | ready median ms | ready p99 ms "
        "| steady median ms | steady p99 ms | Python median ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for precision in PRECISIONS:
        stats = measured[precision]["pooled"]
        bench = stats["bench"] or {"median_ms": float("nan"), "p99_ms": float("nan")}
        lines.append(f"| {precision}{' (default)' if precision == default else ''} | {stats['run']['n']} "
                     f"| **{stats['run']['median_ms']:.3f}** | {stats['run']['p99_ms']:.3f} "
                     f"| {stats['decision']['median_ms']:.3f} | {stats['ready']['median_ms']:.3f} "
                     f"| {stats['ready']['p99_ms']:.3f} | {bench['median_ms']:.3f} | {bench['p99_ms']:.3f} "
                     f"| {infos[precision]['latency']['median_us'] / 1000:.3f} |")
    lines += [
        "",
        f"**Decision latency of the default graph, all {pooled['run']['n']} decisions: median "
        f"{pooled['run']['median_ms']:.3f} ms, p99 {pooled['run']['p99_ms']:.3f} ms** around `session.run` "
        f"(goal < 1 ms median: {goal_latency}); {ratio:.2f}x the {other} graph's median in the same run.",
        "",
        "`run`: `session.run` of one decision in a playing session, in a task of its own started right after a "
        "download; `with row`: building the row included; `ready`: from the download's completion event to the "
        "cached decision (includes waiting for dash.js's own handling of that event to finish); `steady`: "
        "further calls in the same page on the logged rows, back to back; Python: "
        "onnxruntime on one thread, measured by `llmabr export`. A decision in a session costs several times a "
        "steady call: it runs after seconds of idle and video work, with the weights (float64: 2 MB once decoded; "
        "float32: 1 MB) out of the caches. The decision still has to land before dash.js asks for the next segment "
        "(`stale` below counts the times it did not).",
        "", "## Per session", "",
        "| graph | trace (Mbps steps) | decisions | run median ms | run p99 ms | steady median ms | load ms "
        "| warm-up ms | avg kbps | stall s | switches | stale |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for precision in PRECISIONS:
        for row in measured[precision]["sessions"]:
            bench = row["bench"] or {"median_ms": float("nan")}
            lines.append(f"| {precision} | {row['trace']} | {row['run']['n']} | {row['run']['median_ms']:.3f} "
                         f"| {row['run']['p99_ms']:.3f} | {bench['median_ms']:.3f} | {row['load_ms']:.0f} "
                         f"| {row['warmup_ms']:.1f} | {row['avg_bitrate_kbps']:.0f} | {row['rebuffer_s']:.2f} "
                         f"| {row['switches']} | {row['stale_answers']} |")
    lines += ["", "`load ms`: fetch layout.json and policy.onnx, compile the onnxruntime wasm, create the session "
              "(decoding the packed weights) and run it once (`warm-up ms`, the first run, kept out of the decisions).",
              "", f"Reproduce: `python experiments/browser_latency.py{' --run ' + str(args.run) if args.run else ''} "
              f"--out {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
