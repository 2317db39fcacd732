"""The embedded offline proposer: real design source from building blocks, no LLM involved.

It is the default when no LLM endpoint is configured, and every design and log line it makes
says so (``origin = "offline"``). A state design changes the state genome and keeps the seed
network (Pensieve's trunk generalized to any features); a network design keeps the seed state
(Pensieve's) and changes the network genome. With parents (archive designs that carry a
``genome.json``) it mutates one parent or recombines two; without, it mutates the seed design
one to three times. Seeded: the same seed and parents give the same designs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random

from llmabr.proposer.net_blocks import ACTIVATIONS, SEED_NET, TYPES, WIDTHS, net_source
from llmabr.proposer.proposal import Proposal
from llmabr.proposer.state_blocks import BLOCKS, HISTORIES, SEED_STATE, THROUGHPUT_SCALES, state_source

LABEL = "offline proposer (building blocks, no LLM)"
THROUGHPUT_BLOCKS = [name for name in BLOCKS if name.startswith("throughput") or name in ("predicted_download", "buffer_margin")]


def mutate_state(genome: dict, rng: random.Random) -> dict:
    out = copy.deepcopy(genome)
    move = rng.choice(["add", "add", "remove", "swap", "history", "scale"])
    absent = [name for name in BLOCKS if name not in out["features"]]
    if move == "add" and absent:
        out["features"].append(rng.choice(absent))
    elif move == "remove" and len(out["features"]) > 3:
        out["features"].remove(rng.choice(out["features"]))
    elif move == "swap" and absent:
        out["features"][rng.randrange(len(out["features"]))] = rng.choice(absent)
    elif move == "history":
        out["history"] = rng.choice([h for h in HISTORIES if h != out["history"]])
    else:
        out["throughput_scale"] = rng.choice([s for s in THROUGHPUT_SCALES if s != out["throughput_scale"]])
    # a state without any throughput signal cannot learn ABR; keep at least one
    if not any(name in THROUGHPUT_BLOCKS for name in out["features"]):
        out["features"].append(rng.choice(THROUGHPUT_BLOCKS))
    return out


def mutate_net(genome: dict, rng: random.Random) -> dict:
    out = dict(genome)
    key = rng.choice(["type", "type", "width", "activation", "depth", "layernorm", "shared_trunk"])
    if key == "type":
        out["type"] = rng.choice([t for t in TYPES if t != out["type"]])
    elif key == "width":
        out["width"] = rng.choice([w for w in WIDTHS if w != out["width"]])
    elif key == "activation":
        out["activation"] = rng.choice([a for a in ACTIVATIONS if a != out["activation"]])
    elif key == "depth":
        out["depth"] = rng.choice([d for d in (1, 2, 3) if d != out["depth"]])
    else:
        out[key] = not out[key]
    if out["type"] == "branches" and out["width"] == 256:  # a Conv1d branch per series at 256 is needlessly big
        out["width"] = 128
    return out


def recombine_state(a: dict, b: dict, rng: random.Random) -> dict:
    """Each feature of either parent kept with probability 0.6; history and scale from one parent."""
    pool = list(dict.fromkeys(a["features"] + b["features"]))
    keep = [name for name in pool if rng.random() < 0.6] or pool[:3]
    if not any(name in THROUGHPUT_BLOCKS for name in keep):
        keep.append("throughput")
    return {"history": rng.choice([a["history"], b["history"]]),
            "throughput_scale": rng.choice([a["throughput_scale"], b["throughput_scale"]]), "features": keep}


def recombine_net(a: dict, b: dict, rng: random.Random) -> dict:
    return {key: rng.choice([a[key], b[key]]) for key in SEED_NET}


def genome_hash(genome: dict) -> str:
    return hashlib.sha256(json.dumps(genome, sort_keys=True).encode()).hexdigest()[:10]


class OfflineProposer:
    """``propose(kind, n, parents)`` -> ``n`` distinct proposals of kind "state" or "network"."""

    label = LABEL

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)

    def _child(self, kind: str, parents: list[dict]) -> tuple[dict, str, str | None]:
        rng = self.rng
        key = "state" if kind == "state" else "net"
        pool = [p for p in parents if key in p.get("genome", {})]
        if len(pool) >= 2 and rng.random() < 0.3:
            a, b = rng.sample(pool, 2)
            combine = recombine_state if kind == "state" else recombine_net
            return combine(a["genome"][key], b["genome"][key], rng), "recombine", f"{a['name']}+{b['name']}"
        if pool:
            parent = rng.choice(pool)
            base, how, parent_name = parent["genome"][key], "mutate", parent["name"]
        else:
            base, how, parent_name = (SEED_STATE if kind == "state" else SEED_NET), "mutate seed", "pensieve"
        mutate = mutate_state if kind == "state" else mutate_net
        genome = base
        for _ in range(rng.choice([1, 1, 2, 3])):
            genome = mutate(genome, rng)
        return genome, how, parent_name

    def propose(self, kind: str, n: int, parents: list[dict] = (), seen: set[str] = ()) -> list[Proposal]:
        """``parents``: dicts with "name" and "genome" ({"state": ..., "net": ...}); ``seen``: genome hashes to skip."""
        if kind not in ("state", "network"):
            raise ValueError(f"kind must be 'state' or 'network', got {kind!r}")
        seen = set(seen) | {genome_hash({"state": SEED_STATE, "net": SEED_NET})}
        out, attempts = [], 0
        while len(out) < n and attempts < 50 * n:
            attempts += 1
            genome, how, parent = self._child(kind, list(parents))
            full = {"state": genome, "net": SEED_NET} if kind == "state" else {"state": SEED_STATE, "net": genome}
            digest = genome_hash(full)
            if digest in seen:
                continue
            seen.add(digest)
            name = f"offline-{kind}-{digest}"
            out.append(Proposal(
                name=name, kind=kind, origin="offline", parent=parent,
                state_source=state_source(full["state"], title=f"State of {name}"),
                net_source=net_source(full["net"], title=f"Trunk of {name}"),
                shared_trunk=bool(full["net"]["shared_trunk"]), genome=full,
                notes=f"{LABEL}: {how} of {parent}"))
        return out

