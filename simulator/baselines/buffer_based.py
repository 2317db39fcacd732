"""BB: Pensieve's buffer-based baseline (``test/bb.py``, after Huang et al., SIGCOMM'14)."""

from __future__ import annotations

import numpy as np

from simulator.baselines.base import Baseline


class BufferBased(Baseline):
    """Level 0 below ``reservoir_s`` of buffer, the top level at ``reservoir_s + cushion_s`` and
    above, and ``int((L - 1) (B - reservoir_s) / cushion_s)`` in between (B = newest buffer_s).
    Pensieve uses 5 s and 10 s."""

    name = "bb"

    def __init__(self, video, layout, reservoir_s: float = 5.0, cushion_s: float = 10.0):
        super().__init__(video, layout)
        if reservoir_s < 0 or cushion_s <= 0:
            raise ValueError("bb needs reservoir_s >= 0 and cushion_s > 0")
        self.reservoir_s, self.cushion_s = float(reservoir_s), float(cushion_s)

    def act(self, obs: np.ndarray) -> np.ndarray:
        buffer_s = self.newest(self.fields(obs), "buffer_s")
        top = self.video.n_levels - 1
        ramp = top * (buffer_s - self.reservoir_s) / self.cushion_s
        levels = np.where(buffer_s < self.reservoir_s, 0,
                          np.where(buffer_s >= self.reservoir_s + self.cushion_s, top, ramp))
        return np.clip(levels.astype(np.int32), 0, top)  # astype truncates toward zero, like int()
