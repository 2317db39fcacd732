"""``RUN/report.md`` and its plots, from the archive alone (so a resumed or stopped run reports too).

The winner is chosen on validation QoE (S3, mean over seeds) among the finalists AND the seed
design, never on test QoE; the test traces only score it. Every test number comes from the
trusted scorer (the simulator ran in a worker that executes no design code). "Did it beat the
seed?" is a paired two-level bootstrap (training seeds, then test traces grouped by recording) of
the QoE difference, with a verdict that says "no significant difference" when the CI holds 0.
Each policy is also shown normalized: (QoE - BB) / (optimum - BB) on the same test traces.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from llmabr.search.archive import Archive
from llmabr.train.evaluate import summarize

BASELINES = ("bb", "rb", "bola", "robustmpc", "optimal")


def seed_rows(archive: Archive, name: str) -> list[list[dict]] | None:
    """Per-seed test rows of a design (None when it was not tested)."""
    files = sorted(archive.folder(name).glob("test-s*.json"))
    return [json.loads(path.read_text()) for path in files] or None


def per_trace(archive: Archive, name: str) -> list[dict] | None:
    """Per-trace test rows averaged over the S3 seeds, paired by trace name (None when the design was not
    tested). Raises ValueError when the seeds were scored on different traces."""
    runs = seed_rows(archive, name)
    if not runs:
        return None
    keys = [key for key, value in runs[0][0].items() if isinstance(value, (int, float))]
    order = [row["trace"] for row in runs[0]]
    by_trace = [{row["trace"]: row for row in run} for run in runs]
    for index, rows in enumerate(by_trace):
        if len(rows) != len(order) or set(rows) != set(order):
            raise ValueError(f"{name}: the test rows of its S3 seed file {index} cover other traces than seed file 0's")
    return [{"trace": trace, **{key: float(np.mean([rows[trace][key] for rows in by_trace])) for key in keys}}
            for trace in order]


def best_on_validation(names: list[str], designs: dict[str, dict]) -> str:
    """The design of ``names`` with the highest validation QoE (the first listed on a tie); one without a
    validation QoE ranks last. 0.0, or a negative QoE, is a score like any other."""
    return max(names, key=lambda name: designs[name]["val_qoe"] if designs[name]["val_qoe"] is not None else -np.inf)


def verdict_text(stats, by_seed: dict, designs: dict[str, dict], seed_name: str) -> str:
    """The report's verdict sentence: the winner on validation among the tested designs (the seed design
    competes too), then how it compares with the seed design on the test traces (``stats``: ``compare``'s
    result with the pairs (design, seed) computed)."""
    from llmabr.scoring.yardsticks import comparison_text

    winner = best_on_validation(list(by_seed), designs)
    if winner == seed_name:
        others = [name for name in by_seed if name != seed_name]
        text = "the seed design itself was best on validation: no candidate replaced it."
        if others:
            best = best_on_validation(others, designs)
            verdict, line = comparison_text(stats, best, seed_name)
            text += f" The best candidate on validation, `{best}`, against it on test: {line}: {verdict}."
        return text
    verdict, line = comparison_text(stats, winner, seed_name)
    phrase = {"better": "is better than the seed design", "worse": "is worse than the seed design",
              "no significant difference": "shows no significant difference from the seed design"}[verdict]
    return f"the best design on validation, `{winner}`, {phrase} on the held-out test traces: {line}."


def baseline_rows(config, test_traces: str) -> dict[str, list[dict]]:
    from llmabr.scoring.yardsticks import baseline_rows as rows_of
    from simulator.traces import load_trace_dir
    from simulator.video import default_profile, load_profile

    video = load_profile(config.train.video) if config.train.video else default_profile(config.network)
    return rows_of(load_trace_dir(test_traces, fmt=config.train.trace_format), video, config.train.mode, config.train.qoe, names=BASELINES)


def _llm_usage_text(usage: dict | None) -> str:
    if not usage or not usage.get("requests"):
        return ""
    failed = f", {usage['failures']} failed" if usage.get("failures") else ""
    return (f" ({usage['requests']} LLM requests{failed}: {usage['prompt_tokens']:,} prompt + "
            f"{usage['completion_tokens']:,} completion tokens)")


def write_report(archive: Archive, config, test_traces: str, summary: dict, seed_name: str = "seed-pensieve") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = archive.run_dir
    finalists = archive.meta("finalists") or []
    tested = {name: rows for name in finalists if (rows := per_trace(archive, name)) is not None}
    designs = {d["name"]: d for d in archive.designs()}
    lines = [f"# llmabr search report: {out.name}", "",
             f"Mode **{config.mode}**, proposer: **{summary.get('proposer')}**; network {config.network}, training "
             f"traces `{config.traces}`, test traces `{test_traces}` (held out). Budget: {config.budget.designs} "
             f"designs, S2 {config.budget.screen_steps:,} steps, S3 {config.budget.train_steps:,} steps x "
             f"{config.budget.train_seeds} seeds for the top {config.budget.top_k} and the seed design. "
             f"Elapsed {summary.get('elapsed_s', 0) / 60:.1f} min on {config.workers} worker(s)."
             + (f" Proposing stopped: {summary['stop_reason']}." if summary.get("stop_reason") else ""), ""]

    # the verdict: winner on validation (the seed competes too), scored on test, against the seed
    from llmabr.scoring.yardsticks import compare, comparison_text, trace_groups

    baselines = baseline_rows(config, test_traces)
    by_seed = {name: rows for name in tested if (rows := seed_rows(archive, name))}
    stats = None
    if by_seed:
        policies = {**by_seed, **{name: [rows] for name, rows in baselines.items()}}
        pairs = [(a, b) for a in by_seed for b in policies if a != b]
        stats = compare(policies, trace_groups(next(iter(by_seed.values()))[0]), pairs=pairs)
    if by_seed and seed_name in by_seed:
        text = verdict_text(stats, by_seed, designs, seed_name)
        seed_counts = sorted({len(rows) for rows in by_seed.values()})
        lines += [f"**Verdict:** {text} CIs resample the training seeds ({'/'.join(map(str, seed_counts))} per design) and "
                  f"{stats.n_groups} recordings ({stats.n_traces} traces), paired across policies.", ""]
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
              "QoE per chunk and normalized score ((QoE - BB) / (optimum - BB): BB = 0, offline optimum = 1) with 95 % "
              "CIs over training seeds and recordings; the optimum knows each trace's future bandwidth.", "",
              "| policy | seeds | val QoE (S3) | test QoE/chunk | 95 % CI | normalized | 95 % CI | kbps | rebuffer % | "
              "switches/min |", "|---|---:|---:|---:|---|---:|---|---:|---:|---:|"]
    rows_by_policy = {**tested, **baselines}
    summaries = {name: summarize(rows) for name, rows in rows_by_policy.items()}
    for name, s in summaries.items():
        val = designs[name]["val_qoe"] if name in designs and designs[name]["val_qoe"] is not None else None
        mean, ci, norm, norm_ci = s["qoe_per_chunk"], s["qoe_per_chunk_ci95"], None, None
        if stats is not None and name in stats.policies:
            estimate = stats.policies[name]
            mean, ci = estimate.mean, (estimate.low, estimate.high)
            if name in stats.normalized:
                n = stats.normalized[name]
                norm, norm_ci = n.mean, (n.low, n.high)
        seeds = len(by_seed.get(name, [])) or 1
        lines.append(f"| {name} | {seeds} | {'-' if val is None else f'{val:.3f}'} | {mean:.3f} | {ci[0]:.3f} to "
                     f"{ci[1]:.3f} | {'-' if norm is None else f'{norm:.3f}'} | "
                     f"{'-' if norm_ci is None else f'{norm_ci[0]:.3f} to {norm_ci[1]:.3f}'} | {s['bitrate_kbps']:.0f} | "
                     f"{100 * s['rebuffer_ratio']:.2f} | {s['switches_per_min']:.2f} |")
    if stats is not None:
        lines += ["", "Paired differences on test (two-level bootstrap):", ""]
        for name in by_seed:
            for other in ("robustmpc", seed_name):
                if other != name and other in stats.policies:
                    verdict, line = comparison_text(stats, name, other)
                    lines.append(f"- {line}: **{verdict}**")
    stats_by_name = summaries

    funnel = archive.funnel()
    lines += ["", "## Cascade", "", "| " + " | ".join(funnel) + " |", "|" + "---:|" * len(funnel),
              "| " + " | ".join(str(v) for v in funnel.values()) + " |", ""]
    compute: dict[str, float] = {}
    for task in archive.tasks():
        if task["started_s"] and task["finished_s"]:
            compute[task["stage"]] = compute.get(task["stage"], 0.0) + task["finished_s"] - task["started_s"]
    lines += ["Compute per stage (worker seconds): " + ", ".join(f"{k} {v:.0f} s" for k, v in compute.items())
              + f"; LLM cost ${summary.get('llm_cost_usd', 0.0):.4f}" + _llm_usage_text(summary.get("llm_usage")) + ".", "",
              "## All designs", "", "| design | kind | origin | stage | status | val QoE | reason |", "|---|---|---|---|---|---:|---|"]
    for name, d in designs.items():
        lines.append(f"| {name} | {d['kind']} | {d['origin']} | {d['stage']} | {d['status']} | "
                     f"{'-' if d['val_qoe'] is None else format(d['val_qoe'], '.3f')} | {d['reason'][:160]} |")

    figure, axes = plt.subplots(2, 3, figsize=(17, 8.5))
    names = list(stats_by_name)
    means = [stats_by_name[n]["qoe_per_chunk"] for n in names]
    errors = np.array([[m - stats_by_name[n]["qoe_per_chunk_ci95"][0], stats_by_name[n]["qoe_per_chunk_ci95"][1] - m]
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
