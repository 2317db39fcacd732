"""Paper-style NADA designs pass ``llmabr check`` and train.

``tests/llmabr/nada_designs/`` holds state designs written for these tests in the style of the
LLM-ABR paper's published ones (not copied from them): throughput as
``video_chunk_size_bytes_list[-i] / delay_second_list[-i]`` over the last 8 entries with no
guard, scipy.stats.linregress trends, pandas ``Series(...).rolling(3).mean()``, np.std and
harmonic means, scipy.signal filters, normalized next chunk sizes, buffer trends.
``pensieve_nada`` is the seed design (designs/pensieve) written to the paper's prompt.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from llmabr.cli.main import main
from llmabr.design.compose import DesignPolicy, policy_kwargs, split_fields
from llmabr.design.format import load_design
from llmabr.design.loader import load_modules
from simulator.envs import AbrSB3VecEnv

FOLDERS = sorted(path for path in (Path(__file__).parent / "nada_designs").iterdir() if (path / "state.py").exists())
NETWORKS = ("broadband", "4g", "5g", "satellite", "3g")


def test_the_set_holds_at_least_eight_paper_style_designs():
    sources = {folder.name: (folder / "state.py").read_text() for folder in FOLDERS}
    assert len(FOLDERS) >= 9 and all(load_design(folder).kind == "nada" for folder in FOLDERS)
    unguarded = [name for name, text in sources.items() if "/ delay_second_list[-i]" in text]
    assert len(unguarded) >= 8, unguarded
    assert sum("linregress" in text for text in sources.values()) >= 1
    assert sum(".rolling(3" in text for text in sources.values()) >= 2
    assert sum("import pandas" in text for text in sources.values()) >= 3
    assert sum("scipy" in text for text in sources.values()) >= 3


@pytest.mark.parametrize("folder", FOLDERS, ids=[folder.name for folder in FOLDERS])
def test_paper_style_design_passes_llmabr_check(folder, capsys):
    status = main(["check", str(folder), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0, [(check["name"], check["reason"]) for check in report["checks"] if not check["passed"]]
    assert report["kind"] == "nada" and report["exportable"] is False
    assert report["checks"][-1]["name"] == "export" and "llmabr serve" in report["checks"][-1]["reason"]


@pytest.mark.parametrize("folder", FOLDERS, ids=[folder.name for folder in FOLDERS])
def test_paper_style_design_trains_with_ppo(folder):
    network = NETWORKS[FOLDERS.index(folder) % len(NETWORKS)]
    loaded = load_modules(load_design(folder))
    env = AbrSB3VecEnv(8, traces=network, info_keys=())
    model = PPO(DesignPolicy, env, n_steps=24, batch_size=96, n_epochs=2, seed=0, device="cpu",
                policy_kwargs=policy_kwargs(loaded, env.layout))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no division by zero anywhere (the history is all real)
        model.learn(384, log_interval=None)  # 2 rollouts of 8 players x 24 chunks: whole sessions, both ends
    assert model.num_timesteps == 384
    losses = {key: value for key, value in model.logger.name_to_value.items() if key.startswith("train/")}
    assert {"train/loss", "train/value_loss", "train/policy_gradient_loss"} <= set(losses)
    assert all(math.isfinite(value) for value in losses.values()), losses
    observations = torch.from_numpy(model.rollout_buffer.observations.reshape(-1, env.layout.size))
    features = loaded.state_fn(split_fields(observations, env.layout))
    assert all(bool(torch.isfinite(value).all()) for value in features.values())
    # the update read the rollout's rows from the cache: about one call per row, not one per epoch
    assert loaded.state_fn.calls <= 384 + 8 * 2 + 8 + 1  # + bootstrap rows, + terminal rows, + placeholder


def test_update_epochs_cost_no_extra_state_func_calls():
    loaded = load_modules(load_design(FOLDERS[0]))
    env = AbrSB3VecEnv(4, traces="broadband", info_keys=())
    model = PPO(DesignPolicy, env, n_steps=48, batch_size=48, n_epochs=4, seed=0, device="cpu",
                policy_kwargs=policy_kwargs(loaded, env.layout))
    model.learn(192, log_interval=None)
    rows = len(np.unique(model.rollout_buffer.observations.reshape(-1, env.layout.size), axis=0))
    assert loaded.state_fn.calls <= rows + 4 + 2  # + terminal rows, + the placeholder batch of feature_dims
