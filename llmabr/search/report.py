"""``RUN/report.md`` and its plots, from the archive alone (so a resumed or stopped run reports too).

The winner is chosen on validation QoE (S3, mean over seeds), never on test QoE; the test traces
only score it. "Did it beat the seed?" is a paired bootstrap over test traces of the per-trace QoE
difference (each averaged over the S3 seeds), with its 95 % CI.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from llmabr.search.archive import Archive
from llmabr.train.evaluate import bootstrap_ci, summarize

BASELINES = ("bb", "rb", "bola", "robustmpc")


def per_trace(archive: Archive, name: str) -> list[dict] | None:
    """Per-trace test rows averaged over the S3 seeds (None when the design was not tested)."""
    files = sorted(archive.folder(name).glob("test-s*.json"))
    if not files:
        return None
    runs = [json.loads(path.read_text()) for path in files]
    keys = [key for key, value in runs[0][0].items() if isinstance(value, (int, float))]
    return [{"trace": runs[0][i]["trace"], **{key: float(np.mean([run[i][key] for run in runs])) for key in keys}}
            for i in range(len(runs[0]))]


def paired_difference(a: list[dict], b: list[dict]) -> tuple[float, tuple[float, float]]:
    diff = np.array([x["qoe_per_chunk"] - y["qoe_per_chunk"] for x, y in zip(a, b)])
    return float(diff.mean()), bootstrap_ci(diff)


def baseline_rows(config, test_traces: str) -> dict[str, list[dict]]:
    from llmabr.train.evaluate import evaluate
    from simulator.baselines import make_baseline
    from simulator.layout import Layout
    from simulator.traces import load_trace_dir
    from simulator.video import default_profile, load_profile

    video = load_profile(config.train.video) if config.train.video else default_profile(config.network)
    traces = load_trace_dir(test_traces)
    return {name: evaluate(make_baseline(name, video, Layout(16, video.n_levels)), traces, video,
                           mode=config.train.mode, qoe=config.train.qoe) for name in BASELINES}


def write_report(archive: Archive, config, test_traces: str, summary: dict, seed_name: str = "seed-pensieve") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = archive.run_dir
    finalists = archive.meta("finalists") or []
    tested = {name: rows for name in finalists if (rows := per_trace(archive, name)) is not None}
    baselines = baseline_rows(config, test_traces)
    designs = {d["name"]: d for d in archive.designs()}
    lines = [f"# llmabr search report: {out.name}", "",
             f"Mode **{config.mode}**, proposer: **{summary.get('proposer')}**; network {config.network}, training "
             f"traces `{config.traces}`, test traces `{test_traces}` (held out). Budget: {config.budget.designs} "
             f"designs, S2 {config.budget.screen_steps:,} steps, S3 {config.budget.train_steps:,} steps x "
             f"{config.budget.train_seeds} seeds for the top {config.budget.top_k} and the seed design. "
             f"Elapsed {summary.get('elapsed_s', 0) / 60:.1f} min on {config.workers} worker(s)."
             + (f" Proposing stopped: {summary['stop_reason']}." if summary.get("stop_reason") else ""), ""]

    # the verdict: winner on validation, scored on test, against the seed
    candidates = [name for name in tested if name != seed_name]
    if candidates and seed_name in tested:
        winner = max(candidates, key=lambda name: designs[name]["val_qoe"] or -np.inf)
        delta, (low, high) = paired_difference(tested[winner], tested[seed_name])
        verdict = ("beat the seed design" if low > 0 else "did worse than the seed design" if high < 0
                   else "did not clearly differ from the seed design")
        lines += [f"**Verdict:** the best design on validation, `{winner}`, {verdict} on the held-out test traces: "
                  f"{summarize(tested[winner])['qoe_per_chunk']:.3f} vs {summarize(tested[seed_name])['qoe_per_chunk']:.3f} "
                  f"QoE per chunk, difference {delta:+.3f} (95 % CI {low:+.3f} to {high:+.3f}, paired bootstrap over "
                  f"{len(tested[winner])} traces).", ""]
    elif config.budget.train_seeds == 0:
        ranked = [d for d in archive.top(stage="screened") if d["name"] != seed_name]
        seed_val = designs[seed_name]["val_qoe"] if seed_name in designs else None
        best = (f" Best on S2 validation: `{ranked[0]['name']}` {ranked[0]['val_qoe']:.3f}"
                + (f" (seed design {seed_val:.3f})" if seed_val is not None else "") + ".") if ranked else ""
        lines += ["**Verdict:** screening only (`budget.train_seeds = 0`): no full training and no test, so "
                  f"no claim about the seed design on test traces.{best}", ""]
    else:
        lines += ["**Verdict:** no finalist and seed pair was tested, so there is no comparison "
                  "(see the funnel and the failures below).", ""]

    lines += ["## Test QoE (finalists, the seed design and the baselines)", "",
              "| policy | val QoE (S3) | test QoE/chunk | 95 % CI | kbps | rebuffer % | switches/min |",
              "|---|---:|---:|---|---:|---:|---:|"]
    rows_by_policy = {**tested, **baselines}
    stats = {name: summarize(rows) for name, rows in rows_by_policy.items()}
    for name, s in stats.items():
        val = designs[name]["val_qoe"] if name in designs and designs[name]["val_qoe"] is not None else None
        lines.append(f"| {name} | {'-' if val is None else f'{val:.3f}'} | {s['qoe_per_chunk']:.3f} | "
                     f"{s['qoe_per_chunk_ci95'][0]:.3f} to {s['qoe_per_chunk_ci95'][1]:.3f} | {s['bitrate_kbps']:.0f} | "
                     f"{100 * s['rebuffer_ratio']:.2f} | {s['switches_per_min']:.2f} |")

    funnel = archive.funnel()
    lines += ["", "## Cascade", "", "| " + " | ".join(funnel) + " |", "|" + "---:|" * len(funnel),
              "| " + " | ".join(str(v) for v in funnel.values()) + " |", ""]
    compute: dict[str, float] = {}
    for task in archive.tasks():
        if task["started_s"] and task["finished_s"]:
            compute[task["stage"]] = compute.get(task["stage"], 0.0) + task["finished_s"] - task["started_s"]
    lines += ["Compute per stage (worker seconds): " + ", ".join(f"{k} {v:.0f} s" for k, v in compute.items())
              + f"; LLM cost ${summary.get('llm_cost_usd', 0.0):.4f}.", "",
              "## All designs", "", "| design | kind | origin | stage | status | val QoE | reason |", "|---|---|---|---|---|---:|---|"]
    for name, d in designs.items():
        lines.append(f"| {name} | {d['kind']} | {d['origin']} | {d['stage']} | {d['status']} | "
                     f"{'-' if d['val_qoe'] is None else format(d['val_qoe'], '.3f')} | {d['reason'][:160]} |")

    figure, axes = plt.subplots(2, 3, figsize=(17, 8.5))
    names = list(stats)
    means = [stats[n]["qoe_per_chunk"] for n in names]
    errors = np.array([[m - stats[n]["qoe_per_chunk_ci95"][0], stats[n]["qoe_per_chunk_ci95"][1] - m]
                       for n, m in zip(names, means)]).T
    axes[0, 0].bar(range(len(names)), means, yerr=errors, capsize=3,
                   color=["tab:orange" if n in tested else "tab:gray" for n in names])
    axes[0, 0].set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
    axes[0, 0].set_ylabel("test QoE per chunk (95 % CI)")
    for name, rows in rows_by_policy.items():
        values = np.sort([row["qoe_per_chunk"] for row in rows])
        axes[0, 1].step(values, np.arange(1, len(values) + 1) / len(values), where="post", label=name,
                        linewidth=2 if name in tested else 1)
    axes[0, 1].set_xlabel("test QoE per chunk (per trace)")
    axes[0, 1].set_ylabel("CDF")
    axes[0, 1].legend(fontsize=6)
    for name, d in designs.items():
        curve = d["metrics"].get("S2", {}).get("curve") or []
        if curve:
            axes[1, 0].plot([p["steps"] for p in curve], [p["val_qoe"] for p in curve],
                            linewidth=2.5 if name == seed_name else 0.8, color="black" if name == seed_name else None)
    axes[1, 0].set_xlabel("env steps (S2)")
    axes[1, 0].set_ylabel("validation QoE per chunk (black: seed)")
    for name in finalists:  # S3: every seed's validation curve (the learning curves of the finalists)
        for index, curve in enumerate(designs[name]["metrics"].get("S3", {}).get("curves", []) if name in designs else []):
            if curve:
                axes[1, 1].plot([p["steps"] for p in curve], [p["val_qoe"] for p in curve],
                                color="black" if name == seed_name else None, linewidth=1.5 if name == seed_name else 1,
                                label=name if index == 0 else None)
    axes[1, 1].set_xlabel("env steps (S3, every seed)")
    axes[1, 1].set_ylabel("validation QoE per chunk")
    if finalists:
        axes[1, 1].legend(fontsize=6)
    axes[0, 2].bar(range(len(funnel)), list(funnel.values()))
    axes[0, 2].set_xticks(range(len(funnel)), list(funnel), fontsize=8)
    axes[0, 2].set_ylabel("designs (cascade funnel)")
    stages = ["propose", *compute]
    worker_min = [0.0] + [compute[stage] / 60 for stage in compute]
    llm_usd = [summary.get("llm_cost_usd", 0.0)] + [0.0] * len(compute)  # the LLM is only asked when proposing
    axes[1, 2].bar(range(len(stages)), worker_min, color="tab:blue")
    axes[1, 2].set_xticks(range(len(stages)), stages, fontsize=8)
    axes[1, 2].set_ylabel("worker minutes per stage (blue)")
    cost_axis = axes[1, 2].twinx()
    cost_axis.bar([i + 0.3 for i in range(len(stages))], llm_usd, width=0.3, color="tab:red")
    cost_axis.set_ylim(0, max(llm_usd) * 1.2 or 1.0)
    cost_axis.set_ylabel("LLM cost, USD (red)")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(out / "report.png", dpi=110)
    plt.close(figure)
    lines += ["", "![test QoE with CIs, per-trace CDF, funnel; S2 and S3 learning curves, compute and LLM cost per "
              "stage](report.png)", ""]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return out / "report.md"
