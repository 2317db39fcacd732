"""Simulator configuration: one frozen dataclass, the only knobs the C core and the reference read.

Two modes share every constant and differ only in the quirks listed in ``MODE_DIFFERENCES``:

* ``"pensieve"``: Pensieve's ``sim/env.py`` / ``sim/fixed_env.py`` reproduced step by step,
  quirks included (48 of 49 chunks, RTT and noise added to the delay without advancing the
  trace clock, residual sleep reported, wrap-around assuming traces start at t = 0).
* ``"default"``: the same model with those quirks fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Mode = Literal["default", "pensieve"]
QoEKind = Literal["lin", "log", "hd"]
TraceOrder = Literal["random", "sequential"]

MODE_DIFFERENCES: dict[str, tuple[str, str]] = {
    # key: (pensieve mode, default mode)
    "chunks per episode": (
        "48: the video's 49th chunk is never requested",
        "every chunk of the video profile (49 for Envivio)",
    ),
    "RTT": (
        "80 ms added to the download time; the trace clock is NOT advanced by it",
        "80 ms of trace time elapse (no data delivered) before the payload starts",
    ),
    "noise (training)": (
        "download time (RTT included) multiplied by U(0.9, 1.1) after the fact; clock not advanced",
        "goodput divided by U(0.9, 1.1) while the chunk downloads, so the clock stays consistent",
    ),
    "sleep reported": (
        "the residual of the drain loop (what was left in the last trace row)",
        "the full sleep, ceil((buffer - cap) / 0.5 s) x 0.5 s",
    ),
    "trace wrap-around": (
        "cursor to row 1 and clock to t = 0 (wrong for traces that do not start at 0)",
        "cursor to row 1 and clock to the trace's first timestamp",
    ),
}


@dataclass(frozen=True)
class SimConfig:
    """Everything that decides how a chunk download plays out.

    Units are in the names. ``history_len`` is K, the number of past chunks kept in the
    observation (see ``simulator.layout``).
    """

    mode: Mode = "default"
    rtt_s: float = 0.08
    payload_factor: float = 0.95
    buffer_cap_s: float = 60.0
    drain_quantum_s: float = 0.5
    noise: bool = True
    noise_low: float = 0.9
    noise_high: float = 1.1
    trace_order: TraceOrder = "random"
    random_start: bool = True
    default_level: int = 1
    qoe: QoEKind = "lin"
    rebuffer_penalty: float | None = None  # None: see rebuffer_penalty_for
    smooth_penalty: float = 1.0
    reward_scale: float = 1.0
    history_len: int = 16
    max_chunks: int | None = None  # cap on chunks per episode; None: the mode's rule

    def __post_init__(self) -> None:
        if self.mode not in ("default", "pensieve"):
            raise ValueError(f"SimConfig.mode must be 'default' or 'pensieve', got {self.mode!r}")
        if self.qoe not in ("lin", "log", "hd"):
            raise ValueError(f"SimConfig.qoe must be 'lin', 'log' or 'hd', got {self.qoe!r}")
        if self.trace_order not in ("random", "sequential"):
            raise ValueError(f"SimConfig.trace_order must be 'random' or 'sequential', got {self.trace_order!r}")
        if self.history_len < 8:
            raise ValueError(f"SimConfig.history_len must be >= 8, got {self.history_len}")
        if not 0.0 < self.payload_factor <= 1.0:
            raise ValueError(f"SimConfig.payload_factor must be in (0, 1], got {self.payload_factor}")
        if self.noise_low <= 0 or self.noise_high < self.noise_low:
            raise ValueError("SimConfig noise bounds must satisfy 0 < noise_low <= noise_high")

    def rebuffer_penalty_for(self, top_bitrate_kbps: float) -> float:
        """QoE penalty per second of stall: the configured value, else Pensieve's rule.

        Pensieve's lin penalty 4.3 is its top bitrate in Mbps (one second of stall costs one second
        of the best quality), so for lin the default is the ladder's top bitrate in Mbps (4.3 for
        Envivio; 160 for high-5g, so stalls stay as costly relative to bitrate on high ladders).
        log: 2.66, hd: 8, as Pensieve, on any ladder (both utilities are scale-free).
        """
        if self.rebuffer_penalty is not None:
            return self.rebuffer_penalty
        if self.qoe == "lin":
            return top_bitrate_kbps / 1000.0
        return {"log": 2.66, "hd": 8.0}[self.qoe]

    def chunks_per_episode(self, video_chunks: int) -> int:
        n_chunks = video_chunks - 1 if self.mode == "pensieve" else video_chunks
        if self.max_chunks is not None:
            n_chunks = min(n_chunks, self.max_chunks)
        if n_chunks < 2:
            raise ValueError(f"an episode needs at least 2 chunks, the video gives {n_chunks}")
        return n_chunks

    def with_(self, **changes) -> "SimConfig":
        return replace(self, **changes)


def train_config(**changes) -> SimConfig:
    """Training protocol: random trace, random start row, multiplicative noise."""
    return SimConfig(**changes)


def test_config(**changes) -> SimConfig:
    """Deterministic test protocol: traces in sorted order, start row 1, no noise."""
    base = dict(noise=False, trace_order="sequential", random_start=False)
    base.update(changes)
    return SimConfig(**base)


test_config.__test__ = False  # a protocol, not a pytest test, when imported into test modules


__all__ = ["SimConfig", "MODE_DIFFERENCES", "train_config", "test_config"]
