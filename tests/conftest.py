"""Shared fixtures. Real data comes from ../shared when present; every test that needs it is
marked ``shared`` and skipped with a reason where it is absent."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from simulator.paths import shared_dir
from simulator.traces.model import Trace
from simulator.video import ENVIVIO_LADDER_KBPS, VideoProfile, load_pensieve_dir

SHARED = shared_dir()


def pytest_collection_modifyitems(config, items):
    if SHARED is not None:
        return
    skip = pytest.mark.skip(reason="needs the real traces/video in ../shared, which is absent here")
    for item in items:
        if "shared" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_path():
    if SHARED is None:
        pytest.skip("needs ../shared (real traces and Envivio sizes), absent here")
    return SHARED


def synthetic_video(n_chunks: int = 49, seed: int = 0) -> VideoProfile:
    """An Envivio-shaped ladder with random chunk sizes: needs no data files."""
    rng = np.random.default_rng(seed)
    complexity = rng.lognormal(0.0, 0.25, n_chunks)
    sizes = np.outer(np.array(ENVIVIO_LADDER_KBPS) * 1000 / 8 * 4.0, complexity).round()
    return VideoProfile("test-video", np.array(ENVIVIO_LADDER_KBPS), sizes, hd_reward=(1, 2, 3, 12, 15, 20))


@pytest.fixture(scope="session")
def envivio():
    """The real Envivio sizes when ../shared is present, else an Envivio-shaped synthetic video."""
    if SHARED is not None:
        return load_pensieve_dir(SHARED / "video" / "envivio", name="envivio")
    return synthetic_video()


def hand_traces() -> list[Trace]:
    """Small traces that exercise the corners: wrap-around, zero stretches, t0 != 0, fast links."""
    rng = np.random.default_rng(7)
    traces = []
    for index, (rows, step_s, t0_s, scale_mbps) in enumerate(
        [(12, 1.0, 0.0, 1.5), (40, 0.5, 3.0, 3.0), (300, 1.0, 1.0, 60.0), (25, 5.0, 0.0, 0.8)]
    ):
        bw_mbps = rng.gamma(2.0, scale_mbps / 2.0, rows)
        bw_mbps[rng.random(rows) < 0.1] = 0.0
        bw_mbps[1] = max(bw_mbps[1], 0.1)
        time_s = t0_s + step_s * np.arange(rows)
        traces.append(Trace(f"hand_{index}", time_s, bw_mbps, source=f"hand:{index}"))
    return traces


def wait_for(condition: Callable[[], object], timeout_s: float, interval_s: float = 0.05):
    """Poll ``condition()`` until it returns something truthy (returned) or ``timeout_s`` passes (then the
    last value, falsy, is returned for the caller's assertion). Synchronization by state, not by sleeping
    a fixed time: it returns as soon as the state is reached, and a slow machine only makes it wait longer."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval_s)


def ppo_learning(model, initial_state: dict) -> dict:
    """What one ``model.learn`` changed, measured on its last rollout (the batch of its last update), from
    the policy's parameters before (``initial_state``, a cloned ``state_dict``) and now:

    * ``losses``: the losses SB3 logged for the last update (``train/...``; left in the logger after learn);
    * ``value_mse``: (before, after) mean squared error of the value head against the rollout's returns;
    * ``advantage_gain``: mean over the rollout of advantage x (log pi_after - log pi_before) of the taken
      actions: > 0 when the policy moved towards the actions that did better than expected.
    """
    import torch

    buffer = model.rollout_buffer
    observations = torch.as_tensor(buffer.observations.reshape(-1, *buffer.obs_shape))
    actions = torch.as_tensor(buffer.actions.reshape(-1, buffer.action_dim)).long().flatten()
    returns = torch.as_tensor(buffer.returns.reshape(-1))
    advantages = torch.as_tensor(buffer.advantages.reshape(-1))
    final_state = {name: value.detach().clone() for name, value in model.policy.state_dict().items()}
    measured = {}
    for label, state in (("before", initial_state), ("after", final_state)):
        model.policy.load_state_dict(state)
        with torch.no_grad():
            values, log_prob, _ = model.policy.evaluate_actions(observations, actions)
        measured[label] = (float(((values.flatten() - returns) ** 2).mean()), log_prob)
    model.policy.load_state_dict(final_state)
    changed = any(not torch.equal(initial_state[name], final_state[name]) for name in final_state)
    return {"losses": {name: float(value) for name, value in model.logger.name_to_value.items()
                       if name.endswith("loss")},
            "value_mse": (measured["before"][0], measured["after"][0]),
            "advantage_gain": float((advantages * (measured["after"][1] - measured["before"][1])).mean()),
            "parameters_changed": changed,
            "parameters_finite": all(bool(torch.isfinite(value).all()) for value in final_state.values()
                                     if value.is_floating_point())}


def assert_ppo_learned(model, initial_state: dict) -> None:
    """Finite losses and parameters, and the last update did what PPO's update is for: the value head
    fits the returns better, the policy favours the actions with positive advantage."""
    import math

    learned = ppo_learning(model, initial_state)
    assert learned["losses"] and all(math.isfinite(value) for value in learned["losses"].values()), learned
    assert learned["parameters_changed"] and learned["parameters_finite"], learned
    before_mse, after_mse = learned["value_mse"]
    assert after_mse < before_mse, learned
    assert learned["advantage_gain"] > 0, learned
