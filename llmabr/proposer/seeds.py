"""The seed halves a one-sided proposal is completed with.

A state proposal is trained with the seed *network*: Pensieve's trunk generalized to any feature
dict (a Conv1d branch per series, a Linear per short feature; on Pensieve's own features it is
exactly designs/pensieve's trunk). A network proposal is trained with the seed *state*:
designs/pensieve/state.py.
"""

from __future__ import annotations

from functools import lru_cache

from llmabr.proposer.net_blocks import SEED_NET, net_source
from simulator.paths import REPO_ROOT

SEED_DESIGN = REPO_ROOT / "designs" / "pensieve"


@lru_cache(maxsize=1)
def seed_state_source() -> str:
    return (SEED_DESIGN / "state.py").read_text()


@lru_cache(maxsize=1)
def seed_net_source() -> str:
    return net_source(SEED_NET, title="Seed trunk (Pensieve's, for any features)")
