"""Throughput traces in memory: one ``Trace`` per file, a ``TraceSet`` of flat CSR arrays for C.

Semantics (Pensieve's): row i's bandwidth ``bw_mbps[i]`` holds on the interval
``(time_s[i-1], time_s[i]]``; row 0 only anchors the clock. A trace therefore needs at least two
rows and some positive bandwidth in rows 1.., or a chunk download would never finish.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class TraceError(ValueError):
    """A trace that cannot be used, with the file and (where known) the 1-based line at fault."""

    def __init__(self, path: str | Path, message: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Trace:
    """One throughput trace: times in seconds (strictly increasing), goodput in Mbps (>= 0)."""

    name: str
    time_s: np.ndarray
    bw_mbps: np.ndarray
    source: str = ""  # file it came from, or "synthetic:<type>"
    lines: np.ndarray | None = field(default=None, repr=False)  # file line of each row, for errors

    def __post_init__(self) -> None:
        object.__setattr__(self, "time_s", np.ascontiguousarray(self.time_s, dtype=np.float64))
        object.__setattr__(self, "bw_mbps", np.ascontiguousarray(self.bw_mbps, dtype=np.float64))
        validate(self)

    @property
    def duration_s(self) -> float:
        return float(self.time_s[-1] - self.time_s[0])

    def __len__(self) -> int:
        return len(self.time_s)


def _line_of(trace: Trace, row: int) -> int | None:
    if trace.lines is None:
        return None
    return int(trace.lines[row])


def validate(trace: Trace) -> None:
    """Raise ``TraceError`` naming the file and line of the first problem; return on a good trace."""
    where = trace.source or trace.name
    time_s, bw_mbps = trace.time_s, trace.bw_mbps
    if time_s.ndim != 1 or bw_mbps.ndim != 1 or len(time_s) != len(bw_mbps):
        raise TraceError(where, f"time and bandwidth columns differ in shape: {time_s.shape} vs {bw_mbps.shape}")
    if len(time_s) == 0:
        raise TraceError(where, "the trace is empty (no data rows)")
    if len(time_s) < 2:
        raise TraceError(where, "the trace has a single row; at least two timestamps are needed", _line_of(trace, 0))
    for name, column in (("time", time_s), ("bandwidth", bw_mbps)):
        bad = np.flatnonzero(~np.isfinite(column))
        if len(bad):
            raise TraceError(where, f"{name} is {column[bad[0]]} (not a finite number)", _line_of(trace, int(bad[0])))
    negative = np.flatnonzero(bw_mbps < 0)
    if len(negative):
        row = int(negative[0])
        raise TraceError(where, f"negative bandwidth {bw_mbps[row]} Mbps", _line_of(trace, row))
    steps = np.diff(time_s)
    non_increasing = np.flatnonzero(steps <= 0)
    if len(non_increasing):
        row = int(non_increasing[0]) + 1
        raise TraceError(
            where,
            f"time does not increase: {time_s[row]} s follows {time_s[row - 1]} s",
            _line_of(trace, row),
        )
    if not np.any(bw_mbps[1:] > 0):
        raise TraceError(where, "bandwidth is zero everywhere: no chunk could ever finish downloading")


@dataclass(frozen=True)
class TraceSet:
    """Traces packed as flat arrays for the C core: ``offsets[i]:offsets[i+1]`` are trace i's rows."""

    names: tuple[str, ...]
    time_s: np.ndarray  # float64 [total_rows]
    bw_mbps: np.ndarray  # float64 [total_rows]
    offsets: np.ndarray  # int64 [n_traces + 1]

    @classmethod
    def from_traces(cls, traces: list[Trace]) -> "TraceSet":
        if not traces:
            raise ValueError("a TraceSet needs at least one trace")
        lengths = np.array([len(trace) for trace in traces], dtype=np.int64)
        offsets = np.zeros(len(traces) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(
            names=tuple(trace.name for trace in traces),
            time_s=np.ascontiguousarray(np.concatenate([t.time_s for t in traces]), dtype=np.float64),
            bw_mbps=np.ascontiguousarray(np.concatenate([t.bw_mbps for t in traces]), dtype=np.float64),
            offsets=offsets,
        )

    def __len__(self) -> int:
        return len(self.names)

    def trace(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.offsets[index], self.offsets[index + 1]
        return self.time_s[lo:hi], self.bw_mbps[lo:hi]
