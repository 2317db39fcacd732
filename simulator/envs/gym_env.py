"""``AbrEnv``: one simulated video player as a gymnasium ``Env``.

An episode is one video played over one trace. ``reset`` starts it by fetching chunk 0 at
``config.default_level`` (Pensieve's startup chunk, not scored), so the first observation
already holds one valid history slot; every ``step(level)`` then fetches the next chunk at that
ladder level. The episode terminates after its last chunk, so it lasts
``config.chunks_per_episode(video.n_chunks) - 1`` steps (48 in default mode and 47 in pensieve
mode for a 49-chunk video); it is never truncated.

Observation: the measurement row of ``simulator.layout`` (float32, all fields >= 0).
Reward: (qoe_bitrate - qoe_rebuffer - qoe_smooth) x ``config.reward_scale``.
``info`` of a step: the raw quantities of the chunk just fetched (``INFO_KEYS``), Python
scalars: ``download_time_s`` (RTT included), ``rebuffer_s``, ``buffer_s`` (after the chunk and
any sleep), ``sleep_s``, ``chunk_bytes``, ``bitrate_kbps``, ``level``, ``chunk_index`` (0-based
in the video), ``trace_index``, and the unscaled QoE parts ``qoe_bitrate``, ``qoe_rebuffer``,
``qoe_smooth``. ``info`` of ``reset`` is empty.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from simulator.config import SimConfig
from simulator.core import F64_FIELDS, I32_FIELDS, StepOutput, VecSim
from simulator.envs.sources import DEFAULT_NETWORK, TracesLike, VideoLike, resolve, resolve_config
from simulator.layout import Layout

# Everything a step reports besides the reward (which is the step's return value).
INFO_KEYS: tuple[str, ...] = tuple(name for name in F64_FIELDS if name != "reward") + I32_FIELDS


def observation_space(layout: Layout) -> spaces.Box:
    """The measurement row: float32, every field non-negative (sizes, times, rates, counts, 0/1)."""
    return spaces.Box(low=0.0, high=np.inf, shape=(layout.size,), dtype=np.float32)


def build_sim(traces: TracesLike, video: VideoLike, config: SimConfig | None, mode: str | None,
              qoe: str | None, num_envs: int, seed: int, backend: str = "c", player_offset: int = 0,
              trace_stride: int | None = None) -> VecSim:
    """A ``VecSim`` from user-level arguments (see ``simulator.envs.sources``)."""
    trace_list, profile = resolve(traces, video)
    return VecSim(trace_list, profile, num_envs, resolve_config(config, mode, qoe), seed=seed,
                  backend=backend, player_offset=player_offset, trace_stride=trace_stride)


class AbrEnv(gym.Env):
    """One ABR player over ``traces`` and ``video``.

    ``traces``: list of ``Trace``, ``TraceSet``, network type name (synthetic set) or path;
    ``video``: ``VideoProfile``, profile name or path, or None for the network type's default.
    ``config`` (default ``SimConfig()``, the training protocol) with ``mode`` / ``qoe``
    overriding its fields. ``seed`` seeds the player's random stream at construction;
    ``reset(seed=s)`` reseeds it. ``player_index`` / ``trace_stride``: this env behaves exactly
    like player ``player_index`` of an ``AbrVectorEnv`` of ``trace_stride`` players under the
    same seed (its stream is keyed by (seed, player_index); in sequential trace order it plays
    traces player_index, player_index + stride, ...).
    """

    metadata = {"render_modes": []}

    def __init__(self, traces: TracesLike = DEFAULT_NETWORK, video: VideoLike = None,
                 config: SimConfig | None = None, mode: str | None = None, qoe: str | None = None,
                 seed: int = 0, player_index: int = 0, trace_stride: int = 1, backend: str = "c"):
        if player_index < 0 or trace_stride < 1:
            raise ValueError(f"need player_index >= 0 and trace_stride >= 1, got {player_index}, {trace_stride}")
        self.sim = build_sim(traces, video, config, mode, qoe, 1, seed, backend, player_index, trace_stride)
        self.config, self.video, self.layout = self.sim.config, self.sim.video, self.sim.layout
        self.observation_space = observation_space(self.layout)
        self.action_space = spaces.Discrete(self.video.n_levels)
        # True after a terminal step: the core has already started the next episode (same-step
        # reset), so the next reset() without a seed hands that episode out instead of
        # discarding it. This keeps AbrEnv's episodes identical to AbrVectorEnv's players'.
        self._next_episode_ready = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode; ``seed`` reseeds this player's stream (trace pick, start row, noise)."""
        super().reset(seed=seed)
        if seed is not None:
            self.sim.reset(seed=seed)
        elif not self._next_episode_ready:
            self.sim.reset()
        self._next_episode_ready = False
        return self.sim.obs[0].copy(), {}

    def step(self, action):
        """Fetch the next chunk at ladder level ``action``."""
        out = self.sim.step(np.array([action]))
        terminated = bool(out.done[0])
        if terminated:
            obs = out.final_obs[0].copy()
            self._next_episode_ready = True
        else:
            obs = out.obs[0].copy()
            self._next_episode_ready = False
        return obs, float(out.reward[0]), terminated, False, step_info(out, 0)

    def close(self) -> None:
        pass


def step_info(out: StepOutput, index: int) -> dict[str, float | int]:
    """The ``INFO_KEYS`` quantities of player ``index`` as Python scalars."""
    return {name: getattr(out, name)[index].item() for name in INFO_KEYS}
