"""Gymnasium ids of the ABR environments, registered on ``import simulator.envs``.

| id                               | mode     | protocol                                           |
|----------------------------------|----------|----------------------------------------------------|
| ``llmabr/Abr-v0``                | default  | training: random trace and start row, noise        |
| ``llmabr/AbrTest-v0``            | default  | test: traces in order, start row 1, no noise       |
| ``llmabr/AbrPensieve-v0``        | pensieve | training (Pensieve's ``sim/env.py``)               |
| ``llmabr/AbrPensieveTest-v0``    | pensieve | test (Pensieve's ``sim/fixed_env.py``)             |

Each id builds ``AbrEnv`` with ``gymnasium.make`` and ``AbrVectorEnv`` with
``gymnasium.make_vec(id, num_envs=N)`` (``vector_entry_point``). Keyword arguments go to the
constructors (``traces``, ``video``, ``config``, ``mode``, ``qoe``, ``seed``). The ids' mode is
passed as ``mode=`` and so survives a user's ``config=``; their protocol is passed as
``config=`` and is replaced by a user's ``config=``.
"""

from __future__ import annotations

import gymnasium

from simulator.config import test_config

NAMESPACE = "llmabr"

ENV_SPECS: dict[str, dict] = {
    f"{NAMESPACE}/Abr-v0": {},
    f"{NAMESPACE}/AbrTest-v0": {"config": test_config()},
    f"{NAMESPACE}/AbrPensieve-v0": {"mode": "pensieve"},
    f"{NAMESPACE}/AbrPensieveTest-v0": {"mode": "pensieve", "config": test_config()},
}


def register_envs() -> list[str]:
    """Register every id in ``ENV_SPECS`` not registered yet (safe to call repeatedly)."""
    added = []
    for env_id, kwargs in ENV_SPECS.items():
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id,
            entry_point="simulator.envs.gym_env:AbrEnv",
            vector_entry_point="simulator.envs.vector_env:AbrVectorEnv",
            kwargs=dict(kwargs),
        )
        added.append(env_id)
    return added
