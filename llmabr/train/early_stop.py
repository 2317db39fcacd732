"""S2: stop a run whose validation QoE falls clearly below the seed design's at the same step.

The reference is the seed design's validation curve for the same network type and budget
(``seed_curve_path`` caches it per network, budget and settings). At each validation point at
or after ``min_fraction`` of the budget, the run is compared with the reference interpolated at
the same env step; falling more than ``margin`` below it at ``patience`` consecutive points stops
the run, which is then reported as ``stopped_early`` with the numbers.

``margin`` is on the normalized scale: a share of the distance from BB to the offline optimum on
the validation traces (``scale_qoe`` = QoE_opt - QoE_BB per chunk, computed by the trusted side),
so one rule means the same on broadband (scale ~1 QoE) and on 5g (scale ~tens of QoE).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class EarlyStopConfig:
    enabled: bool = False
    # Chosen on validation only (experiments/s2_early_stop.py, broadband and 4g, results in
    # experiments/results/s2_broadband_v2 and s2_4g): the rule that saved the most steps without stopping a
    # design that ended in the top quartile by validation QoE, on both types and against both reference seeds.
    margin: float = 0.30  # below the seed's curve, as a share of (optimum - BB) on the validation traces
    min_fraction: float = 0.5  # no verdict before this share of the budget
    patience: int = 1  # consecutive validation points below the margin


class EarlyStopRule:
    """Pure decision logic (unit-tested apart from training)."""

    def __init__(self, reference: list[dict], config: EarlyStopConfig, total_steps: int, scale_qoe: float = 1.0):
        if not reference:
            raise ValueError("early stopping needs the seed design's validation curve")
        if not scale_qoe > 0:
            raise ValueError(f"early stopping needs the optimum above BB on the validation traces, got a scale of {scale_qoe}")
        self.scale_qoe, self.margin_qoe = scale_qoe, config.margin * scale_qoe
        self.steps = np.array([point["steps"] for point in reference], dtype=np.float64)
        self.qoe = np.array([point["val_qoe"] for point in reference], dtype=np.float64)
        self.config, self.total_steps, self.strikes = config, total_steps, 0
        self.reason = ""

    def reference_at(self, steps: int) -> float:
        return float(np.interp(steps, self.steps, self.qoe))

    def should_stop(self, steps: int, val_qoe: float) -> bool:
        if steps < self.config.min_fraction * self.total_steps or steps >= self.total_steps:
            return False  # too early for a verdict, or too late for one to save anything
        reference = self.reference_at(steps)
        if val_qoe < reference - self.margin_qoe:
            self.strikes += 1
        else:
            self.strikes = 0
        if self.strikes >= self.config.patience:
            self.reason = (f"stopped early at {steps:,} steps: validation QoE {val_qoe:.3f} stayed more than "
                           f"{self.config.margin:g} of the BB-to-optimum distance ({self.margin_qoe:.3f} QoE) below the "
                           f"seed design's {reference:.3f} at the same step for {self.strikes} checks")
            return True
        return False


def seed_curve_path(cache_dir: Path, network: str, config_dict: dict) -> Path:
    """Where the seed design's curve for these settings is cached (a hash of network and settings)."""
    relevant = {key: value for key, value in config_dict.items() if key not in ("seed", "early_stop")}
    relevant["scored_by"] = "trusted-1"  # curves cached before trusted scoring are never reused
    digest = hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"seed-curve-{network}-{digest}.json"
