"""The check report: what S0 and S1 found about one design, as data and as JSON.

A report names the stage reached (``S0`` static, ``S1`` probe), where it was rejected (or
None), every check with pass/fail and a reason written for whoever fixes the design (a person
or the proposer's next prompt), per-feature magnitude statistics, and how the cage ended.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class CheckResult:
    stage: str  # "S0" or "S1"
    name: str
    passed: bool
    reason: str = ""
    details: dict = field(default_factory=dict)


@dataclass
class FeatureStats:
    """Magnitude statistics of one feature over the probe rows (all columns pooled)."""

    name: str
    dims: int
    min: float
    max: float
    mean: float
    std: float
    p99_abs: float
    p99_abs_by_network: dict = field(default_factory=dict)


@dataclass
class CheckReport:
    design: str
    path: str = ""
    kind: str = "torch"
    passed: bool = False
    stage_reached: str = "S0"
    rejected_at: str | None = None
    checks: list[CheckResult] = field(default_factory=list)
    features: list[FeatureStats] = field(default_factory=list)
    param_count: int | None = None
    latency_ms: dict = field(default_factory=dict)
    exportable: bool | None = None
    s0_ms: float | None = None
    s1_s: float | None = None
    probe_source: str = ""
    cage: dict | None = None

    def add(self, stage: str, name: str, passed: bool, reason: str = "", **details) -> CheckResult:
        result = CheckResult(stage, name, passed, reason, details)
        self.checks.append(result)
        return result

    @property
    def failures(self) -> list[CheckResult]:
        return [check for check in self.checks if not check.passed]

    def summary(self) -> str:
        """One paragraph a proposer can act on: every failed check and its reason."""
        if self.passed:
            return f"design {self.design!r} passed S0 and S1"
        lines = [f"design {self.design!r} was rejected at {self.rejected_at}:"]
        lines += [f"- {check.stage} {check.name}: {check.reason}" for check in self.failures]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False, default=_jsonable)

    @classmethod
    def from_dict(cls, data: dict) -> "CheckReport":
        data = dict(data)
        data["checks"] = [CheckResult(**check) for check in data.get("checks", [])]
        data["features"] = [FeatureStats(**feature) for feature in data.get("features", [])]
        return cls(**data)


def _jsonable(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
