"""Recording IDs (simulator.traces.groups): the rules the splits and the bootstrap share, checked on
every name of the committed split lists (read as text: no ../shared needed)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from simulator.paths import REPO_ROOT
from simulator.traces.groups import ID_RULES, TraceIdError, fcc_id, norway_test_id, recording_id

SPLITS = REPO_ROOT / "traces" / "splits"


def _load_make_splits():
    if "make_splits" in sys.modules:  # tests/simulator/test_splits.py loads it the same way
        return sys.modules["make_splits"]
    spec = importlib.util.spec_from_file_location("make_splits", REPO_ROOT / "experiments" / "make_splits.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_splits"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


make_splits = _load_make_splits()
NETWORKS = {network.name: network for network in make_splits.NETWORKS}


def listed_paths(network: str, side: str) -> list[str]:
    """The paths of one split list, relative to ../shared/traces (the lists carry no ``root:`` line)."""
    lines = [line.strip() for line in (SPLITS / network / f"{side}.txt").read_text().splitlines()]
    paths = [line for line in lines if line and not line.startswith("#")]
    assert not any(line.startswith("root:") for line in paths)
    return paths


def header_id_count(network: str, side: str) -> int:
    first = (SPLITS / network / f"{side}.txt").read_text().splitlines()[0]
    return int(re.search(r", (\d+) IDs$", first).group(1))


ALL_LISTS = [(network.name, side) for network in make_splits.NETWORKS for side in make_splits.side_order(network)]


@pytest.mark.parametrize("name, expected", [
    ("test_fcc_trace_10652_http---www.amazon.com_1020_0", "fcc:10652"),
    ("trace_10652_http---www.cnn.com", "fcc:10652"),  # a train window and a test trace of one unit
    ("000_trace_942154_http---www.ebay.com_0", "fcc:942154"),
    ("norway_ferry_13", "norway:norway_ferry_13"),  # the train file ...
    ("norway_ferry_13_0", "norway:norway_ferry_13"),  # ... and a test window of the same trace
    ("bus.ljansbakken-oslo-report.2010-09-29_1628CEST.log_320",
     "norway:bus.ljansbakken-oslo-report.2010-09-29_1628CEST.log"),
    ("test_norway_bus.ljansbakken-oslo-report.2010-09-29_1628CEST.log_540_0",
     "norway:bus.ljansbakken-oslo-report.2010-09-29_1628CEST.log"),
    ("report_bus_0011.json", "belgium:report_bus_0011"),
    ("4g_trace_walking_50008_a", "lumos-lte:50008"),
    ("4g_trace_driving_60044_dr", "lumos-lte:60044"),
    ("5g_trace_104_driving", "lumos-5g:104"),
    ("20240528_135951123_tcp_downlink_135954150.csv", "starlink:20240528_135951123"),
    ("4g/all/belgium_ghent_sabre/report_bus_0011.json", "belgium:report_bus_0011"),  # a path: its file name
])
def test_recording_ids(name, expected):
    assert recording_id(name) == expected


@pytest.mark.parametrize("name", [
    "synth_4g_0_3", "hand_0", "5g_trace_new_format.csv", "norway_bus", "my_capture.log_3",
    "trace_12_no_url", "users/own/trace.txt",
])
def test_names_no_rule_understands_are_their_own_group(name):
    assert recording_id(name) == name


def test_rules_refuse_names_they_do_not_understand():
    with pytest.raises(TraceIdError, match="needs an ID rule in simulator/traces/groups.py"):
        norway_test_id("my_capture.log_3")  # has ".log_" but is no Oslo log window
    with pytest.raises(TraceIdError, match="not a FCC file name"):
        fcc_id("norway_bus_1")
    assert make_splits.SplitError is TraceIdError  # the script stops on the same error


@pytest.mark.parametrize("network, side", ALL_LISTS)
def test_listed_names_map_to_the_ids_make_splits_uses(network, side):
    paths = listed_paths(network, side)
    for path in paths:
        file_name = Path(path).name
        matching = [rule.space for rule in ID_RULES if _accepts(rule, file_name)]
        assert len(matching) == 1, f"{path}: rules {matching} (exactly one must match)"
        assert {recording_id(file_name)} == make_splits.ids_of(NETWORKS[network], [path]), path
    assert len({recording_id(Path(path).name) for path in paths}) == header_id_count(network, side)


def _accepts(rule, file_name: str) -> bool:
    try:
        rule.trace_id(file_name)
    except TraceIdError:
        return False
    return True


@pytest.mark.parametrize("network", list(NETWORKS))
def test_sides_share_no_recording(network):
    ids = {side: {recording_id(Path(path).name) for path in listed_paths(network, side)}
           for side in make_splits.side_order(NETWORKS[network])}
    test_side = "test-idfree" if network == "broadband" else "test"
    for first, second in (("train", "val"), ("train", test_side), ("val", test_side)):
        assert not ids[first] & ids[second], f"{network}: {sorted(ids[first] & ids[second])[:3]}"
    if network == "broadband":
        # The source's own test set reuses training units (MANIFEST.md): 35 of its 45.
        assert len(ids["test"]) == 45 and len(ids["test"] & (ids["train"] | ids["val"])) == 35
        assert ids["test-idfree"] == ids["test"] - ids["train"] - ids["val"]
