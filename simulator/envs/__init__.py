"""The simulator as environments: gymnasium ``Env`` and ``VectorEnv``, and an SB3 ``VecEnv``.

Importing this package registers the gymnasium ids (``simulator.envs.registration``).
``AbrSB3VecEnv`` is imported on first use, so gymnasium users never load stable-baselines3.
"""

from simulator.envs.gym_env import INFO_KEYS, AbrEnv
from simulator.envs.registration import ENV_SPECS, register_envs
from simulator.envs.sources import NETWORK_TYPES, resolve_traces, resolve_video
from simulator.envs.vector_env import AbrVectorEnv

register_envs()

__all__ = ["AbrEnv", "AbrVectorEnv", "AbrSB3VecEnv", "INFO_KEYS", "ENV_SPECS", "NETWORK_TYPES",
           "register_envs", "resolve_traces", "resolve_video"]


def __getattr__(name: str):
    if name == "AbrSB3VecEnv":
        from simulator.envs.sb3_vec_env import AbrSB3VecEnv

        return AbrSB3VecEnv
    raise AttributeError(f"module 'simulator.envs' has no attribute {name!r}")
