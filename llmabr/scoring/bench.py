"""What trusted validation costs: the same training run with validation scored by the trusted
scorer (the default) and in the trainer's own process (the pre-trust way), side by side.

Both arms are full ``train_caged`` runs of one design with identical settings and seed; their
env-steps/s include everything a user waits for (cage start, the caged actor, every validation).
Arms alternate (trusted, local, trusted, local, ...) so drift in machine load hits both alike.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from llmabr.train.caged import train_caged
from llmabr.train.config import TrainConfig


def bench_validation(design_dir: Path, config: TrainConfig, rounds: int = 2, progress=None) -> dict:
    """{"trusted": [steps/s per round], "local": [...], "ratio": median trusted / median local}."""
    rates: dict[str, list[float]] = {"trusted": [], "local": []}
    with tempfile.TemporaryDirectory(prefix="llmabr-bench-val-") as root:
        for index in range(rounds):
            for arm in ("trusted", "local"):
                result = train_caged(design_dir, config, Path(root) / f"{arm}-{index}", wall_s=3600.0,
                                     local_val=arm == "local")
                if result["status"] != "ok":
                    raise RuntimeError(f"the {arm} arm failed: {result['reason']}")
                rates[arm].append(result["steps"] / result["wall_s"])
                if progress is not None:
                    progress(arm, index, rates[arm][-1])
    return {**rates, "ratio": statistics.median(rates["trusted"]) / statistics.median(rates["local"])}
