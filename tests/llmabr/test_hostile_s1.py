"""The hostile-code corpus, S1 part: designs that S0 lets through and the caged probe must reject.

Every case asserts the stage and the check that rejects it, words of the reason, and that the
parent is unharmed: no process left from the cage, no file written outside the sandbox folder,
and this process still responsive.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from llmabr.design.format import Design, detect_kind, write_design
from llmabr.sandbox.cage import processes_in, session_processes
from llmabr.sandbox.checks import CheckConfig, check_design
from tests.llmabr.hostile.s1_cases import GOOD_NET, GOOD_STATE, NADA_S1_CASES, S1_CASES

DEADLINE_CASES = {"infinite_loop", "busy_counter"}


def tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


@pytest.fixture
def run_check(tmp_path):
    def run(state_source, net_source, **config_changes):
        design = Design(name="hostile", state_source=state_source, net_source=net_source, network="any",
                        kind=detect_kind(state_source))
        folder = write_design(design, tmp_path / "design")
        sandboxes = tmp_path / "sandboxes"
        sandboxes.mkdir(exist_ok=True)
        config = replace(CheckConfig(workdir_base=str(sandboxes)), **config_changes)
        before_here = tree(tmp_path)
        report = check_design(folder, config)
        time.sleep(0.1)
        # the parent is unharmed: nothing left running, nothing written outside the sandbox
        if report.cage:
            assert session_processes(report.cage["session_id"]) == []
        assert processes_in(sandboxes) == []
        assert os.listdir(sandboxes) == []  # the sandbox folder itself was removed
        assert tree(tmp_path) - before_here <= {"sandboxes"}
        # (writes anywhere else are impossible: the cage mounts everything but its folder read-only,
        # which tests/llmabr/test_cage.py checks directly)
        assert sum(range(10)) == 45
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
