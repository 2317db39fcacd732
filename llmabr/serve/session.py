"""One player's measurement history, turned into the observation row of ``simulator.layout``.

``SessionHistory`` is the only place outside the simulator that builds a measurement row, so a
served policy (or the dash.js plugin's Python twin) sees exactly what it saw in training::

    history = SessionHistory(history_len=16, n_levels=6)
    history.add_chunk(bitrate_kbps=750, buffer_s=4.0, download_time_s=1.3, chunk_bytes=380_000, rebuffer_s=1.3)
    row = history.row(next_chunk_bytes=[...6 sizes...], ladder_kbps=[300, ..., 4300], chunks_left=48, chunks_total=49)

The simulator writes the row after every chunk the same way (``simulator.reference.ReferencePlayer._write_obs``):
history fields shift left by one and the newest chunk lands in the last slot with ``valid`` = 1;
slots before the first chunk stay 0 with ``valid`` = 0. No FastAPI or onnxruntime needed here.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simulator.layout import HISTORY_FIELDS, Layout

CHUNK_FIELDS = ("bitrate_kbps", "buffer_s", "download_time_s", "chunk_bytes", "rebuffer_s")
if HISTORY_FIELDS != CHUNK_FIELDS + ("valid",):  # the row copy below relies on this order
    raise ImportError(f"simulator.layout.HISTORY_FIELDS changed to {HISTORY_FIELDS}; update SessionHistory")


def _finite_nonnegative(name: str, value) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


class SessionHistory:
    """The last ``history_len`` chunks of one playback session, oldest first.

    ``add_chunk`` records a finished chunk; ``row`` returns the float32 vector [layout.size]
    in the order of ``simulator.layout`` (history fields, then per-level fields, then
    ``chunks_left`` and ``chunks_total``). Values are checked (finite, >= 0, right lengths) and
    a ``ValueError`` names the field at fault.
    """

    def __init__(self, history_len: int = 16, n_levels: int = 6):
        self.layout = Layout(int(history_len), int(n_levels))
        # float64 like the simulator's outputs; the row is rounded to float32 once, as the C core does.
        self._history = np.zeros((len(HISTORY_FIELDS), self.layout.history_len), dtype=np.float64)
        self.chunks_seen = 0

    def reset(self) -> None:
        """Forget every chunk (a new video in the same session)."""
        self._history[:] = 0.0
        self.chunks_seen = 0

    def add_chunk(self, *, bitrate_kbps: float, buffer_s: float, download_time_s: float, chunk_bytes: float,
                  rebuffer_s: float) -> None:
        """Record the chunk that just finished downloading.

        ``bitrate_kbps``: its level's bitrate; ``buffer_s``: buffer right after it arrived;
        ``download_time_s``: request to last byte, RTT included; ``chunk_bytes``: its size;
        ``rebuffer_s``: stall while it downloaded.
        """
        values = {"bitrate_kbps": bitrate_kbps, "buffer_s": buffer_s, "download_time_s": download_time_s,
                  "chunk_bytes": chunk_bytes, "rebuffer_s": rebuffer_s}
        newest = [_finite_nonnegative(f"chunk.{name}", values[name]) for name in CHUNK_FIELDS] + [1.0]
        self._history[:, :-1] = self._history[:, 1:]
        self._history[:, -1] = newest  # HISTORY_FIELDS order: the five chunk fields, then valid
        self.chunks_seen += 1

    def row(self, *, next_chunk_bytes: Sequence[float], ladder_kbps: Sequence[float], chunks_left: int,
            chunks_total: int) -> np.ndarray:
        """The observation row (float32 [layout.size]) for the next decision."""
        n_levels = self.layout.n_levels
        sizes = np.asarray(next_chunk_bytes, dtype=np.float64).reshape(-1)
        ladder = np.asarray(ladder_kbps, dtype=np.float64).reshape(-1)
        for name, values in (("next_chunk_bytes", sizes), ("ladder_kbps", ladder)):
            if values.size != n_levels:
                raise ValueError(f"{name} must hold {n_levels} values (one per level), got {values.size}")
            if not np.all(np.isfinite(values)) or np.any(values < 0):
                raise ValueError(f"{name} must hold finite numbers >= 0, got {values.tolist()}")
        left = _finite_nonnegative("chunks_left", chunks_left)
        total = _finite_nonnegative("chunks_total", chunks_total)
        if left > total:
            raise ValueError(f"chunks_left ({chunks_left}) exceeds chunks_total ({chunks_total})")
        out = np.empty(self.layout.size, dtype=np.float32)
        history_width = len(HISTORY_FIELDS) * self.layout.history_len
        out[:history_width] = self._history.reshape(-1)  # HISTORY_FIELDS lead the row, each K wide
        out[self.layout.slice("next_chunk_bytes")] = sizes
        out[self.layout.slice("ladder_kbps")] = ladder
        out[self.layout.offset("chunks_left")] = left
        out[self.layout.offset("chunks_total")] = total
        return out


@dataclass
class Session:
    """A served player: its history and, for Pensieve's protocol, the counters that protocol keeps."""

    history: SessionHistory
    last_seen_s: float
    pensieve_rebuffer_ms: float = 0.0  # Pensieve reports total stall so far; a chunk's stall is the increase
    pensieve_last_request: int = -1


class SessionStore:
    """Sessions by id, bounded: idle ones expire after ``ttl_s`` and at most ``max_sessions`` are kept
    (the least recently used goes first). Not thread-safe: the server touches it from its event loop."""

    def __init__(self, history_len: int, n_levels: int, ttl_s: float = 600.0, max_sessions: int = 10_000,
                 clock=time.monotonic):
        if ttl_s <= 0 or max_sessions < 1:
            raise ValueError("SessionStore needs ttl_s > 0 and max_sessions >= 1")
        self.history_len, self.n_levels = history_len, n_levels
        self.ttl_s, self.max_sessions, self.clock = ttl_s, max_sessions, clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # least recently used first
        self.expired = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._sessions

    def get(self, session_id: str) -> Session:
        """The session (created empty when new or expired), marked as just used."""
        now = self.clock()
        self._expire(now)
        session = self._sessions.get(session_id)
        if session is None:
            session = Session(SessionHistory(self.history_len, self.n_levels), now)
            self._sessions[session_id] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
                self.evicted += 1
        else:
            session.last_seen_s = now
            self._sessions.move_to_end(session_id)
        return session

    def _expire(self, now: float) -> None:
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if now - oldest.last_seen_s <= self.ttl_s:
                return
            self._sessions.popitem(last=False)
            self.expired += 1
