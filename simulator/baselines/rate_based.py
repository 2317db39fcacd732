"""RB: rate-based baseline (the highest sustainable level under a harmonic-mean estimate)."""

from __future__ import annotations

import numpy as np

from simulator.baselines.base import Baseline, harmonic_mean, throughputs


class RateBased(Baseline):
    """The highest level whose bitrate is <= the harmonic mean throughput of the last ``window``
    valid chunks (chunk_bytes x 8 / download_time_s, RTT included); level 0 if none is."""

    name = "rb"

    def __init__(self, video, layout, window: int = 5):
        super().__init__(video, layout)
        if not 1 <= window <= layout.history_len:
            raise ValueError(f"rb window must be in 1..{layout.history_len}, got {window}")
        self.window = int(window)

    def estimate_kbps(self, obs: np.ndarray) -> np.ndarray:
        rate_bytes_per_s, valid = throughputs(self.fields(obs), self.window)
        return harmonic_mean(rate_bytes_per_s * 8.0 / 1000.0, valid)

    def act(self, obs: np.ndarray) -> np.ndarray:
        estimate_kbps = self.estimate_kbps(obs)
        sustainable = (self.ladder_kbps[None, :] <= estimate_kbps[:, None]).sum(axis=1)
        return np.maximum(sustainable - 1, 0).astype(np.int32)
