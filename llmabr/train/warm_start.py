"""Imitation warm start (Comyco, SABR): before PPO, the design's own policy imitates an expert.

EXECUTES DESIGN CODE: runs inside the caged trainer (``llmabr.train.trainer``), on the training
traces only. Nothing it reports decides anything: the trusted side scores the checkpoints PPO
sends afterwards, the first of them before any PPO update, i.e. the imitated policy itself.

Experts (``train.warm_start``):

- ``robustmpc``: DAgger (Ross et al., 2011). Round 0 plays RobustMPC in the training simulator
  (noise, random starts) and records (row, expert level); every later round plays the LEARNER
  (greedy) while RobustMPC, run alongside on the same rows, labels every row the learner visits.
  After each round the policy is fitted (cross-entropy on the design's logits) to all rows so far.
- ``optimal``: the offline optimum's level sequences (dynamic programming with the trace's future
  known, ``simulator.baselines.optimal``) on up to ``imitation.optimal_traces`` training traces,
  replayed through the test protocol from ``imitation.optimal_starts`` start rows per trace; the
  rows it visits, labelled with its levels, are fitted the same way. No relabelling: the DP
  plans a whole session from its start, not from a state a learner reached.

Then the critic is fitted to the discounted returns of the imitated policy's own episodes (the
actor frozen), so PPO's first advantages are not noise that would undo the imitation.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from llmabr.design.compose import PolicyLogits
from llmabr.train.config import WARM_STARTS, ImitationConfig
from simulator.baselines import make_baseline
from simulator.baselines.optimal import FixedLevels, optimal_levels
from simulator.baselines.protocol import run_test_protocol, sorted_traces
from simulator.traces import Trace

def greedy_levels(policy, obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return PolicyLogits(policy)(torch.as_tensor(obs)).argmax(dim=1).numpy().astype(np.int32)


def _actor_parameters(policy) -> list[nn.Parameter]:
    critic_only = {id(p) for p in policy.value_net.parameters()}
    return [p for p in policy.parameters() if id(p) not in critic_only]


def _critic_parameters(policy) -> list[nn.Parameter]:
    """The value head, plus the critic trunk when it is not the actor's (a shared trunk stays frozen)."""
    actor = {id(p) for p in policy.mlp_extractor.actor.parameters()}
    critic = [p for p in policy.mlp_extractor.critic.parameters() if id(p) not in actor]
    return list(policy.value_net.parameters()) + critic


class Dataset:
    """Rows and expert labels, aggregated over rounds."""

    def __init__(self):
        self.rows: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []

    def add(self, rows: np.ndarray, labels: np.ndarray) -> None:
        self.rows.append(np.asarray(rows, dtype=np.float32))
        self.labels.append(np.asarray(labels, dtype=np.int64))

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.as_tensor(np.concatenate(self.rows)), torch.as_tensor(np.concatenate(self.labels))


def _minimize(policy, parameters, loss_of, n_rows: int, epochs: float, config: ImitationConfig,
              generator: torch.Generator) -> float:
    """``epochs x n_rows / batch`` Adam steps of ``loss_of(batch indices)``; the mean of the last 20 losses."""
    optimizer = torch.optim.Adam(parameters, lr=config.learning_rate)
    policy.set_training_mode(True)
    losses = []
    for _ in range(max(1, math.ceil(epochs * n_rows / config.batch_size))):
        loss = loss_of(torch.randint(n_rows, (config.batch_size,), generator=generator))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    policy.set_training_mode(False)
    return float(np.mean(losses[-20:]))


def fit_actor(policy, data: Dataset, n_new: int, config: ImitationConfig, generator: torch.Generator) -> float:
    """Cross-entropy on the design's logits: ``epochs x n_new / batch`` minibatches drawn from every row so far."""
    rows, labels = data.tensors()
    logits_of = PolicyLogits(policy)
    return _minimize(policy, _actor_parameters(policy),
                     lambda batch: nn.functional.cross_entropy(logits_of(rows[batch]), labels[batch]),
                     len(rows), config.epochs * n_new / len(rows), config, generator)


def fit_critic(policy, rows: np.ndarray, returns: np.ndarray, config: ImitationConfig,
               generator: torch.Generator) -> float:
    """The critic (actor frozen) regressed on discounted returns of the imitated policy's episodes."""
    if len(rows) == 0 or config.value_epochs == 0:
        return float("nan")
    rows_t, returns_t = torch.as_tensor(rows), torch.as_tensor(returns, dtype=torch.float32)
    return _minimize(policy, _critic_parameters(policy),
                     lambda batch: nn.functional.mse_loss(policy.predict_values(rows_t[batch]).flatten(),
                                                          returns_t[batch]),
                     len(rows), config.value_epochs, config, generator)


