"""A proposed design as text, before any check: what every proposer returns."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from llmabr.design.format import Design, detect_kind, write_design


@dataclass(frozen=True)
class Proposal:
    name: str
    kind: str  # "state", "network" or "combo"
    origin: str  # "offline", "llm" or "replay"
    state_source: str
    net_source: str | None
    parent: str | None = None
    shared_trunk: bool = False
    notes: str = ""
    genome: dict | None = None  # offline designs: the building-block choices (for mutation)
    conversation: list[dict] = field(default_factory=list)  # LLM designs: prompt and reply
    network: str = "any"  # the network type it is meant for (a search's type): S1 judges features on it

    def to_design(self) -> Design:
        return Design(name=self.name, state_source=self.state_source, net_source=self.net_source,
                      kind=detect_kind(self.state_source) if self.net_source is None else "torch",
                      origin=self.origin, parent=self.parent, notes=self.notes, shared_trunk=self.shared_trunk,
                      network=self.network)

    def write(self, folder: Path) -> Path:
        """A complete design folder (loadable by ``llmabr check``), plus genome / conversation when known."""
        folder = Path(folder)
        write_design(self.to_design(), folder)
        if self.genome is not None:
            (folder / "genome.json").write_text(json.dumps(self.genome, indent=1, sort_keys=True) + "\n")
        if self.conversation:
            (folder / "conversation.json").write_text(json.dumps(self.conversation, indent=1) + "\n")
        return folder


def read_parent(folder: Path) -> dict | None:
    """An archive design as a parent for the offline proposer (None when it has no genome)."""
    genome_path = Path(folder) / "genome.json"
    if not genome_path.exists():
        return None
    return {"name": Path(folder).name, "genome": json.loads(genome_path.read_text())}
