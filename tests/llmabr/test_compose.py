"""Designs as SB3 PPO policies: trains through SB3's seams, parameter counts, the compat quirk."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor

from llmabr.design.compose import DesignPolicy, PolicyLogits, count_parameters, policy_kwargs
from llmabr.design.format import load_design
from llmabr.design.loader import load_modules
from simulator.envs import AbrSB3VecEnv
from simulator.paths import REPO_ROOT

SEEDS = ["pensieve", "pensieve-compat"]


def build(seed: str, shared: bool | None = None, learn_steps: int = 0, trunk_dtype: str = "float32"):
    design = load_design(REPO_ROOT / "designs" / seed)
    loaded = load_modules(design)
    env = VecMonitor(AbrSB3VecEnv(4, traces="broadband", video="envivio-synth", info_keys=()))
    layout = env.venv.layout
    shared_trunk = design.shared_trunk if shared is None else shared
    model = PPO(DesignPolicy, env, n_steps=48, batch_size=96, n_epochs=1, seed=0, device="cpu",
                policy_kwargs=policy_kwargs(loaded, layout, shared_trunk, trunk_dtype))
    if learn_steps:
        model.learn(learn_steps)
    return model, env


@pytest.mark.parametrize("seed", SEEDS)
def test_seed_design_trains_with_sb3_ppo(seed):
    model, env = build(seed, learn_steps=400)
    assert model.num_timesteps >= 400
    assert len(env.episode_returns) >= 4  # whole episodes went through VecMonitor
    for parameter in model.policy.parameters():
        assert torch.isfinite(parameter).all()


def test_bfloat16_trunk_trains_and_its_weights_load_into_a_float32_policy():
    model, env = build("pensieve", learn_steps=400, trunk_dtype="bfloat16")
    obs = torch.as_tensor(env.reset())
    features = model.policy.extract_features(obs, model.policy.pi_features_extractor)
    with torch.no_grad():
        latent_bf16 = model.policy.mlp_extractor.forward_actor(features)
        plain, _ = build("pensieve")
        plain.policy.load_state_dict(model.policy.state_dict())  # same parameters, float32 passes
        latent_fp32 = plain.policy.mlp_extractor.forward_actor(features)
    assert latent_bf16.dtype == torch.float32 and all(p.dtype == torch.float32 for p in model.policy.parameters())
    assert not torch.equal(latent_bf16, latent_fp32)  # the autocast really ran in bfloat16 ...
    scale = latent_fp32.abs().max().item()
    assert (latent_bf16 - latent_fp32).abs().max().item() <= 0.05 * max(scale, 1.0)  # ... to bfloat16's precision


def test_unknown_trunk_dtype_is_a_clear_error():
    from llmabr.train.config import load_config

    with pytest.raises(ValueError, match="trunk_dtype must be float32 or bfloat16"):
        load_config(None, ["ppo.trunk_dtype=float16"])


def test_pensieve_parameter_count_and_shared_trunk():
    separate, _ = build("pensieve")
    shared, _ = build("pensieve", shared=True)
    n_separate, n_shared = count_parameters(separate.policy), count_parameters(shared.policy)
    assert 525_000 < n_separate < 535_000  # Pensieve's ~531k (two 2048->128 trunks and the heads)
    trunk = count_parameters(separate.policy.mlp_extractor.actor)
    assert n_separate - n_shared == trunk


def test_chunks_left_reaches_the_fixed_actor_but_not_the_compat_actor():
    deltas = {}
    for seed in SEEDS:
        model, env = build(seed)
        obs = torch.as_tensor(env.reset())
        layout = env.venv.layout
        changed = obs.clone()
        changed[:, layout.slice("chunks_left")] = 1.0
        logits = PolicyLogits(model.policy)
        with torch.no_grad():
            deltas[seed] = float((logits(obs) - logits(changed)).abs().max())
    assert deltas["pensieve"] > 1e-6
    assert deltas["pensieve-compat"] == 0.0  # Pensieve's quirk: the remaining-chunks input never arrives


def test_policy_logits_match_sb3_distribution():
    model, env = build("pensieve")
    obs = torch.as_tensor(env.reset())
    with torch.no_grad():
        logits = PolicyLogits(model.policy)(obs)
        probs = model.policy.get_distribution(obs).distribution.probs
    np.testing.assert_allclose(torch.softmax(logits, dim=1).numpy(), probs.numpy(), rtol=1e-5, atol=1e-6)
