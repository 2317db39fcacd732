"""The deterministic test protocol: every trace played once, in sorted order, and scored.

One player per trace (player i plays the i-th trace by name), ``test_config(mode=...)``: start
row 1, no noise. The reset downloads chunk 0 at the default level (1); it is excluded from the
score, as in Pensieve's ``test/*.py``. The policy then decides chunks 1..end
(``chunks_per_episode - 1`` steps: 47 in pensieve mode, 48 for 49-chunk videos in the default
mode). Per trace: the QoE sum and mean over those chunks, their total rebuffer time and its
share of the session, the mean bitrate and the level switches per minute of video.
"""

from __future__ import annotations

import numpy as np

from simulator.baselines import make_baseline
from simulator.baselines.base import Baseline
from simulator.config import test_config
from simulator.core import VecSim
from simulator.traces.model import Trace, TraceSet
from simulator.video import VideoProfile, load_profile

MPC_NAMES = ("fastmpc", "robustmpc")


def sorted_traces(traces: list[Trace] | TraceSet) -> list[Trace]:
    """The traces as ``Trace`` objects sorted by name (Pensieve's test order)."""
    if isinstance(traces, TraceSet):
        traces = [Trace(name, *traces.trace(i)) for i, name in enumerate(traces.names)]
    traces = list(traces)
    if not traces:
        raise ValueError("the test protocol needs at least one trace")
    return sorted(traces, key=lambda trace: trace.name)


def run_test_protocol(policy: str | Baseline, traces: list[Trace] | TraceSet, video: VideoProfile | str,
                      mode: str = "default", as_committed: bool = False, qoe: str = "lin",
                      backend: str = "c", **policy_params) -> dict:
    """Score ``policy`` (a baseline name or an object with ``reset(mask)`` / ``act(obs)``).

    ``as_committed`` builds fastmpc/robustmpc with Pensieve's off-by-one planning index
    (``index_fixed=False``); by name, MPC plans with the protocol's ``qoe``. Returns
    ``{"per_trace": [{name, qoe_sum, qoe_per_chunk, rebuffer_s, rebuffer_ratio, bitrate_kbps,
    switches_per_min, chunks}, ...], "mean": {qoe_sum, rebuffer_s, bitrate_kbps, qoe_per_chunk},
    "settings": {...}}``; bitrate_kbps is the mean over the scored chunks, qoe_per_chunk the
    qoe_sum divided by the scored chunk count, rebuffer_ratio the rebuffer time over rebuffer
    plus played time, switches counted against the previous chunk's level (chunk 0 included).
    """
    video = load_profile(video) if not isinstance(video, VideoProfile) else video
    ordered = sorted_traces(traces)
    config = test_config(mode=mode, qoe=qoe)
    sim = VecSim(ordered, video, len(ordered), config, seed=0, backend=backend)
    if isinstance(policy, str):
        name = policy.strip().lower()
        params = dict(policy_params)
        if name in MPC_NAMES:
            params.setdefault("index_fixed", not as_committed)
            params.setdefault("qoe", qoe)
        elif as_committed:
            raise ValueError(f"as_committed (Pensieve's off-by-one MPC index) applies to {MPC_NAMES}, not {name!r}")
        policy_obj = make_baseline(name, video, sim.layout, **params)
    else:
        if as_committed or policy_params:
            raise ValueError("as_committed and policy parameters apply only to a baseline given by name")
        policy_obj, name = policy, getattr(policy, "name", type(policy).__name__)

    n_traces, n_steps = len(ordered), sim.n_episode_chunks - 1
    obs = sim.reset()
    policy_obj.reset(None)
    qoe_sum = np.zeros(n_traces)
    rebuffer_s = np.zeros(n_traces)
    bitrate_sum_kbps = np.zeros(n_traces)
    switches = np.zeros(n_traces)
    previous_level = np.full(n_traces, config.default_level)
    for step in range(n_steps):
        out = sim.step(policy_obj.act(obs))
        qoe_sum += out.reward
        rebuffer_s += out.rebuffer_s
        bitrate_sum_kbps += out.bitrate_kbps
        switches += out.level != previous_level
        previous_level = out.level.copy()
        last_step = step == n_steps - 1
        if bool(np.any(out.done)) != last_step or (last_step and not np.all(out.done)):
            raise RuntimeError(f"step {step}: episodes ended out of step with the protocol's {n_steps} steps")
        obs = out.obs

    play_s = n_steps * video.chunk_s
    per_trace = [
        {"name": trace.name, "qoe_sum": float(qoe_sum[i]), "qoe_per_chunk": float(qoe_sum[i] / n_steps),
         "rebuffer_s": float(rebuffer_s[i]), "rebuffer_ratio": float(rebuffer_s[i] / (rebuffer_s[i] + play_s)),
         "bitrate_kbps": float(bitrate_sum_kbps[i] / n_steps),
         "switches_per_min": float(switches[i] / (play_s / 60.0)), "chunks": n_steps}
        for i, trace in enumerate(ordered)
    ]
    mean = {key: float(np.mean([row[key] for row in per_trace])) for key in ("qoe_sum", "rebuffer_s", "bitrate_kbps")}
    mean["qoe_per_chunk"] = mean["qoe_sum"] / n_steps
    settings = {"policy": name, "video": video.name, "mode": mode, "qoe": qoe, "as_committed": as_committed,
                "n_traces": n_traces, "chunks_scored": n_steps}
    return {"per_trace": per_trace, "mean": mean, "settings": settings}
