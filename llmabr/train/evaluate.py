"""The deterministic test protocol with per-trace QoE parts, and summaries with bootstrap CIs.

``evaluate(policy, traces, video)`` plays every trace once (sorted, start row 1, no noise, chunk 0
at level 1 and unscored) with any batched policy (``reset(mask)`` / ``act(obs)``: the baselines,
or a trained design through ``GreedyPolicy``) and returns one row per trace. ``summarize`` turns
rows into the numbers a reviewer asks for: mean QoE per chunk and per trace with 95 % bootstrap
confidence intervals (resampling traces), mean bitrate, rebuffer ratio, switches per minute.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from simulator.baselines.protocol import run_test_protocol


def evaluate(policy, traces, video, mode: str = "default", qoe: str = "lin") -> list[dict]:
    """One row per trace (``trace`` = its name) from the simulator's own test protocol."""
    per_trace = run_test_protocol(policy, traces, video, mode=mode, qoe=qoe)["per_trace"]
    return [{"trace": row.pop("name"), **row} for row in per_trace]


def bootstrap_ci(values, resamples: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float(values.mean()), float(values.mean())
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def summarize(rows: list[dict]) -> dict:
    per_chunk = [row["qoe_per_chunk"] for row in rows]
    per_trace = [row["qoe_sum"] for row in rows]
    return {
        "traces": len(rows),
        "qoe_per_chunk": float(np.mean(per_chunk)), "qoe_per_chunk_ci95": bootstrap_ci(per_chunk),
        "qoe_per_trace": float(np.mean(per_trace)), "qoe_per_trace_ci95": bootstrap_ci(per_trace),
        "bitrate_kbps": float(np.mean([row["bitrate_kbps"] for row in rows])),
        "rebuffer_ratio": float(np.mean([row["rebuffer_ratio"] for row in rows])),
        "switches_per_min": float(np.mean([row["switches_per_min"] for row in rows])),
    }


def write_csv(path: Path, rows_by_policy: dict[str, list[dict]]) -> None:
    """One row per (policy, trace); columns are the union of every row's keys (the optimum adds its bound)."""
    records = [{"policy": policy, **row} for policy, rows in rows_by_policy.items() for row in rows]
    fields = list(dict.fromkeys(key for record in records for key in record))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(records)


def plot_cdf(path: Path, rows_by_policy: dict[str, list[dict]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for policy, rows in rows_by_policy.items():
        values = np.sort([row["qoe_per_chunk"] for row in rows])
        axes.step(values, np.arange(1, len(values) + 1) / len(values), where="post", label=policy,
                  linewidth=2.2 if policy not in BASELINE_NAMES else 1.2)
    axes.set_xlabel("QoE per chunk (per trace)")
    axes.set_ylabel("CDF over traces")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


BASELINE_NAMES = ("bb", "rb", "bola", "fastmpc", "robustmpc")
