"""Train one design with SB3 PPO on the vectorized simulator. EXECUTES DESIGN CODE: this runs only
in the cage, started by ``llmabr.train.caged.train_caged`` (the trusted side), never in the orchestrator.

Read top to bottom: the data the cage was given (training traces and the video as files in its
work folder: no validation or test traces exist here), the environment (N simulated players in
one C call), the PPO model (the design as ``DesignPolicy``), callbacks (entropy decay, checkpoints
handed to the trusted scorer, progress, NaN guard), then the final weights.

This process reports nothing about its own quality that anybody uses: at every checkpoint it sends
its weights over ``channel`` (``llmabr.train.channel``) and the trusted side scores them on the
validation traces in its own process, keeps the best, and says whether to go on.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import VecMonitor

from llmabr.design.compose import DesignPolicy, PolicyLogits, policy_kwargs
from llmabr.design.format import load_design
from llmabr.design.loader import load_modules
from llmabr.train.config import TrainConfig, parse_knots
from llmabr.train.data import load_traces
from llmabr.train.warm_start import warm_start
from simulator.baselines.protocol import run_test_protocol
from simulator.config import SimConfig
from simulator.envs import AbrSB3VecEnv
from simulator.video import load_profile_json


class GreedyPolicy:
    """A trained policy as a deterministic batched baseline (argmax of the logits)."""

    def __init__(self, policy):
        self.logits = PolicyLogits(policy)

    def reset(self, mask=None) -> None:
        pass

    def act(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.logits(torch.as_tensor(obs)).argmax(dim=1).numpy().astype(np.int32)


class EntropyDecay(BaseCallback):
    """Entropy coefficient from ``start`` to ``end``, linear over the first ``fraction`` of the budget,
    or over ``max_steps`` when that is shorter (so a long run learns as fast early on as a short one);
    or piecewise linear through ``knots`` [(steps, coef), ...] when given, held after the last knot."""

    def __init__(self, start: float, end: float, fraction: float, total_steps: int, max_steps: int = 0,
                 knots: list[tuple[int, float]] | None = None):
        super().__init__()
        horizon = fraction * total_steps if max_steps <= 0 else min(fraction * total_steps, max_steps)
        self.knots = knots or [(0, start), (max(1, int(horizon)), end)]

    def coef_at(self, steps: int) -> float:
        (step_a, coef_a) = self.knots[0]
        for step_b, coef_b in self.knots[1:]:
            if steps < step_b:
                return coef_a + (coef_b - coef_a) * (steps - step_a) / (step_b - step_a)
            step_a, coef_a = step_b, coef_b
        return coef_a

    def _on_rollout_start(self) -> None:
        self.model.ent_coef = self.coef_at(self.num_timesteps)
        self.logger.record("train/ent_coef", self.model.ent_coef)

    def _on_step(self) -> bool:
        return True


class Checkpoints(BaseCallback):
    """Every ``every_steps`` (at a rollout's end, before its update): the weights go to the trusted
    scorer, which answers whether to go on (S2 may stop the run)."""

    def __init__(self, channel, every_steps: int):
        super().__init__()
        self.channel, self.every_steps = channel, every_steps
        self.next_at, self.stopped = 0, False

    def _on_rollout_end(self) -> None:
        if self.num_timesteps >= self.next_at and not self.stopped:
            self.stopped = not self.channel.checkpoint(self.model.policy, self.num_timesteps)
            self.next_at = self.num_timesteps + self.every_steps

    def _on_step(self) -> bool:
        return not self.stopped


class LocalValidation(BaseCallback):
    """Validation computed in THIS (design-executing) process, the pre-trust way: kept only so that
    ``llmabr bench train`` can time it beside trusted scoring. Its numbers go nowhere."""

    def __init__(self, val_traces, video, config: TrainConfig):
        super().__init__()
        self.val_traces, self.video, self.config, self.next_at = val_traces, video, config, 0

    def _on_rollout_end(self) -> None:
        if self.num_timesteps >= self.next_at:
            self.model.policy.set_training_mode(False)
            run_test_protocol(GreedyPolicy(self.model.policy), self.val_traces, self.video, mode=self.config.mode,
                              qoe=self.config.qoe)
            self.next_at = self.num_timesteps + self.config.eval_every_steps

    def _on_step(self) -> bool:
        return True


class Progress(BaseCallback):
    """Steps, steps/s and the recent training QoE per chunk (self-reported: for progress bars only)."""

    def __init__(self, channel, total_steps: int, qoe_scale: float, chunks: int):
        super().__init__()
        self.channel, self.total_steps, self.qoe_scale, self.chunks = channel, total_steps, qoe_scale, chunks
        self.started, self.last_sent = time.perf_counter(), 0.0

    def _on_step(self) -> bool:
        now = time.perf_counter()
        if now - self.last_sent > 2.0:
            self.last_sent = now
            episodes = [info["r"] for info in self.model.ep_info_buffer]
            recent = float(np.mean(episodes)) / self.qoe_scale / self.chunks if episodes else None
            self.channel.progress({"steps": self.num_timesteps, "total_steps": self.total_steps,
                                   "steps_per_s": self.num_timesteps / max(now - self.started, 1e-9),
                                   "recent_qoe_per_chunk": recent})
        return True


class NanGuard(BaseCallback):
    """Stops training when a parameter stops being finite (the run is then reported as failed)."""

    def __init__(self):
        super().__init__()
        self.tripped = False

    def _on_rollout_end(self) -> None:
        if not all(bool(torch.isfinite(p).all()) for p in self.model.policy.parameters()):
            self.tripped = True

    def _on_step(self) -> bool:
        return not self.tripped


def train(work_dir: Path, config: TrainConfig, channel, reward_scale: float, local_val: str | None = None) -> None:
    """Train the design in ``work_dir/design`` on ``work_dir/train_traces.npz`` and ``work_dir/video.json``.

    Checkpoints and the final weights go to ``channel``; TensorBoard logs to ``work_dir/tb``.
    ``local_val`` (a traces .npz; benchmark only) scores validation in this process instead.
    """
    torch.set_num_threads(1)
    design = load_design(work_dir / "design")
    loaded = load_modules(design)
    train_traces, video = load_traces(work_dir / "train_traces.npz"), load_profile_json(work_dir / "video.json")
    sim_config = SimConfig(mode=config.mode, qoe=config.qoe, reward_scale=reward_scale)
    env = VecMonitor(AbrSB3VecEnv(config.ppo.n_envs, train_traces, video, sim_config, seed=config.seed, info_keys=()))
    chunks_scored = sim_config.chunks_per_episode(video.n_chunks) - 1

    ppo = config.ppo
    model = PPO(
        DesignPolicy, env, learning_rate=ppo.learning_rate, n_steps=ppo.n_steps, batch_size=ppo.batch_size,
        n_epochs=ppo.n_epochs, gamma=ppo.gamma, gae_lambda=ppo.gae_lambda, clip_range=ppo.clip_range,
        normalize_advantage=ppo.normalize_advantage, ent_coef=ppo.ent_start, vf_coef=ppo.vf_coef,
        max_grad_norm=ppo.max_grad_norm, tensorboard_log=str(work_dir / "tb"), seed=config.seed, device="cpu",
        policy_kwargs=policy_kwargs(loaded, env.venv.layout, design.shared_trunk, ppo.trunk_dtype), verbose=0,
    )
    guard = NanGuard()
    if local_val is None:
        checking = Checkpoints(channel, config.eval_every_steps)
    else:
        checking = LocalValidation(load_traces(work_dir / local_val), video, config)
    callbacks = CallbackList([
        EntropyDecay(ppo.ent_start, ppo.ent_end, ppo.ent_decay_fraction, config.total_steps, ppo.ent_decay_steps,
                     parse_knots(ppo.ent_schedule) if ppo.ent_schedule else None),
        checking, Progress(channel, config.total_steps, reward_scale, chunks_scored), guard,
    ])
    if config.warm_start != "none":  # the first checkpoint (before any PPO update) scores the imitation itself
        def said(state: dict) -> None:
            channel.progress({"steps": 0, "total_steps": config.total_steps, "steps_per_s": 0.0,
                              "recent_qoe_per_chunk": None, "phase": f"imitating {config.warm_start}: "
                              f"round {state['round']}/{state['rounds']}, agreement {state['agreement']:.2f}"})

        warm_start(model.policy, env.venv, train_traces, video, config.mode, config.qoe, config.warm_start,
                   config.imitation, ppo.gamma, config.seed, progress=said)
    model.learn(config.total_steps, callback=callbacks, tb_log_name="ppo")
    if guard.tripped:
        channel.failed("training diverged: a policy parameter became NaN or inf", int(model.num_timesteps))
    else:
        channel.final(model.policy, int(model.num_timesteps))
