"""The proposal side of the search: which proposer, what to ask for next, when to stop asking.

``evolve``: rounds of ``round_size`` proposals, alternating state and network designs; each round
is conditioned on the archive (the offline proposer picks parents by validation score among the
screened designs and the seed, mutates or recombines them and steers clear of failed designs, with
mutations biased by the training traces' statistics; the LLM sees the best designs with their
validation scores, plus recent failures with reasons).
``paper``: half the budget as state designs with the seed network, half as network designs with
the seed state, then the top-k states x top-k networks combinations, as LLM-ABR did.
Proposer ``replay`` (either mode): designs written elsewhere (``search.replay``: a folder of
designs or a JSONL of LLM replies), taken in order up to the design budget; the same designs in
the same order every time, which is what a benchmark or a re-evaluation on new traces needs.

Proposals are decoupled from evaluation: ``top_up`` keeps at most ``queue_ahead`` designs waiting
for a check or S2 ahead of the workers. An LLM endpoint that fails (after the client's own
retries) is backed off from and the search continues with what it has; the LLM budget being
reached ends proposing cleanly. With ``llm.local_model`` set, the search starts llama.cpp's server
for that GGUF file here (``llmabr.proposer.local_server``, output in ``RUN/llama_server.log``) and
``close`` stops it.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from llmabr.proposer.offline import OfflineProposer, genome_hash
from llmabr.proposer.proposal import Proposal
from simulator.traces import SYNTH_TYPES


def load_replay(source: str, limit: int) -> list[Proposal]:
    """The first ``limit`` designs of a replay source; ValueError when it has none usable."""
    from llmabr.proposer.replay import replay

    try:
        proposals, failures = replay(Path(source))
    except (FileNotFoundError, OSError) as error:
        raise ValueError(str(error)) from None
    if not proposals:
        reasons = "; ".join(f"{f.name}: {f.reason}" for f in failures[:3])
        raise ValueError(f"{source}: no design to replay{' (' + reasons + ')' if reasons else ''}")
    return proposals[:limit]


class Proposing:
    def __init__(self, config, archive, run_dir: Path, console):
        self.config, self.archive, self.console = config, archive, console
        self.stop_reason = archive.meta("proposing_stopped", "")
        self.cost_before_usd = float(archive.meta("llm_cost_usd", 0.0))  # spent before a resume
        self.backoff_until = 0.0
        self.failures_in_row = 0
        self.usage_before = dict(archive.meta("llm_usage", {}))  # tokens and requests before a resume
        self.client = None
        self.llm = None
        self.server = None
        from llmabr.proposer.llm_config import llm_config_from

        section = dict(config.llm)
        if config.budget.llm_usd is not None and "budget_usd" not in section:
            section["budget_usd"] = config.budget.llm_usd
        llm_config = llm_config_from(section)
        use_llm = config.proposer == "llm" or (config.proposer == "auto" and llm_config.configured)
        self.replayed = None
        if config.proposer == "replay":
            self.replayed = load_replay(config.replay, config.budget.designs)
            self.label = f"replay of {config.replay} ({len(self.replayed)} designs)"
        elif use_llm:
            from llmabr.proposer.client import LLMClient
            from llmabr.proposer.llm import LLMProposer, static_check

            if llm_config.local_model is not None:
                from llmabr.proposer.local_server import LocalServer

                self.server = LocalServer.for_config(llm_config, Path(run_dir) / "llama_server.log")
                console.print(f"starting llama.cpp's server: {self.server.describe()}")
                llm_config = self.server.start().client_config(llm_config)
            self.client = LLMClient(llm_config, Path(run_dir))
            self.llm = LLMProposer(self.client, check=static_check)
            self.label = self.llm.label
        else:
            why = "" if config.proposer == "offline" else ", no LLM endpoint configured"
            self.label = f"offline proposer{why}"
        profile = None
        if self.llm is None and self.replayed is None:  # the offline proposer conditions on the training traces
            from llmabr.proposer.context import trace_profile

            profile = trace_profile(config.network, config.traces, config.train.video)
        self.offline = OfflineProposer(config.seed, profile)

    # -- accounting -----------------------------------------------------------------------------

    def proposed(self) -> list[dict]:
        return [d for d in self.archive.designs() if d["origin"] != "seed"]

    def cost_usd(self) -> float:
        """LLM spending of this search (thread-safe: no archive access)."""
        return self.cost_before_usd + (self.client.usage()["cost_usd"] if self.client else 0.0)

    def usage(self) -> dict:
        """LLM usage of this search, resumed runs included: prompt_tokens, completion_tokens, requests,
        failures (requests that ended in an error), cost_usd (thread-safe: no archive access)."""
        now = self.client.usage() if self.client else {}
        totals = {key: self.usage_before.get(key, 0) + now.get(key, 0)
                  for key in ("prompt_tokens", "completion_tokens", "requests", "failures")}
        return {**totals, "cost_usd": self.cost_usd()}

    def close(self) -> None:
        """Stop the local model server, if this search started one."""
        if self.server is not None:
            self.server.stop()

    def finished(self, elapsed_s: float) -> bool:
        """No more proposals: the budget of designs is used, time is up, or proposing was stopped."""
        if self.stop_reason:
            return True
        if elapsed_s > 60.0 * self.config.budget.minutes * self.config.budget.propose_fraction:
            self._stop("time budget for proposing reached")
            return True
        if self.replayed is not None and self._replay_cursor() >= len(self.replayed):
            return True
        if len(self.proposed()) >= self._target():
            return True
        return False

    def _replay_cursor(self) -> int:
        return int(self.archive.meta("replay_cursor", 0))

    def _target(self) -> int:
        budget = self.config.budget
        if self.config.mode == "paper":
            return budget.designs + budget.top_k * budget.top_k
        return budget.designs

    def _stop(self, reason: str) -> None:
        if not self.stop_reason:
            self.stop_reason = reason
            self.archive.set_meta("proposing_stopped", reason)
            self.console.print(f"proposing stopped: {reason}")

    # -- what to ask for next -------------------------------------------------------------------

    def _next_kind(self) -> tuple[str | None, int]:
        """What to ask for next and how many at most: ('state' | 'network' | 'combo', n), or (None, 0) to wait."""
        proposed = self.proposed()
        if self.replayed is not None:
            return "replay", len(self.replayed) - self._replay_cursor()
        if self.config.mode == "evolve":
            round_index = len(proposed) // self.config.round_size
            left_in_round = self.config.round_size - len(proposed) % self.config.round_size
            return ("state" if round_index % 2 == 0 else "network"), left_in_round
        half = self.config.budget.designs // 2
        states = [d for d in proposed if d["kind"] == "state"]
        networks = [d for d in proposed if d["kind"] == "network"]
        if len(states) < half:
            return "state", half - len(states)
        if len(networks) < self.config.budget.designs - half:
            return "network", self.config.budget.designs - half - len(networks)
        if self.archive.open_tasks(("check", "screen")):
            return None, 0  # combinations need the screened halves
        return "combo", self.config.budget.top_k ** 2

    def _offline_inputs(self) -> tuple[list[dict], list[dict], set[str]]:
        """For the offline proposer: the scored designs still in the race (kind, genome, validation QoE; the seed
        without a genome), the designs rejected or failed (with their genomes), and every archived genome's hash."""
        parents, failures, seen = [], [], set()
        for design in self.archive.designs():
            genome_path = self.archive.folder(design["name"]) / "genome.json"
            genome = json.loads(genome_path.read_text()) if genome_path.exists() else None
            if genome is not None:
                seen.add(genome_hash(genome))
            entry = {"name": design["name"], "kind": design["kind"], "genome": genome, "val_qoe": design["val_qoe"]}
            if design["status"] != "ok":
                failures.append(entry)
            elif design["val_qoe"] is not None:
                parents.append(entry)
        return parents, failures, seen

    def _combinations(self) -> list[Proposal]:
        from llmabr.design.format import load_design

        k = self.config.budget.top_k
        ranked = self.archive.top(stage="screened")
        states = [d for d in ranked if d["kind"] == "state"][:k]
        networks = [d for d in ranked if d["kind"] == "network"][:k]
        out = []
        for state in states:
            for network in networks:
                state_design = load_design(self.archive.folder(state["name"]))
                net_design = load_design(self.archive.folder(network["name"]))
                out.append(Proposal(
                    name=f"combo-{state['name'][-10:]}-{network['name'][-10:]}", kind="combo",
                    origin=state_design.origin, parent=f"{state['name']}+{network['name']}",
                    state_source=state_design.state_source, net_source=net_design.net_source,
                    shared_trunk=net_design.shared_trunk,
                    notes=f"state of {state['name']} with the network of {network['name']}"))
        return out

    def curve_summary(self) -> str:
        """A few lines on how validation QoE evolved in S2 (Eureka-style reflection for the next prompt)."""
        lines = []
        designs = [d for d in self.archive.designs() if d["metrics"].get("S2", {}).get("curve")]
        for design in sorted(designs, key=lambda d: d["val_qoe"] or -1e9, reverse=True)[:4]:
            curve = design["metrics"]["S2"]["curve"]
            points = [curve[0], curve[len(curve) // 2], curve[-1]]
            path = " -> ".join(f"{p['val_qoe']:.2f} at {p['steps']:,}" for p in points)
            stopped = " (stopped early)" if design["metrics"]["S2"].get("stopped_early") else ""
            lines.append(f"{design['name']}: {path} steps{stopped}")
        stopped = sum(1 for d in designs if d["metrics"]["S2"].get("stopped_early"))
        if designs:
            lines.append(f"{stopped} of {len(designs)} screened designs were stopped early for trailing the seed design.")
        return "\n".join(lines)

    def _ask(self, kind: str, n: int) -> list[Proposal]:
        if kind == "replay":
            cursor = self._replay_cursor()
            return self.replayed[cursor:cursor + n]
        if kind == "combo":
            proposals = self._combinations()
            if not proposals:
                self._stop("paper mode: no screened state or network design to combine")
            return proposals
        if self.llm is None:
            parents, failures, seen = self._offline_inputs()
            return self.offline.propose(kind, n, parents, seen, failures)
        from llmabr.proposer.client import BudgetExceeded, LLMError
        from llmabr.proposer.context import build_context
        from llmabr.proposer.prompts import Failure, ScoredDesign

        tops = tuple(ScoredDesign(d["name"], d["val_qoe"], (self.archive.folder(d["name"]) /
                                                             ("state.py" if kind == "state" else "net.py")).read_text())
                     for d in self.archive.top(3, stage="screened"))
        failures = tuple(Failure(d["name"], d["reason"].split(":")[0], d["reason"][:300])
                         for d in self.archive.designs(status="rejected")[-5:])
        seed = self.archive.design("seed-pensieve")
        context = build_context(self.config.network, self.config.traces, top_designs=tops, failures=failures,
                                seed_score=seed["val_qoe"] if seed else None, curve_summary=self.curve_summary())
        try:
            proposals, rejected = self.llm.propose(kind, n, context)
        except BudgetExceeded as error:
            self._save_usage()
            self._stop(f"LLM budget reached ({error})")
            return []
        except LLMError as error:
            self._save_usage()
            self.failures_in_row += 1
            config = self.client.config  # back off on the client's scale: seconds by default
            wait_s = min(config.backoff_max_s, 4.0 * config.backoff_base_s * 2 ** self.failures_in_row)
            self.backoff_until = time.monotonic() + wait_s
            self.console.print(f"[yellow]LLM endpoint failed ({error}); trying again in {wait_s:.0f} s[/]")
            if self.failures_in_row >= 6:
                self._stop(f"the LLM endpoint failed {self.failures_in_row} times in a row: {error}")
            return []
        self.failures_in_row = 0
        self._save_usage()
        for failure in rejected:  # kept for the next prompt's failure list
            self.archive.set_meta(f"llm_rejected/{failure.name}/{time.time():.0f}",
                                  {"stage": failure.stage, "reason": failure.reason[:500]})
        return proposals

    def _save_usage(self) -> None:
        self.archive.set_meta("llm_cost_usd", self.cost_usd())
        self.archive.set_meta("llm_usage", self.usage())

    def top_up(self, elapsed_s: float) -> int:
        """Propose until ``queue_ahead`` designs wait for evaluation; returns how many were added."""
        if self.finished(elapsed_s) or time.monotonic() < self.backoff_until:
            return 0
        waiting = self.archive.open_tasks(("check", "screen"))
        room = self.config.queue_ahead - waiting
        if room <= 0:
            return 0
        kind, left_in_phase = self._next_kind()
        if kind is None:
            return 0
        n = min(room, left_in_phase) if kind == "replay" else min(room, left_in_phase, self._target() - len(self.proposed()))
        added = 0
        proposals = self._ask(kind, n)[:n]
        for proposal in proposals:
            if self.config.network in SYNTH_TYPES:  # S1 judges normalization on the rows this search trains on
                proposal = replace(proposal, network=self.config.network)
            name, new = self.archive.add(proposal, round_index=len(self.proposed()) // self.config.round_size)
            if new:
                self.archive.enqueue(name, "check")
                added += 1
        if kind == "replay":  # moved on only once archived: a search killed in between re-adds (deduplicated)
            self.archive.set_meta("replay_cursor", self._replay_cursor() + len(proposals))
        if kind == "combo":
            self._stop("paper mode: combinations proposed")
        return added
