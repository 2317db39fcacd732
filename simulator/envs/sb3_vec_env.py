"""``AbrSB3VecEnv``: N players as a stable-baselines3 ``VecEnv`` (no per-player Python env).

SB3's conventions: a finished player is reset in the same step; its ``infos[i]`` then holds
``"terminal_observation"`` (the terminal row) and ``"TimeLimit.truncated"`` (always False: an
episode ends when the video does). Every ``infos[i]`` holds the raw quantities of the chunk
just fetched, ``info_keys`` of ``simulator.envs.gym_env.INFO_KEYS`` (all by default; pass
``info_keys=()`` for the leanest step). Wrap it in ``VecMonitor`` for episode statistics.

There is one simulator behind all N players, so ``get_attr`` / ``env_method`` read or call
this object itself (the same value for every index), ``set_attr`` sets it for all players,
and ``seed(s)`` keys player i's stream by (s, i) at the next ``reset`` (SB3's default would
give each player seed s + i; this keeps players identical to ``AbrVectorEnv``'s).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices

from simulator.config import SimConfig
from simulator.envs.gym_env import INFO_KEYS, build_sim, observation_space
from simulator.envs.sources import DEFAULT_NETWORK, TracesLike, VideoLike


class AbrSB3VecEnv(VecEnv):
    """``num_envs`` ABR players for SB3; arguments as ``AbrEnv``'s, plus ``info_keys``."""

    render_mode = None

    def __init__(self, num_envs: int, traces: TracesLike = DEFAULT_NETWORK, video: VideoLike = None,
                 config: SimConfig | None = None, mode: str | None = None, qoe: str | None = None,
                 seed: int = 0, backend: str = "c", info_keys: Sequence[str] = INFO_KEYS):
        unknown = [key for key in info_keys if key not in INFO_KEYS]
        if unknown:
            raise ValueError(f"info_keys {unknown} are not step quantities; choose from {list(INFO_KEYS)}")
        self.sim = build_sim(traces, video, config, mode, qoe, num_envs, seed, backend)
        self.config, self.video, self.layout = self.sim.config, self.sim.video, self.sim.layout
        self.info_keys = tuple(info_keys)
        self._actions = np.zeros(num_envs, dtype=np.int32)
        self._pending_seed: int | None = None
        super().__init__(num_envs, observation_space(self.layout), spaces.Discrete(self.video.n_levels))

    # -- the VecEnv interface -----------------------------------------------------------------
    def reset(self) -> np.ndarray:
        """Start new episodes for every player (reseeding first if ``seed`` was called)."""
        self.sim.reset(seed=self._pending_seed)
        self._pending_seed = None
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return self.sim.obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        np.copyto(self._actions, np.asarray(actions).reshape(self.num_envs), casting="same_kind")

    def step_wait(self):
        out = self.sim.step(self._actions)
        dones = out.done.astype(bool)
        if self.info_keys:
            columns = [getattr(out, name).tolist() for name in self.info_keys]
            infos = [dict(zip(self.info_keys, row)) for row in zip(*columns)]
        else:
            infos = [{} for _ in range(self.num_envs)]
        for index in np.flatnonzero(dones):
            infos[index]["terminal_observation"] = out.final_obs[index].copy()
            infos[index]["TimeLimit.truncated"] = False
        return out.obs.copy(), out.reward.astype(np.float32), dones, infos

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Reseed every player at the next ``reset``: player i's stream is keyed by (seed, i)."""
        if seed is None:
            seed = int(np.random.randint(0, np.iinfo(np.uint32).max, dtype=np.uint32))
        self._pending_seed = int(seed)
        return [self._pending_seed] * self.num_envs

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if sorted(self._get_indices(indices)) != list(range(self.num_envs)):
            raise ValueError(f"AbrSB3VecEnv shares one simulator: set_attr({attr_name!r}) applies to all envs, "
                             "so indices must be None or cover every env")
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]
