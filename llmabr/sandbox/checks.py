"""The cheap checks before any training: S0 (static, in-process) then S1 (probe, in the cage).

``check_design(path_or_design, CheckConfig())`` returns a ``CheckReport``. S0 reads the source
and never executes it; S1 copies the design into an empty work directory with the probe batches,
runs ``llmabr.sandbox.probe`` there under ``llmabr.sandbox.cage``, and reads back its report. If
the cage killed the probe (deadline, CPU or memory limit, a crash), the check that was running
fails with what happened.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from llmabr.design.format import Design, DesignError, load_design, write_design
from llmabr.sandbox.cage import CageLimits, run_caged
from llmabr.sandbox.probe_data import probe_batches
from llmabr.sandbox.report import CheckReport
from llmabr.sandbox.static import check_design_sources
from simulator.traces import SYNTH_TYPES


@dataclass(frozen=True)
class CheckConfig:
    """Thresholds of S1 and the cage it runs in (all overridable from the CLI / TOML)."""

    max_abs_p99: float = 20.0  # per feature column, on the design's network types
    max_abs: float = 1000.0
    # "reject" (default) or "warn": a design whose features exceed the limits passes S1 with the
    # finding kept in its report (for replaying published designs as they are, e.g. experiments/nada_replay.py)
    normalization: str = "reject"
    alone_rows: int = 16  # rows recomputed alone for the batch-independence check
    batch_tolerance: float = 1e-5
    max_params: int = 5_000_000
    max_feature_dims: int = 4096
    max_latent_dim: int = 4096
    max_latency_ms_1: float = 25.0
    max_latency_ms_256: float = 250.0
    # NADA designs call their state_func once per player in Python, and the paper's prompt invites
    # scipy and pandas, whose calls cost 0.1-0.5 ms each (scipy.stats.linregress ~0.4 ms): about
    # 4 ms per player. (Training caches features per row, so PPO's update does not pay it again.)
    max_latency_ms_256_nada: float = 1000.0
    rows_per_network: int = 128
    history_len: int = 16
    # S1 needs torch (~0.7 GB of address space) and the probe batches: 3 GiB is ample.
    limits: CageLimits = field(default_factory=lambda: CageLimits(wall_s=30.0, address_space_bytes=3 << 30))
    workdir_base: str | None = None  # where sandbox folders go (default: the system temp dir)
    keep_workdir: bool = False


def _target_networks(design: Design) -> list[str]:
    network = (design.network or "any").lower()
    return [network] if network in SYNTH_TYPES else list(SYNTH_TYPES)


def run_s0(design: Design, report: CheckReport) -> bool:
    start = time.perf_counter()
    result = check_design_sources(design.state_source, design.net_source, design.kind)
    report.s0_ms = (time.perf_counter() - start) * 1000.0
    by_check: dict[str, list] = {}
    for finding in result.findings:
        by_check.setdefault(finding.check, []).append(finding)
    for check, findings in by_check.items():
        report.add("S0", check, False, "; ".join(f.message for f in findings[:5]),
                   lines=[f.line for f in findings])
    if result.passed:
        report.add("S0", "static", True)
    return result.passed


def run_s1(design: Design, report: CheckReport, config: CheckConfig, probe: tuple[dict, str] | None = None) -> None:
    batches, source = probe or probe_batches(config.rows_per_network, config.history_len)
    report.probe_source = source
    workdir = Path(tempfile.mkdtemp(prefix="llmabr-s1-", dir=config.workdir_base))
    try:
        write_design(design, workdir / "design")
        np.savez(workdir / "probe.npz", **batches)
        row_size = next(iter(batches.values())).shape[1]
        request = {
            "design_name": design.name, "design_path": str(design.path or ""), "kind": design.kind,
            "shared_trunk": design.shared_trunk, "history_len": config.history_len,
            "n_levels": (row_size - 6 * config.history_len - 2) // 2,
            "target_networks": _target_networks(design), "probe_source": source,
            "config": {key: value for key, value in asdict(config).items() if key != "limits"},
        }
        (workdir / "request.json").write_text(json.dumps(request))
        import sys

        cage = run_caged([sys.executable, "-I", "-m", "llmabr.sandbox.probe", "request.json"], workdir, config.limits)
        report.cage = cage.to_dict()
        try:
            probe = json.loads((workdir / "report.json").read_text())
        except (OSError, ValueError):
            probe = {"checks": [], "running": "start"}
        merged = CheckReport.from_dict({k: v for k, v in probe.items() if k != "running"}) if probe.get("design") else None
        if merged is not None:
            report.checks += [c for c in merged.checks]
            report.features, report.param_count = merged.features, merged.param_count
            report.latency_ms, report.exportable, report.s1_s = merged.latency_ms, merged.exportable, merged.s1_s
        running = probe.get("running")
        clean_exit = cage.returncode == 0 and not cage.timed_out
        if running or not clean_exit:
            what = running or "after the last check"
            detail = cage.describe()
            if not cage.timed_out and cage.returncode not in (0, None):
                last_line = cage.stderr_tail.strip().splitlines()[-1:] or [""]
                detail += f" ({last_line[0][:300]})" if last_line[0] else ""
            report.add("S1", what, False, f"the probe process was {detail} while running check {what!r}: "
                                          "look for unbounded loops, huge allocations or process/thread tricks",
                       cage=cage.describe())
        if report.s1_s is None:
            report.s1_s = cage.wall_s
    finally:
        if not config.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def check_design(design: Design | str | Path, config: CheckConfig = CheckConfig(),
                 probe: tuple[dict, str] | None = None) -> CheckReport:
    """S0 then S1 on one design folder (or loaded ``Design``); never raises for a bad design.

    ``probe``: S1's probe batches as ``probe_batches()`` returns them, when the caller built them
    (a search's driver does, so that every node of a cluster checks on the same rows)."""
    if not isinstance(design, Design):
        path = Path(design)
        try:
            design = load_design(path)
        except DesignError as error:
            report = CheckReport(design=path.name, path=str(path))
            report.add("S0", "format", False, str(error))
            report.rejected_at = "S0"
            return report
    report = CheckReport(design=design.name, path=str(design.path or ""), kind=design.kind)
    if not run_s0(design, report):
        report.rejected_at = "S0"
        return report
    report.stage_reached = "S1"
    run_s1(design, report, config, probe)
    report.passed = all(check.passed for check in report.checks)
    report.rejected_at = None if report.passed else "S1"
    return report
