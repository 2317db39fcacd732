"""Split lists: the ``.txt`` trace-list loader (no ../shared needed), the ID rules and the cut of
experiments/make_splits.py, and - marked ``shared`` - the committed lists in traces/splits/."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

from simulator.paths import REPO_ROOT
from simulator.traces import TraceError, formats, load_trace_dir, trace_files
from simulator.traces.formats import read_trace_list
from simulator.video import DEFAULT_PROFILE_BY_NETWORK
from tests.conftest import SHARED

SPLITS = REPO_ROOT / "traces" / "splits"


def _load_script():
    spec = importlib.util.spec_from_file_location("make_splits", REPO_ROOT / "experiments" / "make_splits.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_splits"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


make_splits = _load_script()


@pytest.fixture
def trace_root(tmp_path):
    """A small trace tree: two cooked traces in a/, one in b/, and a README that is not a trace."""
    root = tmp_path / "traces"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "one").write_text("0 1.0\n1 2.0\n2 3.0\n")
    (root / "a" / "two").write_text("0 5.0\n1 6.0\n")
    (root / "b" / "three").write_text("0 7.0\n1 8.0\n")
    (root / "a" / "README.md").write_text("# not a trace")
    return root


# -- the list loader -------------------------------------------------------------------------------

def test_root_header_comments_and_blank_lines(trace_root, tmp_path):
    listing = tmp_path / "lists" / "train.txt"
    listing.parent.mkdir()
    # The root is relative to the list's folder; an absolute path is used as is.
    listing.write_text(f"# a comment\n\nroot: ../traces\n  b/three  \n# between\na/one\n\n{trace_root / 'a' / 'two'}\n")
    traces = load_trace_dir(listing)
    assert [t.name for t in traces] == ["three", "one", "two"]  # list order, not sorted
    assert traces[0].bw_mbps.tolist() == [7.0, 8.0]
    assert read_trace_list(listing) == [trace_root / "b" / "three", trace_root / "a" / "one", trace_root / "a" / "two"]


def test_paths_default_to_shared_traces(trace_root, tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "shared_traces", lambda: trace_root)
    listing = tmp_path / "val.txt"
    listing.write_text("# only one of a/\na/two\n")
    assert [t.name for t in load_trace_dir(listing)] == ["two"]  # exactly the listed, not the whole folder
    assert trace_files(listing) == [trace_root / "a" / "two"]


def test_missing_shared_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "shared_traces", lambda: None)
    listing = tmp_path / "test.txt"
    listing.write_text("5g/all/5g_trace_1_driving\n")
    with pytest.raises(TraceError, match=r"relative to \.\./shared/traces, which is absent.*root: DIR") as caught:
        load_trace_dir(listing)
    assert str(listing) in str(caught.value)


def test_missing_listed_trace_names_file_line_and_shared(trace_root, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(f"root: {trace_root}\na/one\na/gone\nb/three\n")
    with pytest.raises(TraceError) as caught:
        load_trace_dir(listing)
    message = str(caught.value)
    assert str(listing) in message and "a/gone (line 3)" in message and "1 of 3" in message
    assert "../shared may be absent" in message


def test_missing_list_file(tmp_path):
    with pytest.raises(TraceError, match="no such trace list file"):
        load_trace_dir(tmp_path / "nope.txt")


@pytest.mark.parametrize("body", ["", "\n\n", "# header only\n# root comment\n", "root: .\n"])
def test_empty_list_is_an_error(tmp_path, body):
    listing = tmp_path / "empty.txt"
    listing.write_text(body)
    with pytest.raises(TraceError, match="names no traces"):
        load_trace_dir(listing)


@pytest.mark.parametrize("body, message, line", [
    ("root: .\na/one\na/one\n", r"a/one is listed twice \(lines 2 and 3\)", 3),
    ("root: .\na/one\nroot: .\n", "'root:' line may appear once, before the first path", 3),
    ("root: nowhere\na/one\n", "root folder .*nowhere does not exist", 1),
    ("0.0 1.5\n1.0 2.5\n", "is trace data, not a path", 1),
])
def test_malformed_lists_name_the_line(trace_root, body, message, line):
    listing = trace_root / "bad.txt"
    listing.write_text(body)
    with pytest.raises(TraceError, match=message) as caught:
        read_trace_list(listing)
    assert caught.value.line == line and caught.value.path == str(listing)


def test_folders_still_load_and_skip_lists_named_splits(trace_root):
    (trace_root / "a" / "splits.txt").write_text("a/one\n")
    assert [t.name for t in load_trace_dir(trace_root / "a")] == ["one", "two"]


# -- ID rules and the cut ----------------------------------------------------------------------

@pytest.mark.parametrize("rule, name, expected", [
    ("fcc_id", "test_fcc_trace_10652_http---www.amazon.com_1020_0", ("10652", "1 s windows")),
    ("fcc_id", "trace_10322_http---edition.cnn.com", ("10322", "5 s traces")),
    ("fcc_id", "007_test_fcc_trace_14731_http---www.facebook.com_1080_0", ("14731", "1 s windows")),
    ("fcc_id", "000_trace_942154_http---www.ebay.com_0", ("942154", "5 s traces")),
    ("norway_train_id", "norway_tram_21", ("norway_tram_21", "tram")),
    ("norway_test_id", "bus.ljansbakken-oslo-report.2010-09-29_1628CEST.log_320",
     ("bus.ljansbakken-oslo-report.2010-09-29_1628CEST.log", "bus")),
    ("norway_test_id", "test_norway_tram.ljabru-jernbanetorget-report.2010-12-09_1244CET.log_540_0",
     ("tram.ljabru-jernbanetorget-report.2010-12-09_1244CET.log", "tram")),
    ("norway_test_id", "norway_ferry_13_0", ("norway_ferry_13", "ferry")),
    ("belgium_id", "report_bus_0011.json", ("report_bus_0011", "bus")),
    ("lumos_lte_id", "4g_trace_walking_50008_a", ("50008", "walking_a")),
    ("lumos_lte_id", "4g_trace_driving_60044_dr", ("60044", "driving")),
    ("lumos_5g_id", "5g_trace_104_driving", ("104", "driving")),
    ("starlink_id", "20240528_135951123_tcp_downlink_135954150.csv", ("20240528_135951123", "20240528")),
])
def test_id_rules(rule, name, expected):
    assert getattr(make_splits, rule)(name) == expected


def test_unknown_file_names_are_refused():
    with pytest.raises(make_splits.SplitError, match="needs an ID rule"):
        make_splits.lumos_5g_id("5g_trace_new_format.csv")


def test_apportion_keeps_the_total_and_the_capacity():
    sizes = {"bicycle": 2, "bus": 11, "car": 8, "foot": 8, "train": 3, "tram": 8}
    counts = make_splits.apportion(sizes, make_splits.TEST_FRACTION, {s: n - 1 for s, n in sizes.items()})
    assert sum(counts.values()) == 6  # round(0.15 x 40)
    assert all(counts[s] <= sizes[s] - 1 for s in sizes)
    # 0.15 x 60 is 9 exactly; float arithmetic would floor 8.999... to 8.
    assert sum(make_splits.apportion({"x": 60}, make_splits.TEST_FRACTION, {"x": 59}).values()) == 9


def test_split_keeps_ids_whole_strata_in_train_and_is_deterministic():
    source = make_splits.Source("fcc-test-fixture", "bb", "unit", make_splits.fcc_id)
    names = [f"test_fcc_trace_{unit}_http---x.com_{offset}_0" for unit in range(100, 108) for offset in (0, 60, 120)]
    names += [f"trace_{unit}_http---y.com" for unit in range(200, 240)]
    fractions = {"test": make_splits.TEST_FRACTION, "val": make_splits.VAL_FRACTION}
    sides = make_splits.split_source(source, names, fractions)
    assert sides == make_splits.split_source(source, list(reversed(names)), fractions)
    side_of_unit = {}
    for name, side in sides.items():
        assert side_of_unit.setdefault(make_splits.fcc_id(name)[0], side) == side  # one side per ID
    units_per_side = {side: sum(1 for s in side_of_unit.values() if s == side) for side in ("train", "val", "test")}
    assert units_per_side == {"train": 34, "val": 7, "test": 7}  # round(0.15 x 48) = 7
    assert {make_splits.fcc_id(n)[1] for n, side in sides.items() if side == "train"} == {"1 s windows", "5 s traces"}


def test_a_stratum_with_one_id_stays_in_train():
    # Seven modes of one recording each: round(0.15 x 7) = 1 would go to test and leave its mode unseen.
    source = make_splits.Source("singletons", "x", "file", lambda name: (name, name.split("_")[0]))
    names = [f"{mode}_1" for mode in ("bicycle", "boat", "bus", "car", "foot", "train", "tram")]
    fractions = {"test": make_splits.TEST_FRACTION, "val": make_splits.VAL_FRACTION}
    sides = make_splits.split_source(source, names, fractions)
    assert set(sides.values()) == {"train"}


# -- the committed lists (need ../shared) ------------------------------------------------------

def test_every_network_type_has_its_lists():
    assert [n.name for n in make_splits.NETWORKS] == list(DEFAULT_PROFILE_BY_NETWORK)
    for network in make_splits.NETWORKS:
        expected = {f"{side}.txt" for side in make_splits.side_order(network)}
        assert {p.name for p in (SPLITS / network.name).glob("*.txt")} == expected, network.name
        for side in expected:
            head = (SPLITS / network.name / side).read_text().splitlines()[:5]
            assert all(line.startswith("#") for line in head) and "experiments/make_splits.py" in head[-1]


@pytest.mark.shared
@pytest.mark.parametrize("network", make_splits.NETWORKS, ids=lambda n: n.name)
def test_committed_lists_load_and_sides_are_id_disjoint(network):
    root = SHARED / "traces"
    lists = {side: [str(p.relative_to(root)) for p in read_trace_list(SPLITS / network.name / f"{side}.txt")]
             for side in make_splits.side_order(network)}
    ids = {side: make_splits.ids_of(network, paths) for side, paths in lists.items()}
    test_side = "test-idfree" if network.name == "broadband" else "test"
    for first, second in (("train", "val"), ("train", test_side), ("val", test_side)):
        assert not ids[first] & ids[second], f"{network.name}: IDs on {first} and {second}"
    all_listed = lists["train"] + lists["val"] + lists["test"]
    assert len(all_listed) == len(set(all_listed))
    # every file on a side
    assert len(all_listed) == sum(len(trace_files(root / source.folder)) for source in network.all_sources)
    assert all(len(lists[side]) > 0 for side in lists)


@pytest.mark.shared
def test_broadband_idfree_list_is_the_manifests():
    names = [p.name for p in read_trace_list(SPLITS / "broadband" / "test-idfree.txt")]
    assert len(names) == 20 and "000_trace_942154_http---www.ebay.com_0" in names
    assert {make_splits.fcc_id(n)[0] for n in names} == make_splits.MANIFEST_IDFREE_UNIT_IDS


@pytest.mark.shared
def test_committed_files_equal_a_rebuild():
    assert make_splits.check(SHARED / "traces") == []


@pytest.mark.shared
def test_check_catches_a_window_moved_across_sides_and_a_dropped_file(tmp_path):
    copy = tmp_path / "splits"
    shutil.copytree(SPLITS, copy)
    # One window of a validation FCC unit (whose other windows stay in val) moved to train.
    val = (copy / "broadband" / "val.txt").read_text().splitlines()
    moved = next(line for line in val if "test_fcc_trace_" in line and not line.startswith("#"))
    (copy / "broadband" / "val.txt").write_text("\n".join(line for line in val if line != moved) + "\n")
    (copy / "broadband" / "train.txt").write_text((copy / "broadband" / "train.txt").read_text() + moved + "\n")
    (copy / "4g" / "test.txt").write_text("\n".join((copy / "4g" / "test.txt").read_text().splitlines()[:-1]) + "\n")
    problems = "\n".join(make_splits.check(SHARED / "traces", copy))
    assert "broadband/train.txt" in problems and "differs from a rebuild" in problems
    unit = make_splits.fcc_id(Path(moved).name)[0]
    assert f"broadband: 1 IDs on both train and val, e.g. ['fcc:{unit}']" in problems
    assert "4g: 1 files of its folders are on no side" in problems
