"""What a proposer knows about the task: network type, training-trace statistics, ladder, seed code.

Built from the training traces only (never test traces) and the video profile. ``build_context``
is the LLM prompt's view; ``trace_profile`` is the offline proposer's: a few numbers relating the
traces to the video ladder, which bias the building blocks it proposes (llmabr.proposer.offline).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llmabr.proposer.prompts import PromptContext
from llmabr.proposer.seeds import seed_net_source, seed_state_source
from simulator.config import SimConfig
from simulator.traces import generate, load_trace_dir, trace_stats
from simulator.traces.stats import sample_weights_s
from simulator.video import default_profile, load_profile

SEED_FEATURE_DIMS = {"last_bitrate": 1, "buffer": 1, "throughput": 8, "download_time": 8, "next_sizes": 6, "chunks_left": 1}
SYNTHETIC_COUNT = 60  # synthetic traces described (generator seed 0, the training traces' seed)


def describe_traces(stats: dict) -> str:
    return (f"{stats['count']} traces, {stats['hours']:.1f} h; throughput mean {stats['mean_mbps']:.2f} Mbps, "
            f"median {stats['median_mbps']:.2f}, 10th percentile {stats['p10_mbps']:.2f}, 90th {stats['p90_mbps']:.2f}; "
            f"{100 * stats['zero_share']:.1f} % of the time at 0 (outages); median coefficient of variation "
            f"{stats['cv_median']:.2f}, 1-s autocorrelation {stats['acf1_median']:.2f}.")


def _training_traces(network: str, traces: str) -> list:
    return list(generate(network, SYNTHETIC_COUNT, seed=0) if traces == "synthetic" else load_trace_dir(traces))


def build_context(network: str, traces: str = "synthetic", video: str | None = None, **extra) -> PromptContext:
    trace_list = _training_traces(network, traces)
    profile = load_profile(video) if video else default_profile(network)
    top_kbps = float(profile.bitrates_kbps[-1])
    dims = dict(SEED_FEATURE_DIMS, next_sizes=profile.n_levels)
    return PromptContext(
        network=network, trace_stats=describe_traces(trace_stats(trace_list)),
        ladder_kbps=tuple(float(k) for k in profile.bitrates_kbps), seed_state=seed_state_source(),
        seed_net=seed_net_source(), feature_dims=dims, rebuffer_penalty=SimConfig().rebuffer_penalty_for(top_kbps), **extra)


def _clip01(value: float) -> float:
    return 0.0 if not math.isfinite(value) else min(1.0, max(0.0, value))


@dataclass(frozen=True)
class TraceProfile:
    """The training traces measured against the video ladder (all ratios unitless).

    - ``median_over_top``: pooled, time-weighted median throughput / the top rung's bitrate
      (broadband on Envivio's ladder: 0.23; 4g on its service ladder: 1.9; 5g: 2.8);
    - ``median_over_bottom``: the same median / the lowest rung's bitrate;
    - ``p90_over_p10``: 90th / 10th percentile of pooled throughput (how wide its range is);
    - ``cv``: median over traces of the coefficient of variation (std / mean) on a 1-s grid
      (simulator.traces.stats);
    - ``outage_share``: share of time the throughput is below the lowest rung's bitrate, where
      even the lowest level downloads slower than real time and the buffer drains.
    """

    network: str
    median_over_top: float
    median_over_bottom: float
    p90_over_p10: float
    cv: float
    outage_share: float

    def signals(self) -> dict[str, float]:
        """The profile as signals in [0, 1], each 0 for the unremarkable case.

        - ``variability``: cv 0.2 -> 0, cv 0.8 or more -> 1 (broadband 0, 3g 0.35, 4g 0.75, 5g 1);
          ``stability`` is 1 - variability;
        - ``outage``: 0 % of time below the lowest rung -> 0, 5 % or more -> 1;
        - ``constrained``: median at or above the top rung -> 0, at a quarter of it or less -> 1
          (the ladder is a real choice: the top rung is often out of reach);
        - ``headroom``: median at or below the top rung -> 0, 2.8 times it or more -> 1
          (the top rung is usually affordable; the risk is in the dips);
        - ``spread``: p90 / p10 of 3 -> 0, 30 or more -> 1 (throughput spans orders of magnitude).
        """
        variability = _clip01((self.cv - 0.2) / 0.6)
        return {
            "variability": variability,
            "stability": 1.0 - variability,
            "outage": _clip01(self.outage_share / 0.05),
            "constrained": _clip01(math.log2(1.0 / max(self.median_over_top, 1e-6)) / 2.0),
            "headroom": _clip01(math.log2(max(self.median_over_top, 1e-6)) / 1.5),
            "spread": _clip01(math.log10(max(self.p90_over_p10, 1.0)) - 0.5),
        }

    def describe(self) -> str:
        return (f"{self.network} traces: median {self.median_over_top:.2f} x top rung, {self.median_over_bottom:.1f} x "
                f"lowest, p90/p10 {self.p90_over_p10:.1f}, cv {self.cv:.2f}, {100 * self.outage_share:.1f} % of "
                f"the time below the lowest rung")


def profile_from_traces(network: str, traces: list, ladder_kbps) -> TraceProfile:
    """``TraceProfile`` of ``traces`` (simulator Trace objects) against a ladder in kbps."""
    stats = trace_stats(traces)
    bottom_mbps, top_mbps = float(ladder_kbps[0]) / 1000.0, float(ladder_kbps[-1]) / 1000.0
    values_mbps = np.concatenate([trace.bw_mbps for trace in traces])
    weights_s = np.concatenate([sample_weights_s(trace) for trace in traces])
    return TraceProfile(
        network=network, median_over_top=stats["median_mbps"] / top_mbps,
        median_over_bottom=stats["median_mbps"] / bottom_mbps,
        p90_over_p10=stats["p90_mbps"] / max(stats["p10_mbps"], 1e-3), cv=stats["cv_median"],
        outage_share=float(weights_s[values_mbps < bottom_mbps].sum() / weights_s.sum()))


def trace_profile(network: str, traces: str = "synthetic", video: str | None = None) -> TraceProfile:
    """The offline proposer's view of a search's training traces (a folder, a .txt list or "synthetic")."""
    profile = load_profile(video) if video else default_profile(network)
    return profile_from_traces(network, _training_traces(network, traces), profile.bitrates_kbps)
