"""What a prompt knows about the task: network type, training-trace statistics, ladder, seed code.

Built from the training traces only (never test traces) and the video profile.
"""

from __future__ import annotations

from llmabr.proposer.prompts import PromptContext
from llmabr.proposer.seeds import seed_net_source, seed_state_source
from simulator.config import SimConfig
from simulator.traces import generate, load_trace_dir, trace_stats
from simulator.video import default_profile, load_profile

SEED_FEATURE_DIMS = {"last_bitrate": 1, "buffer": 1, "throughput": 8, "download_time": 8, "next_sizes": 6, "chunks_left": 1}


def describe_traces(stats: dict) -> str:
    return (f"{stats['count']} traces, {stats['hours']:.1f} h; throughput mean {stats['mean_mbps']:.2f} Mbps, "
            f"median {stats['median_mbps']:.2f}, 10th percentile {stats['p10_mbps']:.2f}, 90th {stats['p90_mbps']:.2f}; "
            f"{100 * stats['zero_share']:.1f} % of the time at 0 (outages); median coefficient of variation "
            f"{stats['cv_median']:.2f}, 1-s autocorrelation {stats['acf1_median']:.2f}.")


def build_context(network: str, traces: str = "synthetic", video: str | None = None, **extra) -> PromptContext:
    trace_list = generate(network, 60, seed=0) if traces == "synthetic" else load_trace_dir(traces)
    profile = load_profile(video) if video else default_profile(network)
    top_kbps = float(profile.bitrates_kbps[-1])
    dims = dict(SEED_FEATURE_DIMS, next_sizes=profile.n_levels)
    return PromptContext(
        network=network, trace_stats=describe_traces(trace_stats(list(trace_list))),
        ladder_kbps=tuple(float(k) for k in profile.bitrates_kbps), seed_state=seed_state_source(),
        seed_net=seed_net_source(), feature_dims=dims, rebuffer_penalty=SimConfig().rebuffer_penalty_for(top_kbps), **extra)
