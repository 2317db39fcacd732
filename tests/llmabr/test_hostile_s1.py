"""The hostile-code corpus, S1 part: designs that S0 lets through and the caged probe must reject.

Every case asserts the stage and the check that rejects it, words of the reason, and that the
parent is unharmed: no process left from the cage and no file written outside the sandbox folder
(one case, run with S0 skipped as if S0 had missed it, tries to write one).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from llmabr.design.format import Design, detect_kind, write_design
from llmabr.sandbox.cage import processes_in, session_processes
from llmabr.sandbox.checks import CheckConfig, check_design, run_s1
from llmabr.sandbox.report import CheckReport
from tests.conftest import wait_for
from tests.llmabr.hostile.s1_cases import GOOD_NET, GOOD_STATE, NADA_S1_CASES, S1_CASES

DEADLINE_CASES = {"infinite_loop", "busy_counter"}
ROOT = os.geteuid() == 0


def tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


@pytest.fixture
def run_check(tmp_path):
    def run(state_source, net_source, skip_s0=False, **config_changes):
        design = Design(name="hostile", state_source=state_source, net_source=net_source, network="any",
                        kind=detect_kind(state_source))
        folder = write_design(design, tmp_path / "design")
        sandboxes = tmp_path / "sandboxes"
        sandboxes.mkdir(exist_ok=True)
        config = replace(CheckConfig(workdir_base=str(sandboxes)), **config_changes)
        before_here = tree(tmp_path)
        if skip_s0:  # as if S0 had missed what the source does: the cage alone stands in the way
            report = CheckReport(design=design.name)
            run_s1(design, report, config)
            report.passed = all(check.passed for check in report.checks)
            report.rejected_at = None if report.passed else "S1"
        else:
            report = check_design(folder, config)
        # the parent is unharmed: nothing left running (polled: a pid namespace's teardown is
        # asynchronous), nothing written outside the sandbox
        if report.cage:
            assert session_processes(report.cage["session_id"]) == []
        assert wait_for(lambda: processes_in(sandboxes) == [], timeout_s=5.0), processes_in(sandboxes)
        assert os.listdir(sandboxes) == []  # the sandbox folder itself was removed
        assert tree(tmp_path) - before_here <= {"sandboxes"}
        return report
    return run


def test_the_good_design_of_the_corpus_passes(run_check):
    report = run_check(GOOD_STATE, GOOD_NET)
    assert report.passed, report.summary()
    assert [check.name for check in report.checks][-1] == "export"


@pytest.mark.parametrize("case_id, state_source, net_source, check, fragment", S1_CASES + NADA_S1_CASES,
                         ids=[c[0] for c in S1_CASES + NADA_S1_CASES])
def test_hostile_design_is_rejected_at_s1(run_check, case_id, state_source, net_source, check, fragment):
    changes = {"limits": replace(CheckConfig().limits, wall_s=6.0)} if case_id in DEADLINE_CASES else {}
    report = run_check(state_source, net_source or GOOD_NET, **changes)
    assert not report.passed and report.rejected_at == "S1", report.summary()
    assert all(c.passed for c in report.checks if c.stage == "S0")
    failed = [c for c in report.checks if not c.passed]
    assert failed[0].name == check, report.summary()
    assert fragment in failed[0].reason, failed[0].reason


@pytest.mark.skipif(not ROOT, reason="without root the cage has no mount namespace: the file system stays writable")
def test_a_write_outside_the_sandbox_that_s0_missed_fails_in_the_cage_and_leaves_no_file(run_check, tmp_path):
    """torch.save names `.save`, which S0 refuses; run S1 alone, as if S0 had missed it: the cage's root
    holds only Python, the package and the work folder, so the write to a path beside the sandbox fails
    there, and the fixture's check that no file appeared outside the sandbox has something to catch."""
    outside = tmp_path / "stolen.pt"
    state = GOOD_STATE.replace("    top_kbps = m[\"ladder_kbps\"][:, -1:]\n",
                               f"    top_kbps = m[\"ladder_kbps\"][:, -1:]\n    torch.save(top_kbps, {str(outside)!r})\n")
    assert "torch.save" in state
    report = run_check(state, GOOD_NET, skip_s0=True)
    assert not report.passed and report.rejected_at == "S1", report.summary()
    failed = [c for c in report.checks if not c.passed]
    assert failed[0].name == "features" and "state() raised" in failed[0].reason, failed[0].reason
    assert any(words in failed[0].reason for words in ("Read-only file system", "No such file or directory"))
    assert not outside.exists()
