"""The hostile-code corpus, S0 part: rejected by reading alone, and nothing was executed."""

from __future__ import annotations

import time

import pytest

from llmabr.design.format import detect_kind
from llmabr.sandbox.static import check_design_sources
from tests.llmabr.hostile.s0_cases import S0_CASES
from tests.llmabr.hostile.s1_cases import GOOD_NET, GOOD_STATE


@pytest.mark.parametrize("case_id, state_source, net_source, check, fragment", S0_CASES, ids=[c[0] for c in S0_CASES])
def test_hostile_design_is_rejected_at_s0(case_id, state_source, net_source, check, fragment):
    result = check_design_sources(state_source, net_source or GOOD_NET, detect_kind(state_source))
    assert not result.passed
    matching = [f for f in result.findings if f.check == check and fragment in f.message]
    assert matching, f"expected a {check!r} finding with {fragment!r}, got {[(f.check, f.message) for f in result.findings]}"


def test_s0_executes_nothing(tmp_path):
    marker = tmp_path / "executed"
    source = f"import torch\nopen({str(marker)!r}, 'w').write('x')\n\n\ndef state(m):\n    return {{}}\n"
    assert not check_design_sources(source, GOOD_NET).passed
    assert not marker.exists()


def test_the_good_design_passes_and_the_whole_corpus_takes_milliseconds():
    assert check_design_sources(GOOD_STATE, GOOD_NET).passed
    start = time.perf_counter()
    for _, state_source, net_source, _, _ in S0_CASES:
        check_design_sources(state_source, net_source or GOOD_NET, detect_kind(state_source))
    elapsed_s = time.perf_counter() - start
    print(f"S0 on {len(S0_CASES)} hostile designs: {elapsed_s * 1000:.1f} ms")  # reported, not asserted


def test_corpus_has_at_least_thirty_designs():
    from tests.llmabr.hostile.s1_cases import S1_CASES

    assert len(S0_CASES) + len(S1_CASES) >= 30
