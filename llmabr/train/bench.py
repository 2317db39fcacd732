"""Training throughput against SB3's own ceiling. EXECUTES DESIGN CODE: run it through the cage.

Two PPO runs with identical settings and the same design policy, side by side in one process:
(a) on the real environment (the C simulator behind the SB3 adapter, with VecMonitor, as in
training) and (b) on ``ZeroCostVecEnv``, a VecEnv of the same shapes that does no work at all.
(b) is what SB3 itself can reach with this network; (a)/(b) is the share of that ceiling we keep.
Rollout and update time are split with callbacks. With ``compare``, a second design runs (a) too,
in the same process: e.g. a NADA design next to the torch design it mirrors.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from llmabr.design.compose import DesignPolicy, policy_kwargs
from llmabr.design.format import load_design
from llmabr.design.loader import load_modules
from llmabr.train.config import TrainConfig
from simulator.config import SimConfig
from simulator.envs import AbrSB3VecEnv
from simulator.traces import generate
from simulator.video import default_profile


class ZeroCostVecEnv(VecEnv):
    """Same spaces as the ABR env; steps return one recorded observation, zero reward, an episode every 48."""

    def __init__(self, num_envs: int, observation_space, action_space, sample_obs: np.ndarray, episode_len: int = 48):
        super().__init__(num_envs, observation_space, action_space)
        self.obs = np.repeat(sample_obs[None, :], num_envs, axis=0).astype(np.float32)
        self.rewards = np.zeros(num_envs, dtype=np.float32)
        self.episode_len, self.t = episode_len, 0
        self.infos = [{} for _ in range(num_envs)]

    def reset(self):
        return self.obs.copy()

    def step_async(self, actions):
        pass

    def step_wait(self):
        self.t += 1
        done = self.t % self.episode_len == 0
        dones = np.full(self.num_envs, done)
        infos = [{"terminal_observation": self.obs[0]} for _ in range(self.num_envs)] if done else self.infos
        return self.obs.copy(), self.rewards.copy(), dones, infos

    def close(self):
        pass

    def get_attr(self, attr_name, indices=None):
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name, value, indices=None):
        setattr(self, attr_name, value)

    def env_method(self, method_name, *args, indices=None, **kwargs):
        return [getattr(self, method_name)(*args, **kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False for _ in self._get_indices(indices)]

    def seed(self, seed=None):
        return [seed] * self.num_envs


class Split(BaseCallback):
    def __init__(self):
        super().__init__()
        self.rollout_s, self._started = 0.0, 0.0

    def _on_rollout_start(self) -> None:
        self._started = time.perf_counter()

    def _on_rollout_end(self) -> None:
        self.rollout_s += time.perf_counter() - self._started

    def _on_step(self) -> bool:
        return True


def _run(env, loaded, design, layout, config: TrainConfig, steps: int) -> dict:
    ppo = config.ppo
    model = PPO(DesignPolicy, env, learning_rate=ppo.learning_rate, n_steps=ppo.n_steps, batch_size=ppo.batch_size,
                n_epochs=ppo.n_epochs, gamma=ppo.gamma, gae_lambda=ppo.gae_lambda, clip_range=ppo.clip_range,
                normalize_advantage=ppo.normalize_advantage, ent_coef=ppo.ent_start, max_grad_norm=ppo.max_grad_norm,
                seed=0, device="cpu", verbose=0,
                policy_kwargs=policy_kwargs(loaded, layout, design.shared_trunk, ppo.trunk_dtype))
    split = Split()
    start = time.perf_counter()
    model.learn(steps, callback=split)
    wall_s = time.perf_counter() - start
    return {"steps": model.num_timesteps, "wall_s": wall_s, "steps_per_s": model.num_timesteps / wall_s,
            "rollout_s": split.rollout_s, "update_s": wall_s - split.rollout_s}


def bench_train(design_dir, steps: int, config: TrainConfig = TrainConfig(), versus: TrainConfig | None = None,
                compare_dir=None) -> dict:
    """Env-steps/s of PPO with the design on the simulator ("abr") and on a zero-cost VecEnv of the
    same shapes ("sb3_ceiling"), same settings; with ``versus``, also the design on the simulator
    under those other settings ("abr_versus"); with ``compare_dir``, also that other design on the
    simulator under the same settings ("compare", ``compare_ratio`` = its rate / the design's), all
    in the same process, for side-by-side ratios."""
    torch.set_num_threads(1)
    design = load_design(design_dir)
    loaded = load_modules(design)
    video = default_profile(config.network)
    real = AbrSB3VecEnv(config.ppo.n_envs, generate(config.network, 40, seed=0), video, SimConfig(), info_keys=())
    sample = real.reset()[0]
    zero = ZeroCostVecEnv(config.ppo.n_envs, real.observation_space, real.action_space, sample)
    results = {}
    for name, env in (("sb3_ceiling", zero), ("abr", VecMonitor(real))):
        results[name] = _run(env, loaded, design, real.layout, config, steps)
    results["ratio"] = results["abr"]["steps_per_s"] / results["sb3_ceiling"]["steps_per_s"]
    if versus is not None:
        other = AbrSB3VecEnv(versus.ppo.n_envs, generate(versus.network, 40, seed=0), video, SimConfig(), info_keys=())
        results["abr_versus"] = _run(VecMonitor(other), loaded, design, other.layout, versus, steps)
        results["versus_ratio"] = results["abr"]["steps_per_s"] / results["abr_versus"]["steps_per_s"]
    if compare_dir is not None:
        other_design = load_design(compare_dir)
        other_loaded = load_modules(other_design)
        other = AbrSB3VecEnv(config.ppo.n_envs, generate(config.network, 40, seed=0), video, SimConfig(), info_keys=())
        results["compare"] = _run(VecMonitor(other), other_loaded, other_design, other.layout, config, steps)
        results["compare"].update(design=other_design.name, kind=other_design.kind)
        results["compare_ratio"] = results["compare"]["steps_per_s"] / results["abr"]["steps_per_s"]
    results["design"], results["kind"] = design.name, design.kind
    return results


def main(argv: list[str]) -> int:
    """Caged entry: ``python -I -m llmabr.train.bench DESIGN_DIR STEPS [VERSUS_OVERRIDES_JSON] [--compare DIR]``
    prints one JSON line."""
    import json

    from llmabr.train.config import load_config

    compare = None
    if "--compare" in argv:
        at = argv.index("--compare")
        compare, argv = argv[at + 1], argv[:at] + argv[at + 2:]
    versus = load_config(None, json.loads(argv[2])) if len(argv) > 2 else None
    print(json.dumps(bench_train(argv[0], int(argv[1]), versus=versus, compare_dir=compare)))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
