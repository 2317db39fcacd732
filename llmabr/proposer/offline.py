"""The embedded offline proposer: real design source from building blocks, no LLM involved.

It is the default when no LLM endpoint is configured, and every design and log line it makes
says so (``origin = "offline"``). A state design changes the state genome and keeps the seed
network (Pensieve's trunk generalized to any features); a network design keeps the seed state
(Pensieve's) and changes the network genome. Seeded: the same seed, trace profile, parents and
failures give the same designs.

It conditions on two things:

- **The training traces** (``profile``: a ``TraceProfile``, llmabr.proposer.context). Every
  random choice of a mutation (which block to add, remove or swap in; which history length,
  throughput scale, trunk type and width; whether to add layer norm; which of these a mutation
  changes) is weighted by ``1 + sum(gain * signal)`` over the trace signals, with the gains
  declared next to the blocks (``state_blocks.AFFINITY``, ``HISTORY_TILT``, ``SCALE_AFFINITY``;
  ``net_blocks.TYPE_AFFINITY``, ``WIDTH_AFFINITY``, ``LAYERNORM_AFFINITY``). So variable
  throughput (4g, 5g) draws harmonic means, percentiles, spread, longer windows and temporal
  trunks (Conv1D, GRU, LSTM), steady throughput MLP trunks; time below the lowest rung draws
  stall-risk features (recent stalls, buffer trend, buffer margin); a ladder whose top rung is
  often out of reach (broadband, 3g) draws per-level costs (predicted download time, size
  ratios), switching features and wider trunks; throughput over orders of magnitude draws the
  log scale and layer norm. Nothing is forbidden, only made more or less likely; without a
  profile every choice is uniform (the proposer's behaviour before it had one).
- **The archive's results** (``parents``: dicts with "name", "kind", "genome" and "val_qoe";
  the seed design as kind "seed" without a genome). A child's parent is chosen by tournament
  selection: the best validation QoE among ``TOURNAMENT`` parents drawn at random (with
  replacement), so the best of n parents is picked with probability 1 - (1 - 1/n)^3 and the
  worst with (1/n)^3; with probability ``RECOMBINE`` a second parent, chosen the same way, is
  recombined with it. Parents without a score compete equally (uniform choice). Only parents of
  the proposal's kind (or the seed) are used: a network design's state is the seed's. Without
  parents the seed design is mutated. ``failures`` (genomes of designs rejected by a check,
  failed in training or stopped early in S2 for trailing the seed) are avoided: a child within
  ``NEAR_FAILURE`` moves of one is drawn again (up to half the attempts, then accepted).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random

from llmabr.proposer.context import TraceProfile
from llmabr.proposer.net_blocks import (ACTIVATIONS, LAYERNORM_AFFINITY, SEED_NET, TYPE_AFFINITY, TYPES, WIDTH_AFFINITY,
                                        WIDTHS, net_source)
from llmabr.proposer.proposal import Proposal
from llmabr.proposer.state_blocks import (AFFINITY, BLOCKS, HISTORIES, HISTORY_TILT, SCALE_AFFINITY, SEED_STATE,
                                          THROUGHPUT_SCALES, state_source)

LABEL = "offline proposer (building blocks, no LLM)"
THROUGHPUT_BLOCKS = [name for name in BLOCKS if name.startswith("throughput") or name in ("predicted_download", "buffer_margin")]
SEED_GENOME = {"state": SEED_STATE, "net": SEED_NET}
TOURNAMENT = 3  # parents drawn per selection; the best of them by validation QoE is the parent
RECOMBINE = 0.3  # chance that a child recombines two selected parents (when two are available)
NEAR_FAILURE = 1  # children this many moves or fewer from a failed genome are drawn again


class Bias:
    """Weights of every mutation choice, from a trace profile (all 1 without one)."""

    def __init__(self, profile: TraceProfile | None = None):
        signals = profile.signals() if profile is not None else {}

        def weight(affinity: dict[str, float]) -> float:
            return 1.0 + sum(gain * signals.get(signal, 0.0) for signal, gain in affinity.items())

        self.block = {name: weight(AFFINITY.get(name, {})) for name in BLOCKS}
        tilt = HISTORY_TILT * (signals["variability"] - 0.4) if signals else 0.0
        self.history = {length: math.exp(tilt * (length - 8) / 8) for length in HISTORIES}
        self.scale = {scale: weight(SCALE_AFFINITY.get(scale, {})) for scale in THROUGHPUT_SCALES}
        self.net_type = {kind: weight(TYPE_AFFINITY.get(kind, {})) for kind in TYPES}
        self.width = {width: weight(WIDTH_AFFINITY.get(width, {})) for width in WIDTHS}
        self.layernorm = weight(LAYERNORM_AFFINITY)  # weight of layer norm on, against 1 for off
        # how often the trunk type / width is what a network mutation changes: more often where the
        # traces favour some types / widths strongly (2 and 1 without a profile, as the others)
        self.type_move = 2.0 * max(self.net_type.values()) / min(self.net_type.values())
        self.width_move = max(self.width.values()) / min(self.width.values())


def pick(rng: random.Random, options: list, weights: dict) -> object:
    return rng.choices(options, weights=[weights[option] for option in options])[0]


def mutate_state(genome: dict, rng: random.Random, bias: Bias | None = None) -> dict:
    bias = bias or Bias()
    out = copy.deepcopy(genome)
    absent = [name for name in BLOCKS if name not in out["features"]]
    other_scales = [s for s in THROUGHPUT_SCALES if s != out["throughput_scale"]]
    # the scale move is as likely as the others when the scales are equally weighted
    scale_share = sum(bias.scale[s] for s in other_scales) / sum(bias.scale.values())
    moves = {"add": 2.0, "remove": 1.0, "swap": 1.0, "history": 1.0, "scale": 2.0 * scale_share}
    move = pick(rng, list(moves), moves)
    inverse = {name: 1.0 / weight for name, weight in bias.block.items()}  # favoured blocks are removed less
    if move == "add" and absent:
        out["features"].append(pick(rng, absent, bias.block))
    elif move == "remove" and len(out["features"]) > 3:
        out["features"].remove(pick(rng, out["features"], inverse))
    elif move == "swap" and absent:
        out["features"][out["features"].index(pick(rng, out["features"], inverse))] = pick(rng, absent, bias.block)
    elif move == "history":
        out["history"] = pick(rng, [h for h in HISTORIES if h != out["history"]], bias.history)
    else:
        out["throughput_scale"] = pick(rng, other_scales, bias.scale)
    # a state without any throughput signal cannot learn ABR; keep at least one
    if not any(name in THROUGHPUT_BLOCKS for name in out["features"]):
        out["features"].append(pick(rng, THROUGHPUT_BLOCKS, bias.block))
    return out


def mutate_net(genome: dict, rng: random.Random, bias: Bias | None = None) -> dict:
    bias = bias or Bias()
    out = dict(genome)
    flip_to = bias.layernorm if not out["layernorm"] else 1.0
    keys = {"type": bias.type_move, "width": bias.width_move, "activation": 1.0, "depth": 1.0,
            "layernorm": 2.0 * flip_to / (bias.layernorm + 1.0), "shared_trunk": 1.0}
    key = pick(rng, list(keys), keys)
    if key == "type":
        out["type"] = pick(rng, [t for t in TYPES if t != out["type"]], bias.net_type)
    elif key == "width":
        out["width"] = pick(rng, [w for w in WIDTHS if w != out["width"]], bias.width)
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


def genome_distance(a: dict, b: dict) -> int:
    """Mutation moves between two full genomes: state features added or removed, history, scale, network settings."""
    state_a, state_b = a["state"], b["state"]
    moves = len(set(state_a["features"]) ^ set(state_b["features"]))
    moves += (state_a["history"] != state_b["history"]) + (state_a["throughput_scale"] != state_b["throughput_scale"])
    return moves + sum(a["net"][key] != b["net"][key] for key in SEED_NET)


def parent_pool(kind: str, parents) -> list[dict]:
    """The parents a ``kind`` proposal may come from, each with a full genome (the seed's for kind "seed")."""
    key = "state" if kind == "state" else "net"
    pool = []
    for parent in parents:
        parent_kind = parent.get("kind")
        if parent_kind == "seed":
            genome = SEED_GENOME
        elif parent_kind is None or parent_kind in (kind, "combo"):  # no kind: a folder of genomes (llmabr propose)
            genome = parent.get("genome")
        else:
            continue
        if genome and key in genome:
            pool.append({**parent, "genome": genome})
    return pool


def select(pool: list[dict], rng: random.Random) -> dict:
    """Tournament selection: the best validation QoE of ``TOURNAMENT`` draws (unscored parents: the first drawn)."""
    drawn = [rng.choice(pool) for _ in range(TOURNAMENT)]
    return max(drawn, key=lambda parent: parent["val_qoe"] if parent.get("val_qoe") is not None else -math.inf)


def _described(parent: dict) -> str:
    score = parent.get("val_qoe")
    return parent["name"] + (f" (val QoE {score:.3f})" if score is not None else "")


class OfflineProposer:
    """``propose(kind, n, parents, seen, failures)`` -> ``n`` distinct proposals of kind "state" or "network"."""

    def __init__(self, seed: int = 0, profile: TraceProfile | None = None):
        self.rng = random.Random(seed)
        self.profile = profile
        self.bias = Bias(profile)
        self.label = LABEL + (f", conditioned on the {profile.network} training traces" if profile else "")

    def _child(self, kind: str, pool: list[dict]) -> tuple[dict, str, str]:
        rng = self.rng
        key = "state" if kind == "state" else "net"
        if len(pool) >= 2 and rng.random() < RECOMBINE:
            first = select(pool, rng)
            second = select([p for p in pool if p is not first], rng)
            combine = recombine_state if kind == "state" else recombine_net
            return (combine(first["genome"][key], second["genome"][key], rng), "recombine",
                    f"{first['name']}+{second['name']}")
        if pool:
            parent = select(pool, rng)
            base, how, parent_name = parent["genome"][key], f"mutate {_described(parent)}", parent["name"]
        else:
            base, how, parent_name = SEED_GENOME[key], "mutate the seed", "pensieve"
        mutate = mutate_state if kind == "state" else mutate_net
        genome = base
        for _ in range(rng.choice([1, 1, 2, 3])):
            genome = mutate(genome, rng, self.bias)
        return genome, how, parent_name

    def propose(self, kind: str, n: int, parents=(), seen=(), failures=()) -> list[Proposal]:
        """``n`` new designs of ``kind``.

        ``parents``: dicts with "name", "genome" ({"state": ..., "net": ...}), optionally "kind"
        ("state" | "network" | "combo" | "seed"; the seed needs no genome) and "val_qoe"
        (validation QoE per chunk; never a test score); ``seen``: genome hashes to skip;
        ``failures``: dicts with "genome" of designs that failed (their neighbourhood is avoided).
        """
        if kind not in ("state", "network"):
            raise ValueError(f"kind must be 'state' or 'network', got {kind!r}")
        pool = parent_pool(kind, parents)
        failed = [failure["genome"] for failure in failures if failure.get("genome")]
        seen = set(seen) | {genome_hash(SEED_GENOME)}
        conditioning = f"biased by {self.profile.describe()}" if self.profile else "no trace profile"
        out, attempts = [], 0
        while len(out) < n and attempts < 50 * n:
            attempts += 1
            genome, how, parent = self._child(kind, pool)
            full = {"state": genome, "net": SEED_NET} if kind == "state" else {"state": SEED_STATE, "net": genome}
            digest = genome_hash(full)
            if digest in seen:
                continue
            if failed and attempts <= 25 * n and min(genome_distance(full, f) for f in failed) <= NEAR_FAILURE:
                continue
            seen.add(digest)
            name = f"offline-{kind}-{digest}"
            out.append(Proposal(
                name=name, kind=kind, origin="offline", parent=parent,
                state_source=state_source(full["state"], title=f"State of {name}"),
                net_source=net_source(full["net"], title=f"Trunk of {name}"),
                shared_trunk=bool(full["net"]["shared_trunk"]), genome=full,
                notes=f"{LABEL}: {how}; {conditioning}"))
        return out
