"""``AbrVectorEnv``: N players as one native gymnasium ``VectorEnv`` (one C call per step).

Autoreset is same-step (``metadata["autoreset_mode"] = AutoresetMode.SAME_STEP``): when player
i finishes its video, the returned ``obs[i]`` is already the next episode's first observation
and, following gymnasium's convention for that mode,

* ``info["final_obs"]``: object array, the terminal observation where ``info["_final_obs"]``
  is True, None elsewhere;
* ``info["final_info"]``: dict of arrays of the terminal step's quantities, each key ``k`` with
  its mask ``final_info["_k"]``; ``info["_final_info"]`` is the same mask.

Both appear only in steps where some player finished. Every step's ``info`` also holds the raw
per-chunk quantities of every player (``INFO_KEYS`` -> array of shape [N], see
``simulator.envs.gym_env``), for finished players too: they describe the chunk just fetched,
i.e. the terminal one. Episodes are never truncated.

Seeding: player i's random stream is keyed by (seed, i), so ``reset(seed=s)`` with one int
reproduces exactly the players of any other ``AbrVectorEnv`` (of any size) and of
``AbrEnv(seed=s, player_index=i, trace_stride=num_envs)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from simulator.config import SimConfig
from simulator.envs.gym_env import INFO_KEYS, build_sim, observation_space
from simulator.envs.sources import DEFAULT_NETWORK, TracesLike, VideoLike


class AbrVectorEnv(VectorEnv):
    """``num_envs`` ABR players stepped together; arguments as ``AbrEnv``'s."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int, traces: TracesLike = DEFAULT_NETWORK, video: VideoLike = None,
                 config: SimConfig | None = None, mode: str | None = None, qoe: str | None = None,
                 seed: int = 0, backend: str = "c"):
        self.sim = build_sim(traces, video, config, mode, qoe, num_envs, seed, backend)
        self.num_envs = num_envs
        self.config, self.video, self.layout = self.sim.config, self.sim.video, self.sim.layout
        self.single_observation_space = observation_space(self.layout)
        self.single_action_space = spaces.Discrete(self.video.n_levels)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._no_truncation = np.zeros(num_envs, dtype=bool)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        """Start new episodes for all players, or those in ``options["reset_mask"]``.

        ``seed``: one int reseeds every player (stream i keyed by (seed, i)); a list gives each
        player its own seed (None leaves that player's stream running).
        """
        super().reset(seed=seed if isinstance(seed, (int, np.integer)) else None)
        mask = None
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], dtype=bool)
            if mask.shape != (self.num_envs,):
                raise ValueError(f"options['reset_mask'] must have shape ({self.num_envs},), got {mask.shape}")
        if isinstance(seed, (list, tuple)):
            if len(seed) != self.num_envs:
                raise ValueError(f"reset(seed=[...]) needs {self.num_envs} seeds, got {len(seed)}")
            for index, player_seed in enumerate(seed):
                if player_seed is not None and (mask is None or mask[index]):
                    self.sim.seed(player_seed, np.arange(self.num_envs) == index)
            seed = None
        self.sim.reset(mask=mask, seed=seed)
        return self.sim.obs.copy(), {}

    def step(self, actions):
        """Fetch one chunk per player at ladder levels ``actions`` (shape [N])."""
        out = self.sim.step(actions)
        terminated = out.done.astype(bool)
        info: dict[str, Any] = {name: getattr(out, name).copy() for name in INFO_KEYS}
        if terminated.any():
            final_obs = np.full(self.num_envs, None, dtype=object)
            for index in np.flatnonzero(terminated):
                final_obs[index] = out.final_obs[index].copy()
            final_info: dict[str, Any] = {}
            for name in INFO_KEYS:
                final_info[name] = np.where(terminated, info[name], 0).astype(info[name].dtype)
                final_info[f"_{name}"] = terminated
            info.update(final_obs=final_obs, _final_obs=terminated, final_info=final_info,
                        _final_info=terminated)
        return out.obs.copy(), out.reward.copy(), terminated, self._no_truncation.copy(), info

    def close_extras(self, **kwargs: Any) -> None:
        pass
