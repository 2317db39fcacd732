"""Synthetic traces: calibrated to the real sets' statistics, structured per type, reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from llmabr.cli.main import main
from simulator.traces import SYNTH_TYPES, generate, load_trace_dir, trace_stats
from simulator.traces.synth import settings

# relative tolerance per statistic (zero share: absolute); wide enough for seed-to-seed spread
# at 120 traces, narrow enough that a generator off by a factor fails
REL_TOLERANCE = {"mean_mbps": 0.2, "median_mbps": 0.2, "p10_mbps": 0.3, "p90_mbps": 0.3, "cv_median": 0.25}


@pytest.fixture(scope="module", params=SYNTH_TYPES)
def synthetic(request):
    network_type = request.param
    return network_type, {seed: trace_stats(generate(network_type, 120, seed=seed)) for seed in (0, 1)}


def test_statistics_meet_the_targets(synthetic):
    network_type, by_seed = synthetic
    targets = settings(network_type)["targets"]
    for seed, stats in by_seed.items():
        for key, tolerance in REL_TOLERANCE.items():
            assert stats[key] == pytest.approx(targets[key], rel=tolerance), f"{network_type} seed {seed}: {key}"
        assert stats["zero_share"] == pytest.approx(targets["zero_share"], abs=0.01), f"{network_type} {seed}"
        assert stats["acf1_median"] == pytest.approx(targets["acf1_median"], abs=0.1), f"{network_type} {seed}"


def test_targets_are_the_manifest_numbers():
    """The calibration targets are the real sets' statistics, not numbers tuned to the generator."""
    assert settings("broadband")["targets"]["median_mbps"] == 0.98
    assert settings("5g")["targets"]["p90_mbps"] == 1180.0
    assert settings("satellite")["targets"]["p10_mbps"] == 20.0


def test_satellite_changes_concentrate_at_15_s_slot_starts():
    jumps_at_boundary, jumps_inside = [], []
    for trace in generate("satellite", 30, seed=3):
        log_bw = np.log(np.maximum(trace.bw_mbps[1:], 1.0))
        jumps = np.abs(np.diff(log_bw))
        at_boundary = (np.round(trace.time_s[2:], 6) % 15.0) == 0.5  # first sample of a new slot
        jumps_at_boundary += jumps[at_boundary].tolist()
        jumps_inside += jumps[~at_boundary].tolist()
    assert np.mean(jumps_at_boundary) > 2.0 * np.mean(jumps_inside)


def test_5g_switches_between_line_of_sight_lte_and_outage():
    bw = np.concatenate([trace.bw_mbps for trace in generate("5g", 20, seed=0)])
    assert np.mean(bw == 0) > 0.005  # outages
    assert np.mean((bw > 30) & (bw < 200)) > 0.1  # LTE fallback / blocked
    assert np.mean(bw > 600) > 0.2  # line of sight


@pytest.mark.parametrize("network_type", SYNTH_TYPES)
def test_same_seed_same_traces_other_seed_differs(network_type):
    first, again, other = (generate(network_type, 3, seed=s) for s in (4, 4, 5))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.bw_mbps, b.bw_mbps)
    assert not np.array_equal(first[0].bw_mbps[:50], other[0].bw_mbps[:50])
    assert [t.name for t in generate(network_type, 5, seed=4)][:3] == [t.name for t in first]


def test_unknown_type_is_a_clear_error():
    with pytest.raises(ValueError, match="choose from broadband, 3g, 4g, 5g, satellite"):
        generate("wifi", 3)


def test_cli_synth_writes_loadable_traces_and_stats_reads_them(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["traces", "synth", "--type", "3g", "--count", "4", "--out", str(out), "--seed", "2"]) == 0
    traces = load_trace_dir(out)
    assert len(traces) == 4
    np.testing.assert_allclose(traces[0].bw_mbps, generate("3g", 1, seed=2)[0].bw_mbps)
    capsys.readouterr()
    assert main(["traces", "stats", str(out), "--json"]) == 0
    assert '"count": 4' in capsys.readouterr().out


def test_cli_stats_reports_a_bad_trace_without_traceback(tmp_path, capsys):
    (tmp_path / "bad").write_text("0 1\n1 -2\n")
    assert main(["traces", "stats", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "bad:2" in err and "negative bandwidth" in err and "Traceback" not in err
