"""The replay proposer: designs written elsewhere (any model, the paper's published designs, people).

Two sources:
- a folder of design folders (each with state.py and, for torch designs, net.py), or of loose
  ``*.py`` files (each one state function or one ``Trunk``; the missing half comes from the seed);
- a JSONL file of LLM replies, one object per line: ``{"kind": "state"|"network", "reply": "..."}``
  (optional: ``"name"``, ``"model"``, ``"prompt"``). Replies go through the same extraction as live
  LLM replies, so a reply without usable code is reported with its reason, not skipped silently.

Nothing here executes design code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from llmabr.design.format import Design, DesignError, design_hash, detect_kind, load_design
from llmabr.proposer.extract import ExtractionError, extract_code
from llmabr.proposer.proposal import Proposal
from llmabr.proposer.seeds import seed_net_source, seed_state_source


@dataclass(frozen=True)
class ReplayFailure:
    name: str
    reason: str


def from_code(name: str, kind: str, source: str, origin: str, notes: str,
              conversation: list[dict] | None = None) -> Proposal:
    """A proposal from one file's code: a state (or NADA ``state_func``) or a ``Trunk``; the seed completes it."""
    if kind == "network":
        return Proposal(name=name, kind=kind, origin=origin, state_source=seed_state_source(), net_source=source,
                        parent="pensieve", notes=notes, conversation=conversation or [])
    nada = detect_kind(source) == "nada"
    return Proposal(name=name, kind=kind, origin=origin, state_source=source,
                    net_source=None if nada else seed_net_source(), parent="pensieve", notes=notes,
                    conversation=conversation or [])


def replay_folder(folder: Path) -> tuple[list[Proposal], list[ReplayFailure]]:
    proposals, failures = [], []
    for path in sorted(Path(folder).iterdir()):
        if path.is_dir():
            try:
                design = load_design(path)
            except DesignError as error:
                failures.append(ReplayFailure(path.name, str(error)))
                continue
            proposals.append(Proposal(name=path.name, kind="combo", origin="replay", state_source=design.state_source,
                                      net_source=design.net_source, parent=design.parent, shared_trunk=design.shared_trunk,
                                      notes=design.notes or f"replayed from {path}"))
        elif path.suffix == ".py":
            text = path.read_text(errors="replace")
            kind = "network" if "class Trunk" in text else "state"
            try:
                extracted = extract_code(f"```python\n{text}\n```", kind)
            except ExtractionError as error:
                failures.append(ReplayFailure(path.name, str(error)))
                continue
            proposals.append(from_code(path.stem, kind, extracted.source, "replay", f"replayed from {path}"))
    return proposals, failures


def replay_jsonl(path: Path) -> tuple[list[Proposal], list[ReplayFailure]]:
    proposals, failures = [], []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            kind, reply = record["kind"], record["reply"]
        except (ValueError, KeyError, TypeError) as error:
            failures.append(ReplayFailure(f"line {number}", f"not a JSON object with 'kind' and 'reply': {error}"))
            continue
        if kind not in ("state", "network"):
            failures.append(ReplayFailure(f"line {number}", f"kind must be 'state' or 'network', got {kind!r}"))
            continue
        try:
            extracted = extract_code(reply, kind)
        except ExtractionError as error:
            failures.append(ReplayFailure(record.get("name", f"line {number}"), str(error)))
            continue
        name = record.get("name") or f"replay-{kind}-{design_hash_text(extracted.source)}"
        conversation = ([{"role": "user", "content": record["prompt"]}] if record.get("prompt") else []) + \
            [{"role": "assistant", "content": reply}]
        notes = f"replayed reply{' of ' + record['model'] if record.get('model') else ''} ({path}:{number})"
        if extracted.analysis:
            notes += f"; analysis: {extracted.analysis[:500]}"
        proposals.append(from_code(name, kind, extracted.source, "replay", notes, conversation))
    return proposals, failures


def design_hash_text(source: str) -> str:
    return design_hash(Design(name="x", state_source=source))[:10]


def replay(source: Path) -> tuple[list[Proposal], list[ReplayFailure]]:
    source = Path(source)
    if source.is_dir():
        return replay_folder(source)
    if source.is_file() and source.suffix in (".jsonl", ".json"):
        return replay_jsonl(source)
    raise FileNotFoundError(f"{source}: expected a folder of designs or a .jsonl file of replies")
