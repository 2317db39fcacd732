"""Trace-set statistics, computed the way ../shared/traces/MANIFEST.md states them.

Pooled statistics are **time-weighted**: each sample is weighted by the interval to the next
one, and a trace's last sample gets that trace's median interval. Variability is measured on
each trace resampled to a 1 s grid (Pensieve semantics: row i holds on (t[i-1], t[i]]):
``cv_median`` is the median over traces of std/mean, ``acf1_median`` / ``acf10_median`` the
median lag-1 s / lag-10 s autocorrelation.
"""

from __future__ import annotations

import numpy as np

from simulator.traces.model import Trace


def sample_weights_s(trace: Trace) -> np.ndarray:
    steps = np.diff(trace.time_s)
    return np.append(steps, np.median(steps))


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The smallest value whose cumulative weight reaches ``q`` of the total."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    index = int(np.searchsorted(cumulative, q * cumulative[-1], side="left"))
    return float(values[order][min(index, len(values) - 1)])


def resample_1s(trace: Trace) -> np.ndarray:
    """Bandwidth on a 1 s grid: the value in force at each whole second after the first row."""
    grid_s = np.arange(trace.time_s[0] + 1.0, trace.time_s[-1] + 1e-9, 1.0)
    rows = np.searchsorted(trace.time_s, grid_s, side="left")
    return trace.bw_mbps[np.clip(rows, 1, len(trace) - 1)]


def autocorrelation(series: np.ndarray, lag: int) -> float:
    if len(series) <= lag + 1 or np.std(series[:-lag]) == 0 or np.std(series[lag:]) == 0:
        return float("nan")
    return float(np.corrcoef(series[:-lag], series[lag:])[0, 1])


def _nanmedian(values: list[float]) -> float:
    finite = [value for value in values if np.isfinite(value)]
    return float(np.median(finite)) if finite else float("nan")


def trace_stats(traces: list[Trace]) -> dict[str, float]:
    """count, hours, mean/median/p10/p90 Mbps (pooled, time-weighted), zero_share, per-trace
    mean (min/median/max), and the variability measures of the module docstring."""
    if not traces:
        raise ValueError("no traces to describe")
    values = np.concatenate([t.bw_mbps for t in traces])
    weights = np.concatenate([sample_weights_s(t) for t in traces])
    per_trace_means = np.array([np.average(t.bw_mbps, weights=sample_weights_s(t)) for t in traces])
    series = [resample_1s(t) for t in traces]
    cvs = [np.std(s) / np.mean(s) for s in series if len(s) > 1 and np.mean(s) > 0]
    return {
        "count": len(traces),
        "hours": float(sum(t.duration_s for t in traces) / 3600.0),
        "mean_mbps": float(np.average(values, weights=weights)),
        "median_mbps": weighted_quantile(values, weights, 0.5),
        "p10_mbps": weighted_quantile(values, weights, 0.1),
        "p90_mbps": weighted_quantile(values, weights, 0.9),
        "zero_share": float(weights[values == 0].sum() / weights.sum()),
        "trace_mean_min_mbps": float(per_trace_means.min()),
        "trace_mean_median_mbps": float(np.median(per_trace_means)),
        "trace_mean_max_mbps": float(per_trace_means.max()),
        "cv_median": float(np.median(cvs)) if cvs else float("nan"),
        "acf1_median": _nanmedian([autocorrelation(s, 1) for s in series]),
        "acf10_median": _nanmedian([autocorrelation(s, 10) for s in series]),
    }