def play(env, n_episodes: int, choose, on_step=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every player plays ``n_episodes`` whole episodes from a reset; ``choose(obs) -> levels``.

    Returns (rows [T, N, D], rewards [T, N], dones [T, N]); ``on_step(done)`` after every step.
    """
    obs = env.reset()
    finished = np.zeros(env.num_envs, dtype=np.int64)
    rows, rewards, dones = [], [], []
    while finished.min() < n_episodes:
        levels = choose(obs)
        rows.append(obs)
        obs, reward, done, _ = env.step(levels)
        rewards.append(reward)
        dones.append(done)
        finished += done
        if on_step is not None:
            on_step(done)
    return np.stack(rows), np.stack(rewards), np.stack(dones)


def discounted_returns(rewards: np.ndarray, dones: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo returns [T, N] (episodes end at ``done``: SB3's PPO bootstraps nothing there) and
    which entries belong to an episode that finished inside the rollout."""
    returns = np.zeros_like(rewards, dtype=np.float64)
    complete = np.zeros_like(dones, dtype=bool)
    running = np.zeros(rewards.shape[1])
    seen_end = np.zeros(rewards.shape[1], dtype=bool)
    for t in range(len(rewards) - 1, -1, -1):
        running = np.where(dones[t], 0.0, running) * gamma + rewards[t]
        seen_end |= dones[t].astype(bool)
        returns[t], complete[t] = running, seen_end
    return returns, complete


def _rotated(trace: Trace, start_row: int) -> Trace:
    """The trace as if it started at ``start_row`` (wrapping around, like the simulator does)."""
    if start_row <= 0:
        return trace
    time_s, bw = np.asarray(trace.time_s), np.asarray(trace.bw_mbps)
    step_s = float(np.median(np.diff(time_s))) if len(time_s) > 1 else 1.0
    times = np.concatenate([time_s[start_row:] - time_s[start_row],
                            time_s[:start_row] - time_s[0] + time_s[-1] - time_s[start_row] + step_s])
    return Trace(f"{trace.name}@{start_row}", times, np.concatenate([bw[start_row:], bw[:start_row]]))


class Recorder:
    """Wraps a policy played through ``run_test_protocol`` and keeps every row and level."""

    def __init__(self, policy):
        self.policy, self.name = policy, "recorder"
        self.rows: list[np.ndarray] = []
        self.levels: list[np.ndarray] = []

    def reset(self, mask=None) -> None:
        self.policy.reset(mask)

    def act(self, obs: np.ndarray) -> np.ndarray:
        levels = self.policy.act(obs)
        self.rows.append(obs.copy())
        self.levels.append(np.asarray(levels).copy())
        return levels


def optimal_dataset(traces: list[Trace], video, mode: str, qoe: str, config: ImitationConfig,
                    rng: np.random.Generator) -> Dataset:
    chosen = [traces[i] for i in sorted(rng.permutation(len(traces))[:config.optimal_traces])]
    sessions = []
    for trace in chosen:
        starts = [0] + [int(s) for s in rng.integers(1, max(2, len(trace.time_s)), config.optimal_starts - 1)]
        sessions += [_rotated(trace, start) for start in starts]
    sessions = sorted_traces(sessions)  # the protocol plays traces in name order: the plans must follow it
    plans = np.stack([optimal_levels(trace, video, mode=mode, qoe=qoe, bound=False).levels for trace in sessions])
    recorder = Recorder(FixedLevels(plans))
    run_test_protocol(recorder, sessions, video, mode=mode, qoe=qoe)
    data = Dataset()
    data.add(np.concatenate(recorder.rows), np.concatenate(recorder.levels))
    return data


def warm_start(policy, env, traces: list[Trace], video, mode: str, qoe: str, expert: str,
               config: ImitationConfig, gamma: float, seed: int, progress=None) -> dict:
    """Fit ``policy`` (a ``DesignPolicy``) to ``expert`` on ``env`` (an ``AbrSB3VecEnv`` over the
    training traces); then its critic. Returns a report (rows, agreement per round, losses, CPU s)."""
    if expert not in WARM_STARTS or expert == "none":
        raise ValueError(f"warm_start expert must be one of {WARM_STARTS[1:]}, got {expert!r}")
    started = time.process_time()
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    report: dict = {"expert": expert, "rounds": []}
    policy.set_training_mode(False)
    if expert == "robustmpc":
        teacher = make_baseline("robustmpc", video, env.layout, qoe=qoe)
        data = Dataset()
        for round_index in range(config.rounds):
            labels: list[np.ndarray] = []

            def choose(obs, first=round_index == 0):
                label = teacher.act(obs)
                labels.append(label)
                return label if first else greedy_levels(policy, obs)

            teacher.reset(None)
            rows, _, _ = play(env, config.episodes_per_round, choose, on_step=teacher.reset)
            rows = rows.reshape(-1, rows.shape[-1])
            expert_levels = np.concatenate(labels)
            # agreement on rows the policy has not been fitted to yet (DAgger's on-policy measure)
            agreement = float(np.mean(greedy_levels(policy, rows) == expert_levels))
            data.add(rows, expert_levels)
            loss = fit_actor(policy, data, len(rows), config, generator)
            report["rounds"].append({"rows": len(rows), "agreement_before_fit": agreement, "loss": loss})
            if progress:
                progress({"phase": "warm start", "round": round_index + 1, "rounds": config.rounds,
                          "agreement": agreement})
    else:
        data = optimal_dataset(traces, video, mode, qoe, config, rng)
        rows, labels = data.tensors()
        loss = fit_actor(policy, data, len(rows), config, generator)
        agreement = float(np.mean(greedy_levels(policy, rows.numpy()) == labels.numpy()))
        report["rounds"].append({"rows": len(rows), "agreement_after_fit": agreement, "loss": loss})
    if config.value_episodes:
        rows, rewards, dones = play(env, config.value_episodes, lambda obs: greedy_levels(policy, obs))
        returns, complete = discounted_returns(rewards, dones, gamma)
        report["value_loss"] = fit_critic(policy, rows[complete], returns[complete].astype(np.float32), config,
                                          generator)
    report["cpu_s"] = time.process_time() - started
    return report
