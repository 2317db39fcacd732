"""Run training in the cage and always come back with a result (``ok`` or ``failed`` with a reason)."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from llmabr.design.format import load_design, write_design
from llmabr.sandbox.cage import CageLimits, run_caged
from llmabr.train.config import TrainConfig, to_dict


def train_caged(design_dir: Path, config: TrainConfig, out_dir: Path, wall_s: float = 3600.0,
                on_poll=None, reference_curve: list[dict] | None = None) -> dict:
    """Train in a caged process whose work folder is ``out_dir``; returns result.json's data."""
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir}: run folder exists and is not empty; choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_design(load_design(design_dir), out_dir / "design")
    if config.traces != "synthetic":  # the cage runs elsewhere: absolute paths
        config = replace(config, traces=str(Path(config.traces).resolve()))
    if config.val_traces:
        config = replace(config, val_traces=str(Path(config.val_traces).resolve()))
    (out_dir / "request.json").write_text(json.dumps({"config": to_dict(config), "reference_curve": reference_curve}))
    limits = CageLimits(wall_s=wall_s, cpu_s=int(wall_s * 2) + 60, address_space_bytes=8 << 30, file_bytes=1 << 30)
    cage = run_caged([sys.executable, "-I", "-m", "llmabr.train.entry", "request.json"], out_dir, limits,
                     on_poll=on_poll)
    try:
        result = json.loads((out_dir / "result.json").read_text())
    except (OSError, ValueError):
        result = {"status": "failed", "reason": f"the trainer process was {cage.describe()} before writing a result"
                                                + _last_line(cage.stderr_tail)}
    if cage.timed_out:
        result = {**result, "status": "failed", "reason": f"training was {cage.describe()}"}
    result["cage"] = {"returncode": cage.returncode, "timed_out": cage.timed_out, "wall_s": cage.wall_s,
                      "isolation": cage.isolation}
    (out_dir / "result.json").write_text(json.dumps(result, indent=1, default=float))
    shutil.rmtree(out_dir / "tmp", ignore_errors=True)
    return result


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return f" ({lines[-1][:300]})" if lines else ""


def evaluate_caged(run_dir: Path, traces: str | Path, video: str, mode: str, qoe: str, weights, out_dir: Path,
                   wall_s: float = 1800.0):
    """Score a trained run's ``weights`` (one file name, or a list) on ``traces`` in a caged process.

    Returns the per-trace rows (a dict of rows per weights file for a list), or raises
    ``RuntimeError`` with the reason (the design's own error, or what the cage did to it).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "request.json").write_text(json.dumps({
        "run_dir": str(Path(run_dir).resolve()), "traces": str(Path(traces).resolve()), "video": video,
        "mode": mode, "qoe": qoe, "weights": weights}))
    cage = run_caged([sys.executable, "-I", "-m", "llmabr.train.eval_entry", "request.json"], out_dir,
                     CageLimits(wall_s=wall_s, cpu_s=int(wall_s * 2)))
    produced = out_dir / ("per_checkpoint.json" if isinstance(weights, list) else "per_trace.json")
    if not produced.exists():
        error = out_dir / "error.json"
        reason = json.loads(error.read_text())["reason"] if error.exists() else cage.describe()
        raise RuntimeError(f"evaluating the design failed: {reason}" + _last_line(cage.stderr_tail))
    return json.loads(produced.read_text())
