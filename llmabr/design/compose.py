"""A design as an SB3 PPO policy, through SB3's documented seams only.

* ``DesignFeaturesExtractor`` (a ``BaseFeaturesExtractor``): the measurement row -> the design's
  ``state`` -> its features concatenated in sorted name order.
* ``DesignNetwork`` (SB3's custom-network seam, the ``mlp_extractor``): splits that vector back
  into named features and runs the design's ``Trunk``: one for the actor and one for the critic
  (separate by default), or one shared.
* ``DesignPolicy`` (an ``ActorCriticPolicy`` overriding ``_build_mlp_extractor``): SB3 keeps the
  action and value heads, the distribution and the PPO loss.

    loaded = load_modules(design)            # executes design code: inside the cage only
    model = PPO(DesignPolicy, env, policy_kwargs=policy_kwargs(loaded, layout, design.shared_trunk))
"""

from __future__ import annotations

import gymnasium
import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from llmabr.design.loader import LoadedDesign
from simulator.layout import Layout


def split_fields(obs: torch.Tensor, layout: Layout) -> dict[str, torch.Tensor]:
    return {name: obs[:, offset:offset + size] for name, offset, size in layout.fields}


def feature_dims(loaded: LoadedDesign, layout: Layout) -> dict[str, int]:
    """Feature name -> width, from one call of the state function on a placeholder batch."""
    sample = torch.ones(2, layout.size)
    with torch.no_grad(), np.errstate(all="ignore"):  # only the shapes count: a 0/0 on this row is no news
        features = loaded.state_fn(split_fields(sample, layout))
    return {name: int(features[name].shape[1]) for name in sorted(features)}


class DesignFeaturesExtractor(BaseFeaturesExtractor):
    def __init__(self, observation_space: gymnasium.spaces.Box, state_fn, layout: Layout, dims: dict[str, int]):
        super().__init__(observation_space, features_dim=sum(dims.values()))
        self.state_fn, self.layout = state_fn, layout
        self.names = sorted(dims)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        features = self.state_fn(split_fields(observations, self.layout))
        return torch.cat([features[name] for name in self.names], dim=1)


AUTOCAST_DTYPES = {"float32": None, "bfloat16": torch.bfloat16}  # the names llmabr.train.config accepts


class DesignNetwork(nn.Module):
    """Actor and critic trunks over the named features (SB3's ``mlp_extractor`` contract).

    With ``trunk_dtype="bfloat16"`` every trunk pass runs under CPU autocast (matrix products and
    convolutions in bfloat16, about twice float32's speed on CPUs with AVX512-BF16) and returns
    float32 latents, so SB3's heads, distribution and loss, and the optimizer's weights, stay float32.
    """

    def __init__(self, trunk_cls, dims: dict[str, int], shared: bool = False, trunk_dtype: str = "float32"):
        super().__init__()
        if trunk_dtype not in AUTOCAST_DTYPES:
            raise ValueError(f"trunk_dtype must be one of {sorted(AUTOCAST_DTYPES)}, not {trunk_dtype!r}")
        self.autocast_dtype = AUTOCAST_DTYPES[trunk_dtype]
        self.names = sorted(dims)
        self.widths = [dims[name] for name in self.names]
        self.actor = trunk_cls(dict(dims))
        self.critic = self.actor if shared else trunk_cls(dict(dims))
        self.latent_dim_pi = int(self.actor.latent_dim)
        self.latent_dim_vf = int(self.critic.latent_dim)

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, torch.split(flat, self.widths, dim=1)))

    def forward(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.critic is self.actor:  # one pass: a shared trunk computed twice would cost the update double
            latent = self.forward_actor(flat)
            return latent, latent
        return self.forward_actor(flat), self.forward_critic(flat)

    def forward_actor(self, flat: torch.Tensor) -> torch.Tensor:
        return self._run(self.actor, flat)

    def forward_critic(self, flat: torch.Tensor) -> torch.Tensor:
        return self._run(self.critic, flat)

    def _run(self, trunk: nn.Module, flat: torch.Tensor) -> torch.Tensor:
        if self.autocast_dtype is None:
            return trunk(self.unflatten(flat))
        with torch.autocast("cpu", dtype=self.autocast_dtype):
            latent = trunk(self.unflatten(flat))
        return latent.float()


class DesignPolicy(ActorCriticPolicy):
    def __init__(self, observation_space, action_space, lr_schedule, trunk_cls=None, dims=None,
                 shared_trunk: bool = False, trunk_dtype: str = "float32", **kwargs):
        if trunk_cls is None or dims is None:
            raise ValueError("DesignPolicy needs trunk_cls and dims: build its kwargs with policy_kwargs()")
        self.trunk_cls, self.dims, self.shared_trunk = trunk_cls, dict(dims), shared_trunk
        self.trunk_dtype = trunk_dtype
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = DesignNetwork(self.trunk_cls, self.dims, self.shared_trunk, self.trunk_dtype)


def policy_kwargs(loaded: LoadedDesign, layout: Layout, shared_trunk: bool = False,
                  trunk_dtype: str = "float32") -> dict:
    """``policy_kwargs`` for ``PPO(DesignPolicy, env, policy_kwargs=...)``; ``trunk_dtype`` only for
    training (weights are float32 either way, so a checkpoint loads into a float32 policy)."""
    dims = feature_dims(loaded, layout)
    return {
        "features_extractor_class": DesignFeaturesExtractor,
        "features_extractor_kwargs": {"state_fn": loaded.state_fn, "layout": layout, "dims": dims},
        "trunk_cls": loaded.trunk_cls,
        "dims": dims,
        "shared_trunk": shared_trunk,
        "trunk_dtype": trunk_dtype,
    }


def count_parameters(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


class PolicyLogits(nn.Module):
    """obs [B, layout.size] -> per-level logits of a built ``DesignPolicy`` (for export)."""

    def __init__(self, policy: DesignPolicy):
        super().__init__()
        self.policy = policy

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        features = self.policy.extract_features(obs, self.policy.pi_features_extractor)
        return self.policy.action_net(self.policy.mlp_extractor.forward_actor(features))
