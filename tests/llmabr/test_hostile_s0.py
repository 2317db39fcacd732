"""The hostile-code corpus, S0 part: rejected by reading alone, and nothing was executed."""

from __future__ import annotations

import time

import pytest

from llmabr.design.format import detect_kind
from llmabr.sandbox.static import check_design_sources
from tests.llmabr.hostile.s0_cases import NADA_RUNTIME_CASES, NADA_S0_CASES, S0_CASES
from tests.llmabr.hostile.s1_cases import GOOD_NET, GOOD_STATE


@pytest.mark.parametrize("case_id, state_source, net_source, check, fragment", S0_CASES + NADA_S0_CASES,
                         ids=[c[0] for c in S0_CASES + NADA_S0_CASES])
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


def test_the_good_design_of_the_corpus_passes_s0_without_a_finding():
    result = check_design_sources(GOOD_STATE, GOOD_NET)
    assert result.passed and result.findings == []


@pytest.mark.benchmark
def test_s0_reads_the_whole_corpus_in_milliseconds_of_cpu():
    """S0 runs in the orchestrator for every proposal: a few ms of CPU per design (CPU time, not wall
    time, so a busy machine does not fail it; a benchmark, outside the default suite)."""
    start_cpu_s = time.process_time()
    for _, state_source, net_source, _, _ in S0_CASES:
        check_design_sources(state_source, net_source or GOOD_NET, detect_kind(state_source))
    per_design_ms = (time.process_time() - start_cpu_s) * 1000 / len(S0_CASES)
    print(f"S0 on {len(S0_CASES)} hostile designs: {per_design_ms:.2f} ms of CPU per design")
    assert per_design_ms < 20.0


def test_corpus_has_at_least_thirty_designs():
    from tests.llmabr.hostile.s1_cases import S1_CASES

    assert len(S0_CASES) + len(S1_CASES) >= 30


@pytest.mark.parametrize("case_id, state_source, fragment", NADA_RUNTIME_CASES, ids=[c[0] for c in NADA_RUNTIME_CASES])
def test_the_loader_refuses_what_s0_refuses_in_nada_designs(case_id, state_source, fragment, tmp_path, monkeypatch):
    """Defence in depth: executed without S0 (as if it had missed them), the same designs fail at the
    loader's import or at its view of scipy and pandas, before any file is read or written."""
    import pandas

    from llmabr.design.loader import execute

    assert detect_kind(state_source) == "nada"
    monkeypatch.chdir(tmp_path)
    series_before = pandas.Series
    with pytest.raises((ImportError, AttributeError)) as raised:
        namespace = execute(state_source, "state.py", nada=True)
        namespace["state_func"]([1.0] * 8, [4.0] * 8, [1.0] * 8, [1e5] * 8, [1e5] * 6, 40, 48, [300.0] * 6)
    assert fragment in str(raised.value)
    assert pandas.Series is series_before and not list(tmp_path.iterdir())


def test_paper_style_computation_passes_s0_and_runs():
    """What the paper's prompt invites stays allowed: scipy trends, pandas rolling means, by-name aggregations."""
    from llmabr.design.loader import execute
    from tests.llmabr.hostile.s0_cases import NADA_SIGNATURE

    source = ("import numpy as np\nimport pandas as pd\nimport scipy\nfrom scipy import stats, signal\n\n\n"
              + NADA_SIGNATURE
              + "    rate = [video_chunk_size_bytes_list[-i] / delay_second_list[-i] / 1e6 for i in range(8, 0, -1)]\n"
                "    series = pd.Series(rate)\n"
                "    smooth = series.rolling(3).mean().bfill()\n"
                "    summary = series.agg(['mean', 'max']).to_numpy().tolist() + [series.apply(np.log1p).iloc[-1]]\n"
                "    trend = stats.linregress(np.arange(8), rate).slope + scipy.special.expit(0.0)\n"
                "    text = series.to_string()\n"
                "    return {'normal_states': [[trend, len(text) / 1e3], summary], "
                "'time_series_states': [smooth.to_list(), list(signal.medfilt(np.array(rate), 3))]}\n")
    assert check_design_sources(source, None, "nada").passed, check_design_sources(source, None, "nada").findings
    out = execute(source, "state.py", nada=True)["state_func"](
        [300.0] * 8, [4.0] * 8, [1.0] * 8, [1.5e5] * 8, [1e5] * 6, 40, 48, [300.0] * 6)
    assert len(out["time_series_states"][0]) == 8
