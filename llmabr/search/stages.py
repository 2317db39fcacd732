"""One evaluation stage of one design, as a plain function: what a Ray task runs.

Each function is idempotent (a retried task - Ray retries when a worker dies - starts its stage
folder afresh) and returns a small JSON-able dict; design code runs only inside the cages these
functions start, never in the worker itself.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from llmabr.train.config import from_dict


def check(design_dir: str, normalization: str = "reject") -> dict:
    """S0 + S1. Returns {"passed", "reason", "s1_s"}; writes check.json next to the design."""
    from llmabr.sandbox.checks import CheckConfig, check_design

    report = check_design(Path(design_dir), CheckConfig(normalization=normalization))
    (Path(design_dir) / "check.json").write_text(json.dumps(report.to_dict(), indent=1, default=float))
    return {"passed": bool(report.passed), "reason": "" if report.passed else report.summary(),
            "rejected_at": report.rejected_at}


def train(design_dir: str, config_dict: dict, out_dir: str, reference_curve: list[dict] | None = None,
          wall_s: float = 3600.0, val_yardsticks: dict | None = None) -> dict:
    """S2 (with ``reference_curve`` and early stopping) or S3 (one seed): PPO in the cage."""
    from llmabr.train.caged import train_caged

    out = Path(out_dir)
    shutil.rmtree(out, ignore_errors=True)  # a retried task starts over
    config = from_dict(config_dict)
    if reference_curve is not None:
        config = replace(config, early_stop=replace(config.early_stop, enabled=True))
    result = train_caged(Path(design_dir), config, out, wall_s=wall_s, reference_curve=reference_curve,
                         val_yardsticks=val_yardsticks)
    curve_path = out / "curve.json"
    result["curve"] = json.loads(curve_path.read_text()) if curve_path.exists() else []
    return result


def test(run_dir: str, test_traces: str, video: str, mode: str, qoe: str, trace_format: str = "auto") -> dict:
    """The deterministic test protocol on held-out traces for a trained run's validation-best policy
    (trusted: the simulator runs in this worker, the design answers levels from a caged process)."""
    from llmabr.train.caged import evaluate_caged
    from llmabr.train.evaluate import summarize

    out = Path(run_dir) / "test"
    shutil.rmtree(out, ignore_errors=True)
    try:
        rows = evaluate_caged(Path(run_dir), test_traces, video, mode, qoe, "policy_best.pt", out, wall_s=900.0,
                              trace_format=trace_format)
    except RuntimeError as error:
        return {"status": "failed", "reason": f"test: {error}"}
    out.mkdir(parents=True, exist_ok=True)
    (out / "per_trace.json").write_text(json.dumps(rows))  # the model card of an export reads it
    return {"status": "ok", "rows": rows, "summary": summarize(rows)}
