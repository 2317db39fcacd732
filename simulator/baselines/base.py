"""What every batched baseline shares: the policy contract and readers of the measurement row."""

from __future__ import annotations

import numpy as np

from simulator.layout import Layout
from simulator.video import VideoProfile


class Baseline:
    """A heuristic ABR policy stepping N players at once (pure numpy).

    Contract: ``reset(mask)`` before the first ``act`` and whenever players start a new episode
    (``mask``: bool [N], or None for all); ``act(obs)`` maps float32 observations
    [N, layout.size] (see ``simulator.layout``) to int32 levels [N]. Policies that keep
    per-player state size it on the first ``reset``/``act``; N must not change afterwards.
    """

    name = "baseline"

    def __init__(self, video: VideoProfile, layout: Layout, **params):
        if params:
            raise TypeError(f"{type(self).__name__} got unknown parameter(s): {', '.join(sorted(params))}")
        if layout.n_levels != video.n_levels:
            raise ValueError(f"layout has {layout.n_levels} levels, video {video.name!r} has {video.n_levels}")
        self.video, self.layout = video, layout
        self.ladder_kbps = np.asarray(video.bitrates_kbps, dtype=np.float64)

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Forget per-player state of the players in ``mask`` (all when None)."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- readers shared by the heuristics --------------------------------------------------
    def fields(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        obs = np.asarray(obs)
        if obs.ndim != 2:
            raise ValueError(f"{self.name}: obs must be [N, {self.layout.size}], got shape {obs.shape}")
        return self.layout.split(obs)

    @staticmethod
    def newest(fields: dict[str, np.ndarray], name: str) -> np.ndarray:
        """The newest history value of ``name`` per player, as float64 [N]."""
        return fields[name][:, -1].astype(np.float64)

    def last_level(self, fields: dict[str, np.ndarray]) -> np.ndarray:
        """Level of the newest chunk, matched from its bitrate against the ladder (int64 [N])."""
        kbps = self.newest(fields, "bitrate_kbps")
        return np.abs(kbps[:, None] - self.ladder_kbps[None, :]).argmin(axis=1)


def throughputs(fields: dict[str, np.ndarray], window: int) -> tuple[np.ndarray, np.ndarray]:
    """Throughput of the last ``window`` chunks in bytes per second [N, window] (oldest first),
    and their validity mask; invalid slots hold 0. Download time includes the RTT."""
    chunk_bytes = fields["chunk_bytes"][:, -window:].astype(np.float64)
    time_s = fields["download_time_s"][:, -window:].astype(np.float64)
    valid = (fields["valid"][:, -window:] > 0.5) & (time_s > 0)
    rate = np.zeros_like(chunk_bytes)
    np.divide(chunk_bytes, time_s, out=rate, where=valid)
    return rate, valid


def harmonic_mean(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Harmonic mean over valid entries per row, summing 1/x oldest first; 0 where none is valid."""
    inv_sum = np.zeros(values.shape[0], dtype=np.float64)
    for column in range(values.shape[1]):
        ok = valid[:, column]
        inv_sum[ok] += 1.0 / values[ok, column]
    count = valid.sum(axis=1)
    out = np.zeros_like(inv_sum)
    has = count > 0
    out[has] = 1.0 / (inv_sum[has] / count[has])
    return out
