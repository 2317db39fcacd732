"""The measurement layout: the constant observation row every policy and design reads.

One row is a flat float32 vector made of named fields, in this order (K = history length,
L = number of ladder levels):

| field                 | size | unit   | meaning                                                     |
|-----------------------|------|--------|-------------------------------------------------------------|
| ``bitrate_kbps``      | K    | kbps   | bitrate of each of the last K chunks (oldest first)         |
| ``buffer_s``          | K    | s      | buffer after each chunk arrived (and after any sleep)       |
| ``download_time_s``   | K    | s      | time to fetch each chunk, RTT included                      |
| ``chunk_bytes``       | K    | bytes  | size of each chunk fetched                                  |
| ``rebuffer_s``        | K    | s      | stall incurred while fetching each chunk                    |
| ``valid``             | K    | 0/1    | 1 where the history slot holds a real chunk                 |
| ``next_chunk_bytes``  | L    | bytes  | size of the next chunk at each level (0 after the last one) |
| ``ladder_kbps``       | L    | kbps   | the bitrate of each level, lowest first                     |
| ``chunks_left``       | 1    | chunks | chunks still to fetch in this episode                       |
| ``chunks_total``      | 1    | chunks | chunks in this episode                                      |

The newest chunk sits in the last history slot (index K - 1). Slots of chunks not yet played
are 0 with ``valid`` = 0. Designs never change this row; they only compute from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LAYOUT_VERSION = 1

HISTORY_FIELDS = ("bitrate_kbps", "buffer_s", "download_time_s", "chunk_bytes", "rebuffer_s", "valid")
LEVEL_FIELDS = ("next_chunk_bytes", "ladder_kbps")
SCALAR_FIELDS = ("chunks_left", "chunks_total")

UNITS = {
    "bitrate_kbps": "kbps",
    "buffer_s": "s",
    "download_time_s": "s",
    "chunk_bytes": "bytes",
    "rebuffer_s": "s",
    "valid": "0/1",
    "next_chunk_bytes": "bytes",
    "ladder_kbps": "kbps",
    "chunks_left": "chunks",
    "chunks_total": "chunks",
}

# One line per field, for exported layout.json files and player code (the table above, as data).
MEANINGS = {
    "bitrate_kbps": "bitrate of each of the last K chunks (oldest first)",
    "buffer_s": "buffer after each chunk arrived (and after any sleep)",
    "download_time_s": "time to fetch each chunk, RTT included",
    "chunk_bytes": "size of each chunk fetched",
    "rebuffer_s": "stall incurred while fetching each chunk",
    "valid": "1 where the history slot holds a real chunk, 0 for slots before the first chunk",
    "next_chunk_bytes": "size of the next chunk at each level (0 after the last one)",
    "ladder_kbps": "the bitrate of each level, lowest first",
    "chunks_left": "chunks still to fetch in this episode",
    "chunks_total": "chunks in this episode",
}


@dataclass(frozen=True)
class Layout:
    """Offsets of every field in an observation row for history length K and L levels."""

    history_len: int
    n_levels: int

    @property
    def fields(self) -> list[tuple[str, int, int]]:
        """(name, offset, size) for every field, in row order."""
        out, offset = [], 0
        for name in HISTORY_FIELDS:
            out.append((name, offset, self.history_len))
            offset += self.history_len
        for name in LEVEL_FIELDS:
            out.append((name, offset, self.n_levels))
            offset += self.n_levels
        for name in SCALAR_FIELDS:
            out.append((name, offset, 1))
            offset += 1
        return out

    @property
    def size(self) -> int:
        return len(HISTORY_FIELDS) * self.history_len + len(LEVEL_FIELDS) * self.n_levels + len(SCALAR_FIELDS)

    def slice(self, name: str) -> slice:
        for field_name, offset, size in self.fields:
            if field_name == name:
                return slice(offset, offset + size)
        raise KeyError(f"unknown layout field {name!r}; fields are {[f[0] for f in self.fields]}")

    def offset(self, name: str) -> int:
        return self.slice(name).start

    def split(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """Views of a (..., size) array, one per field; scalar fields keep a trailing axis of 1."""
        if obs.shape[-1] != self.size:
            raise ValueError(f"observation has {obs.shape[-1]} columns, layout needs {self.size}")
        return {name: obs[..., offset:offset + size] for name, offset, size in self.fields}

    def describe(self) -> dict:
        """JSON-ready description (used by export's layout.json)."""
        return {
            "layout_version": LAYOUT_VERSION,
            "history_len": self.history_len,
            "n_levels": self.n_levels,
            "size": self.size,
            "fields": [
                {"name": name, "offset": offset, "size": size, "unit": UNITS[name]}
                for name, offset, size in self.fields
            ],
        }
