"""Train one design with SB3 PPO on the vectorized simulator. EXECUTES DESIGN CODE: run it in the
cage (``llmabr.train.caged``), never in the orchestrator.

Read top to bottom: data (traces split into train / validation by trace, never touching test
traces), the environment (N simulated players in one C call), the PPO model (the design as
``DesignPolicy``), callbacks (entropy decay, validation QoE with the best checkpoint, progress,
NaN guard), then the result files in the run folder:

    result.json      status ("ok" | "failed"), reason, steps, wall time, validation QoE
    curve.json       validation QoE per chunk against env steps, wall-clock and CPU seconds
    progress.json    rewritten every few seconds while training (for the caller's progress bar)
    policy_best.pt / policy_final.pt   state_dicts of the policy (with the design's source beside)
    checkpoints/     the policy at every validation point (``keep_checkpoints``)
    tb/              TensorBoard logs
"""

from __future__ import annotations

import json
import math
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
from llmabr.train.config import TrainConfig, parse_knots, to_dict
from llmabr.train.early_stop import EarlyStopRule
from simulator.baselines.protocol import run_test_protocol
from simulator.config import SimConfig
from simulator.envs import AbrSB3VecEnv
from simulator.traces import generate, load_trace_dir
from simulator.video import default_profile, load_profile


def split_traces(traces: list, val_fraction: float, val_max: int, seed: int = 0) -> tuple[list, list]:
    """Training and validation traces, split by trace (a fixed shuffle, independent of the run seed)."""
    if len(traces) < 2:
        raise ValueError("training needs at least 2 traces (some are held out for validation)")
    order = np.random.default_rng(seed).permutation(len(traces))
    n_val = min(val_max, max(1, int(round(val_fraction * len(traces)))))
    val = sorted((traces[i] for i in order[:n_val]), key=lambda t: t.name)
    train = [traces[i] for i in sorted(order[n_val:])]
    return train, val


def load_data(config: TrainConfig):
    if config.traces == "synthetic":
        traces = generate(config.network, config.synthetic_count, seed=0)
    else:
        traces = load_trace_dir(config.traces)
    video = load_profile(config.video) if config.video else default_profile(config.network)
    if config.val_traces:  # an explicit validation set (split by trace ID elsewhere: traces/splits)
        return traces, load_trace_dir(config.val_traces)[:config.val_max_traces], video
    train, val = split_traces(traces, config.val_fraction, config.val_max_traces)
    return train, val, video


class GreedyPolicy:
    """A trained policy as a deterministic batched baseline (argmax of the logits)."""

    def __init__(self, policy):
        self.logits = PolicyLogits(policy)

    def reset(self, mask=None) -> None:
        pass

    def act(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.logits(torch.as_tensor(obs)).argmax(dim=1).numpy().astype(np.int32)


def write_json(path: Path, data) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=float))
    tmp.replace(path)


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


class Validation(BaseCallback):
    """Every ``every_steps``: deterministic QoE per chunk on the validation traces; keeps the best weights."""

    def __init__(self, val_traces, video, config: TrainConfig, out_dir: Path, started: float, cpu_started: float = 0.0):
        super().__init__()
        self.val_traces, self.video, self.config, self.out_dir, self.started = val_traces, video, config, out_dir, started
        self.next_at, self.curve, self.best = 0, [], -math.inf
        self.cpu_started = cpu_started

    def evaluate(self) -> float:
        self.model.policy.set_training_mode(False)
        result = run_test_protocol(GreedyPolicy(self.model.policy), self.val_traces, self.video,
                                   mode=self.config.mode, qoe=self.config.qoe)
        return result["mean"]["qoe_per_chunk"]

    def record(self) -> None:
        qoe = self.evaluate()
        # cpu_s: this process's CPU time, i.e. training time on one core even when other work shares the cores
        self.curve.append({"steps": self.num_timesteps, "wall_s": time.perf_counter() - self.started,
                           "cpu_s": time.process_time() - self.cpu_started, "val_qoe": qoe})
        self.logger.record("val/qoe_per_chunk", qoe)
        if qoe > self.best:
            self.best = qoe
            torch.save(self.model.policy.state_dict(), self.out_dir / "policy_best.pt")
        if self.config.keep_checkpoints:  # for learning curves on test traces, scored after training
            (self.out_dir / "checkpoints").mkdir(exist_ok=True)
            torch.save(self.model.policy.state_dict(), self.out_dir / "checkpoints" / f"policy_{self.num_timesteps:09d}.pt")
        write_json(self.out_dir / "curve.json", self.curve)

    def _on_rollout_end(self) -> None:
        if self.num_timesteps >= self.next_at:
            self.record()
            self.next_at = self.num_timesteps + self.config.eval_every_steps

    def _on_step(self) -> bool:
        return True


