"""One evaluation stage of one design, as a plain function: what a Ray task runs.

Tasks carry data, not paths, so a worker on any node of a cluster needs no shared file system:
a stage gets the design's files (``{"state.py": text, ...}``), the config, and the traces, the
video and S1's probe batches as values (the driver puts them in Ray's object store once per
search; Ray hands the worker the value). It works in a scratch folder of its own node's temp
dir, deletes it before returning, and returns a small JSON-able dict plus ``"files"``:
``{relative path: bytes}`` that the driver writes into the archive (check.json; a run's
result.json, curve.json, weights, design/, cage logs; the test rows).

Each function is idempotent (a retried task - Ray retries when a worker or its node dies - starts
from a fresh scratch folder); design code runs only inside the cages these functions start, never
in the worker itself, and every score is computed in the worker, outside the cages.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

from llmabr.design.format import DESIGN_FILES
from llmabr.train.config import from_dict

NOT_RETURNED = ("cage/train_traces.npz",)  # the driver holds these traces already


def read_design_files(folder: Path) -> dict[str, str]:
    """A design folder's files as data (driver side)."""
    return {name: (folder / name).read_text() for name in DESIGN_FILES if (folder / name).is_file()}


def _write_files(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


def _collect(folder: Path) -> dict[str, bytes]:
    # regular files only: a link the caged trainer left in cage/ is not followed out of the run folder
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and not path.is_symlink() and str(path.relative_to(folder)) not in NOT_RETURNED}


def check(design_files: dict, normalization: str = "reject", probe: tuple | None = None) -> dict:
    """S0 + S1. Returns {"passed", "reason", "rejected_at", "files": {"check.json"}}.

    ``probe``: S1's probe batches as ``probe_batches()`` returns them, built by the driver, so that
    every node checks on the same rows whatever trace folders it has."""
    from llmabr.sandbox.checks import CheckConfig, check_design

    with tempfile.TemporaryDirectory(prefix="llmabr-check-") as scratch:
        report = check_design(_write_files(Path(scratch) / "design", design_files),
                              CheckConfig(normalization=normalization), probe=probe)
    data = report.to_dict()
    data["path"] = ""  # the scratch folder is gone; the driver knows where the design lives
    return {"passed": bool(report.passed), "reason": "" if report.passed else report.summary(),
            "rejected_at": report.rejected_at,
            "files": {"check.json": json.dumps(data, indent=1, default=float).encode()}}


def train(design_files: dict, config_dict: dict, data: tuple, reference_curve: list[dict] | None = None,
          wall_s: float = 3600.0, val_yardsticks: dict | None = None) -> dict:
    """S2 (with ``reference_curve`` and early stopping) or S3 (one seed): PPO in the cage.

    ``data``: (training traces, validation traces, video profile), as ``load_data`` returns them.
    Returns result.json's fields, the curve, and the run folder's files."""
    from llmabr.train.caged import train_caged

    config = from_dict(config_dict)
    if reference_curve is not None:
        config = replace(config, early_stop=replace(config.early_stop, enabled=True))
    with tempfile.TemporaryDirectory(prefix="llmabr-train-") as scratch:
        design_dir = _write_files(Path(scratch) / "design", design_files)
        run_dir = Path(scratch) / "run"
        result = train_caged(design_dir, config, run_dir, wall_s=wall_s, reference_curve=reference_curve,
                             val_yardsticks=val_yardsticks, data=data)
        curve_path = run_dir / "curve.json"
        result["curve"] = json.loads(curve_path.read_text()) if curve_path.exists() else []
        result["files"] = _collect(run_dir)
    return result


def test(design_files: dict, weights: bytes, test_data: tuple, mode: str, qoe: str) -> dict:
    """The deterministic test protocol on held-out traces for a trained run's validation-best weights
    (trusted: the simulator runs in this worker, the design answers levels from a caged process).

    ``test_data``: (test traces, video profile)."""
    from llmabr.train.caged import evaluate_caged
    from llmabr.train.evaluate import summarize

    traces, video = test_data
    with tempfile.TemporaryDirectory(prefix="llmabr-test-") as scratch:
        run_dir = Path(scratch)
        _write_files(run_dir / "design", design_files)
        (run_dir / "policy_best.pt").write_bytes(weights)
        try:
            rows = evaluate_caged(run_dir, traces, video, mode, qoe, "policy_best.pt", wall_s=900.0)
        except RuntimeError as error:
            return {"status": "failed", "reason": f"test: {error}"}
    # per_trace.json: the model card of an export reads it from RUN/designs/<name>/train-s<seed>/test/
    return {"status": "ok", "rows": rows, "summary": summarize(rows), "files": {"per_trace.json": json.dumps(rows).encode()}}
