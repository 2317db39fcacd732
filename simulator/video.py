"""Video profiles: a bitrate ladder and the byte size of every chunk at every level. Data, not code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


class VideoProfileError(ValueError):
    """A video profile that cannot be loaded, naming the file at fault."""


@dataclass(frozen=True)
class VideoProfile:
    """A video as the simulator sees it.

    ``bitrates_kbps[l]`` is level l's nominal bitrate (lowest first); ``chunk_bytes[l, c]`` is
    the size of chunk c at level l; every chunk lasts ``chunk_s`` seconds. ``hd_reward`` is the
    per-level utility of the HD QoE variant.
    """

    name: str
    bitrates_kbps: np.ndarray
    chunk_bytes: np.ndarray
    chunk_s: float = 4.0
    hd_reward: tuple[float, ...] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        bitrates = np.ascontiguousarray(self.bitrates_kbps, dtype=np.float64)
        sizes = np.ascontiguousarray(self.chunk_bytes, dtype=np.float64)
        object.__setattr__(self, "bitrates_kbps", bitrates)
        object.__setattr__(self, "chunk_bytes", sizes)
        if bitrates.ndim != 1 or len(bitrates) < 2:
            raise VideoProfileError(f"profile {self.name!r}: need at least two ladder levels")
        if np.any(np.diff(bitrates) <= 0) or bitrates[0] <= 0:
            raise VideoProfileError(f"profile {self.name!r}: ladder must be positive and increasing, got {bitrates}")
        if sizes.ndim != 2 or sizes.shape[0] != len(bitrates) or sizes.shape[1] < 2:
            raise VideoProfileError(
                f"profile {self.name!r}: chunk_bytes must be (levels={len(bitrates)}, chunks>=2), got {sizes.shape}"
            )
        if not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
            raise VideoProfileError(f"profile {self.name!r}: chunk sizes must be positive and finite")
        if self.hd_reward is not None and len(self.hd_reward) != len(bitrates):
            raise VideoProfileError(f"profile {self.name!r}: hd_reward needs one value per level")
        if self.chunk_s <= 0:
            raise VideoProfileError(f"profile {self.name!r}: chunk_s must be positive")

    @property
    def n_levels(self) -> int:
        return len(self.bitrates_kbps)

    @property
    def n_chunks(self) -> int:
        return self.chunk_bytes.shape[1]


def load_pensieve_dir(folder: str | Path, bitrates_kbps=None, name: str | None = None) -> VideoProfile:
    """Read Pensieve's ``video_size_0 .. video_size_{L-1}`` files (one byte count per line)."""
    folder = Path(folder)
    files = sorted(folder.glob("video_size_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
    if not files:
        raise VideoProfileError(f"{folder}: no video_size_N files found")
    rows = []
    for path in files:
        values = []
        for line_no, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                values.append(float(line.split()[0]))
            except ValueError as error:
                raise VideoProfileError(f"{path}:{line_no}: not a byte count: {line!r}") from error
        rows.append(values)
    if len({len(r) for r in rows}) != 1:
        raise VideoProfileError(f"{folder}: video_size files have different chunk counts")
    if bitrates_kbps is None:
        if len(rows) != 6:
            raise VideoProfileError(f"{folder}: {len(rows)} levels; pass bitrates_kbps for a non-Envivio ladder")
        bitrates_kbps = ENVIVIO_LADDER_KBPS
    return VideoProfile(
        name=name or folder.name,
        bitrates_kbps=np.array(bitrates_kbps, dtype=np.float64),
        chunk_bytes=np.array(rows, dtype=np.float64),
        hd_reward=ENVIVIO_HD_REWARD if len(rows) == 6 else None,
        description=f"Pensieve video_size files from {folder}",
    )


ENVIVIO_LADDER_KBPS = (300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0)
ENVIVIO_HD_REWARD = (1.0, 2.0, 3.0, 12.0, 15.0, 20.0)
