"""What S0 reports: one ``Finding`` per problem, and the result over a design's files."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Finding:
    check: str  # syntax, size, import, name, dunder, attribute, dispatch, write, entrypoint, structure
    line: int
    col: int
    message: str
    file: str = ""


@dataclass(frozen=True)
class S0Result:
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.findings
