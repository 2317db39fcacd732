"""Yardsticks and comparisons: baselines and the offline optimum on a trace set, and the verdicts.

Every trace set has BB at the bottom and the offline optimum (``simulator.baselines.optimal``:
dynamic programming with the future bandwidth known, replayed in the simulator) at the top;
``normalized = (QoE - QoE_BB) / (QoE_opt - QoE_BB)`` puts every policy on one scale across
network types (BB = 0, optimal = 1). ``compare`` turns per-seed, per-trace rows of any number
of policies into means, normalized scores and paired differences with CIs that resample training
seeds and traces (grouped by recording: ``simulator.traces.groups.recording_id``).

All of it is trusted code: heuristics and the DP run here; designs are scored through
``llmabr.scoring.actor``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from llmabr.scoring.stats import BootstrapResult, two_level_bootstrap, verdict
from simulator.baselines.protocol import sorted_traces

HEURISTICS = ("bb", "rb", "bola", "robustmpc")
FLOOR, CEILING = "bb", "optimal"


def baseline_rows(traces, video, mode: str = "default", qoe: str = "lin", names=(*HEURISTICS, CEILING),
                  cache_dir: Path | None = None) -> dict[str, list[dict]]:
    """Per-trace rows of each named baseline (``optimal`` included) on ``traces``, in sorted trace order.

    With ``cache_dir``, results are kept in ``yardsticks-<hash>.json`` keyed by the traces' content,
    the video, mode and QoE, so a search computes the optimum of its validation set once.
    """
    from llmabr.train.evaluate import evaluate
    from simulator.baselines import make_baseline
    from simulator.baselines.optimal import run_optimal
    from simulator.layout import Layout
    from simulator.video import VideoProfile, load_profile

    video = video if isinstance(video, VideoProfile) else load_profile(video)
    ordered = sorted_traces(traces)
    cache = None
    if cache_dir is not None:
        digest = hashlib.sha256()
        for trace in ordered:
            digest.update(trace.name.encode())
            digest.update(trace.time_s.tobytes())
            digest.update(trace.bw_mbps.tobytes())
        digest.update(json.dumps([video.name, video.chunk_bytes.sum().item(), mode, qoe]).encode())
        cache = Path(cache_dir) / f"yardsticks-{digest.hexdigest()[:16]}.json"
        if cache.exists():
            stored = json.loads(cache.read_text())
            if all(name in stored for name in names):
                return {name: stored[name] for name in names}
    rows = {}
    for name in names:
        if name == CEILING:
            result = run_optimal(ordered, video, mode=mode, qoe=qoe)
            rows[name] = [{"trace": row["name"], **{k: v for k, v in row.items() if k not in ("name", "levels")}}
                          for row in result["per_trace"]]
        else:
            rows[name] = evaluate(make_baseline(name, video, Layout(16, video.n_levels)), ordered, video, mode=mode,
                                  qoe=qoe)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        previous = json.loads(cache.read_text()) if cache.exists() else {}
        cache.write_text(json.dumps({**previous, **rows}))
    return rows


def validation_yardsticks(traces, video, mode: str, qoe: str, cache_dir: Path | None = None) -> dict:
    """{"bb": QoE/chunk, "optimal": QoE/chunk} on a validation set (S2's scale)."""
    floor, ceiling = normalization(baseline_rows(traces, video, mode, qoe, names=(FLOOR, CEILING), cache_dir=cache_dir))
    return {FLOOR: floor, CEILING: ceiling}


def normalization(rows: dict[str, list[dict]]) -> tuple[float, float]:
    """(QoE_BB, QoE_opt) per chunk on a trace set, from ``baseline_rows``."""
    floor = float(np.mean([row["qoe_per_chunk"] for row in rows[FLOOR]]))
    ceiling = float(np.mean([row["qoe_per_chunk"] for row in rows[CEILING]]))
    return floor, ceiling


def normalize(qoe: float, floor: float, ceiling: float) -> float:
    return (qoe - floor) / (ceiling - floor) if ceiling > floor else float("nan")


def compare(rows_by_policy: dict[str, list[list[dict]]], groups=None, pairs=None, key: str = "qoe_per_chunk",
            resamples: int = 2000) -> BootstrapResult:
    """Means, normalized scores and paired differences with seed-and-trace CIs.

    ``rows_by_policy[name]`` is a list of per-seed row lists (one list for a deterministic policy),
    every row list over the same traces in the same order (checked by trace name).
    """
    names = None
    scores = {}
    for name, seeds in rows_by_policy.items():
        for rows in seeds:
            order = [row["trace"] for row in rows]
            if names is None:
                names = order
            elif order != names:
                raise ValueError(f"{name}: its rows cover other traces (or another order) than the first policy's")
        scores[name] = np.array([[row[key] for row in rows] for rows in seeds], dtype=np.float64)
    use_normalize = (FLOOR, CEILING) if FLOOR in scores and CEILING in scores else None
    return two_level_bootstrap(scores, groups, normalize=use_normalize, pairs=pairs, resamples=resamples)


def trace_groups(rows: list[dict]) -> list[str]:
    """The recording each trace of ``rows`` belongs to (traces of one recording are resampled together)."""
    from simulator.traces.groups import recording_id

    return [recording_id(row["trace"]) for row in rows]


def comparison_text(result: BootstrapResult, a: str, b: str, unit: str = " QoE/chunk") -> tuple[str, str]:
    """(verdict, "a - b: +x (95 % CI lo to hi)") for a report line."""
    difference = result.difference(a, b)
    return (verdict(difference.low, difference.high),
            f"{a} - {b}: {difference.mean:+.3f}{unit} (95 % CI {difference.low:+.3f} to {difference.high:+.3f})")