class EarlyStop(BaseCallback):
    """S2: ends training when ``EarlyStopRule`` says the run is clearly behind the seed design."""

    def __init__(self, rule: EarlyStopRule, validation: Validation):
        super().__init__()
        self.rule, self.validation, self.checked, self.stopped = rule, validation, 0, False

    def _on_rollout_end(self) -> None:
        for point in self.validation.curve[self.checked:]:
            self.stopped = self.stopped or self.rule.should_stop(point["steps"], point["val_qoe"])
        self.checked = len(self.validation.curve)

    def _on_step(self) -> bool:
        return not self.stopped


class Progress(BaseCallback):
    """Writes progress.json (steps, steps/s, recent training QoE per chunk) every couple of seconds."""

    def __init__(self, out_dir: Path, total_steps: int, qoe_scale: float, chunks: int, validation: Validation):
        super().__init__()
        self.out_dir, self.total_steps, self.qoe_scale, self.chunks = out_dir, total_steps, qoe_scale, chunks
        self.validation, self.started, self.last_write = validation, time.perf_counter(), 0.0

    def _on_step(self) -> bool:
        now = time.perf_counter()
        if now - self.last_write > 2.0:
            self.last_write = now
            episodes = [info["r"] for info in self.model.ep_info_buffer]
            recent = float(np.mean(episodes)) / self.qoe_scale / self.chunks if episodes else None
            val = self.validation.curve[-1]["val_qoe"] if self.validation.curve else None
            write_json(self.out_dir / "progress.json", {
                "steps": self.num_timesteps, "total_steps": self.total_steps,
                "steps_per_s": self.num_timesteps / max(now - self.started, 1e-9),
                "recent_qoe_per_chunk": recent, "val_qoe_per_chunk": val})
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


def train(design_dir: Path, config: TrainConfig, out_dir: Path, reference_curve: list[dict] | None = None) -> dict:
    """Train ``design_dir`` under ``config``, writing everything into ``out_dir``; returns result.json's data."""
    started, cpu_started = time.perf_counter(), time.process_time()
    torch.set_num_threads(1)
    out_dir.mkdir(parents=True, exist_ok=True)
    design = load_design(design_dir)
    loaded = load_modules(design)

    train_traces, val_traces, video = load_data(config)
    reward_scale = config.reward_scale or 4.3 / (video.bitrates_kbps[-1] / 1000.0)
    sim_config = SimConfig(mode=config.mode, qoe=config.qoe, reward_scale=reward_scale)
    env = VecMonitor(AbrSB3VecEnv(config.ppo.n_envs, train_traces, video, sim_config, seed=config.seed, info_keys=()))
    chunks_scored = sim_config.chunks_per_episode(video.n_chunks) - 1

    ppo = config.ppo
    model = PPO(
        DesignPolicy, env, learning_rate=ppo.learning_rate, n_steps=ppo.n_steps, batch_size=ppo.batch_size,
        n_epochs=ppo.n_epochs, gamma=ppo.gamma, gae_lambda=ppo.gae_lambda, clip_range=ppo.clip_range,
        normalize_advantage=ppo.normalize_advantage, ent_coef=ppo.ent_start, vf_coef=ppo.vf_coef,
        max_grad_norm=ppo.max_grad_norm, tensorboard_log=str(out_dir / "tb"), seed=config.seed, device="cpu",
        policy_kwargs=policy_kwargs(loaded, env.venv.layout, design.shared_trunk, ppo.trunk_dtype), verbose=0,
    )
    validation = Validation(val_traces, video, config, out_dir, started, cpu_started)
    guard = NanGuard()
    callbacks = [
        EntropyDecay(ppo.ent_start, ppo.ent_end, ppo.ent_decay_fraction, config.total_steps, ppo.ent_decay_steps,
                     parse_knots(ppo.ent_schedule) if ppo.ent_schedule else None),
        validation, Progress(out_dir, config.total_steps, reward_scale, chunks_scored, validation), guard,
    ]
    early_stop = None
    if config.early_stop.enabled and reference_curve:
        early_stop = EarlyStop(EarlyStopRule(reference_curve, config.early_stop, config.total_steps), validation)
        callbacks.append(early_stop)
    callbacks = CallbackList(callbacks)
    model.learn(config.total_steps, callback=callbacks, tb_log_name="ppo")

    if guard.tripped:
        result = {"status": "failed", "reason": "training diverged: a policy parameter became NaN or inf"}
    else:
        validation.record()
        torch.save(model.policy.state_dict(), out_dir / "policy_final.pt")
        result = {"status": "ok", "reason": ""}
    result["stopped_early"] = bool(early_stop and early_stop.stopped)
    if result["stopped_early"]:
        result["reason"] = early_stop.rule.reason
    result.update({
        "design": design.name, "network": config.network, "video": video.name, "seed": config.seed,
        "steps": int(model.num_timesteps), "wall_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - validation.cpu_started,
        "steps_per_s": model.num_timesteps / (time.perf_counter() - started),
        "best_val_qoe": validation.best if validation.curve else None,
        "final_val_qoe": validation.curve[-1]["val_qoe"] if validation.curve else None,
        "val_traces": [t.name for t in val_traces], "train_traces": len(train_traces),
        "reward_scale": reward_scale, "config": to_dict(config),
    })
    write_json(out_dir / "result.json", result)
    return result
