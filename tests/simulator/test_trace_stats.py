"""Trace statistics: hand-checked weights, and the MANIFEST table reproduced on the real folders."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.traces import load_trace_dir, trace_stats
from simulator.traces.model import Trace
from tests.conftest import SHARED


def test_time_weighting_by_interval_to_next_sample():
    # 1 Mbps for 1 s, 3 Mbps for 3 s, then 0 Mbps weighted by the median interval (of 1 s and 3 s: 2 s)
    trace = Trace("t", np.array([0.0, 1.0, 4.0]), np.array([1.0, 3.0, 0.0]))
    stats = trace_stats([trace])
    assert stats["mean_mbps"] == pytest.approx((1 * 1 + 3 * 3 + 0 * 2) / 6)
    assert stats["zero_share"] == pytest.approx(2 / 6)
    # sorted: 0 (2 s), 1 (1 s), 3 (3 s): half of the 6 s is reached at 1 Mbps
    assert stats["median_mbps"] == 1.0 and stats["p10_mbps"] == 0.0 and stats["p90_mbps"] == 3.0
    assert stats["count"] == 1 and stats["hours"] == pytest.approx(4 / 3600)


# MANIFEST.md summary table: mean, median, p10, p90 (pooled, time-weighted), hours.
MANIFEST = {
    "broadband/train": (1.30, 0.98, 0.48, 2.75, 25.97),
    "broadband/test": (1.37, 1.00, 0.50, 2.92, 8.96),
    "3g/train": (1.20, 1.01, 0.44, 2.18, 8.51),
    "3g/test": (1.32, 1.10, 0.38, 2.47, 23.27),
    "4g/all/belgium_ghent_sabre": (30.22, 28.77, 9.19, 54.02, 5.01),
    "4g/all/lumos5g_verizon_lte": (40.04, 29.50, 5.00, 94.00, 25.84),
    "5g/all": (522.8, 429.0, 44.0, 1180.0, 19.72),
    "satellite/all": (134.2, 138.4, 19.97, 234.87, 2.41),
}
ZERO_SHARE = {"5g/all": 0.025, "satellite/all": 0.023, "4g/all/belgium_ghent_sabre": 0.013,
              "4g/all/lumos5g_verizon_lte": 0.010}


@pytest.mark.shared
@pytest.mark.parametrize("folder", MANIFEST)
def test_real_folders_match_the_manifest(folder):
    stats = trace_stats(load_trace_dir(SHARED / "traces" / folder))
    mean, median, p10, p90, hours = MANIFEST[folder]
    assert stats["mean_mbps"] == pytest.approx(mean, rel=0.01)
    assert stats["median_mbps"] == pytest.approx(median, rel=0.02)
    assert stats["p10_mbps"] == pytest.approx(p10, rel=0.02)
    assert stats["p90_mbps"] == pytest.approx(p90, rel=0.02)
    # MANIFEST's hours include the last sample's interval; ours end at the last timestamp
    assert stats["hours"] == pytest.approx(hours, rel=0.02)
    assert stats["zero_share"] == pytest.approx(ZERO_SHARE.get(folder, 0.0), abs=0.0015)
