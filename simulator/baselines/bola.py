"""BOLA-BASIC (Spiteri et al., INFOCOM'16), as in Sabre and Genet: a buffer-only utility rule."""

from __future__ import annotations

import numpy as np

from simulator.baselines.base import Baseline


class Bola(Baseline):
    """Pick the level maximizing (V (u_l + gp) - B) / S_l, with B the newest buffer_s.

    S_l = ladder_kbps[l] x chunk_s is level l's nominal chunk size and u_l = ln(S_l / S_0) its
    utility (BOLA's ln-size utility; nominal sizes keep the rule stable on VBR chunks). V and gp
    are set from two buffer levels, as Puffer's BOLA-BASIC does (Sabre's Vp/gp in other words):

    * at ``min_buffer_s`` the objectives of levels 0 and 1 are equal, so BOLA stays at level 0
      below it (dash.js's MINIMUM_BUFFER_S = 10 s);
    * V (u_top + gp) = ``target_buffer_s``: above it every objective is negative, i.e. BOLA would
      idle (dash.js's BUFFER_TARGET_S = 30 s; the simulator's 60 s cap then never binds for BOLA).

    With Envivio's ladder and the defaults (V = 6.11 s, gp = 2.25) the level climbs from 0 at
    10 s of buffer to the top at about 22.5 s. Ties pick the lower level, as Sabre's strict ``>``.
    """

    name = "bola"

    def __init__(self, video, layout, min_buffer_s: float = 10.0, target_buffer_s: float = 30.0):
        super().__init__(video, layout)
        if not 0 < min_buffer_s < target_buffer_s:
            raise ValueError("bola needs 0 < min_buffer_s < target_buffer_s")
        self.size_bits = self.ladder_kbps * 1000.0 * video.chunk_s
        self.utility = np.log(self.size_bits / self.size_bits[0])
        ratio = self.size_bits[0] / (self.size_bits[1] - self.size_bits[0])
        self.v_s = (target_buffer_s - min_buffer_s) / (self.utility[-1] + self.utility[1] * ratio)
        self.gp = (target_buffer_s - self.v_s * self.utility[-1]) / self.v_s

    def act(self, obs: np.ndarray) -> np.ndarray:
        buffer_s = self.newest(self.fields(obs), "buffer_s")
        score = (self.v_s * (self.utility[None, :] + self.gp) - buffer_s[:, None]) / self.size_bits[None, :]
        return score.argmax(axis=1).astype(np.int32)  # argmax: first of equal scores
