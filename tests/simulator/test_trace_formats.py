"""Trace loaders: every format loads, every kind of bad trace gets an error naming file and line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simulator.traces import TraceError, load_trace, load_trace_dir, write_cooked
from simulator.traces.model import Trace
from tests.conftest import SHARED


def test_cooked_loads_both_separators(tmp_path):
    path = tmp_path / "cooked"
    path.write_text("0.0\t1.5\n1.0 2.5\n\n2.0\t0.0\n3.0 4.0\n")
    trace = load_trace(path)
    np.testing.assert_array_equal(trace.time_s, [0, 1, 2, 3])
    np.testing.assert_array_equal(trace.bw_mbps, [1.5, 2.5, 0, 4])
    assert trace.name == "cooked" and trace.lines.tolist() == [1, 2, 4, 5]


def test_mahimahi_counts_packets_per_second(tmp_path):
    # 1000 packets in the first second (12 Mbps), 500 in the second (6 Mbps)
    stamps = list(np.linspace(1, 1000, 1000).astype(int)) + list(np.linspace(1002, 2000, 500).astype(int))
    path = tmp_path / "trace.mahi"
    path.write_text("\n".join(map(str, stamps)) + "\n")
    trace = load_trace(path)
    np.testing.assert_array_equal(trace.time_s, [0.0, 1.0, 2.0])
    np.testing.assert_allclose(trace.bw_mbps[1:], [12.0, 6.0])


def test_sabre_json_keeps_the_first_interval(tmp_path):
    path = tmp_path / "net.json"
    path.write_text(json.dumps([{"duration_ms": 500, "bandwidth_kbps": 2000, "latency_ms": 20},
                                {"duration_ms": 1000, "bandwidth_kbps": 3000, "latency_ms": 20}], indent=1))
    trace = load_trace(path)
    np.testing.assert_allclose(trace.time_s, [0.0, 0.5, 1.5])
    np.testing.assert_allclose(trace.bw_mbps, [2.0, 2.0, 3.0])


def test_csv_with_iso_times(tmp_path):
    path = tmp_path / "run.csv"
    path.write_text("time,throughput_mbps,retrans\n2024-05-27T11:04:35.5,50.0,0\n2024-05-27T11:04:36.0,60.0,0\n"
                    "2024-05-27T11:04:36.5,0.0,1\n")
    trace = load_trace(path)
    np.testing.assert_allclose(trace.time_s, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(trace.bw_mbps, [50.0, 60.0, 0.0])


def test_repeated_timestamp_row_is_dropped(tmp_path):
    path = tmp_path / "dup"
    path.write_text("0 1\n1 2\n1 9\n2 3\n")
    trace = load_trace(path)
    np.testing.assert_array_equal(trace.time_s, [0, 1, 2])
    np.testing.assert_array_equal(trace.bw_mbps, [1, 2, 3])


def test_write_cooked_round_trips(tmp_path):
    trace = Trace("t", np.array([0.0, 0.5, 1.25]), np.array([1.0 / 3.0, 2.0, 0.0]))
    write_cooked(trace, tmp_path / "t")
    again = load_trace(tmp_path / "t")
    np.testing.assert_array_equal(again.time_s, trace.time_s)
    np.testing.assert_array_equal(again.bw_mbps, trace.bw_mbps)


BAD_TRACES = [
    # (file name, content, expected message fragment, expected line or None)
    ("empty", "", "empty", None),
    ("blank", "\n  \n", "empty", None),
    ("one_row", "0 1.0\n", "single row", 1),
    ("nan", "0 1.0\n1 nan\n2 1.0\n", "not a finite number", 2),
    ("negative", "0 1.0\n1 2.0\n2 -0.5\n", "negative bandwidth", 3),
    ("backwards", "0 1.0\n5 2.0\n4 2.0\n", "time does not increase", 3),
    ("all_zero", "0 0\n1 0\n2 0\n", "zero everywhere", None),
    ("text_field", "0 1.0\n1 fast\n", "not a number", 2),
    ("three_columns", "0 1.0\n1 2.0 3.0\n", "expected 2 columns", 2),
    ("mahimahi_backwards", "10\n20\n15\n", "earlier than the previous", 3),
    ("bad.json", '[{"duration_ms": 1000, "bandwidth_kbps": 100},\n {"duration_ms": 1000}]', "needs duration_ms", 2),
    ("broken.json", '[{"duration_ms": 1000,\n "bandwidth_kbps": ]', "invalid JSON", 2),
    ("bad.csv", "time,throughput_mbps\n0,1\n1,abc\n", "not a number", 3),
    ("nocol.csv", "when,speed\n0,1\n", "needs a time column", 1),
    ("short.csv", "time,throughput_mbps\n0,1\n1\n", "expected 2 columns", 3),
]


@pytest.mark.parametrize("name, content, message, line", BAD_TRACES, ids=[case[0] for case in BAD_TRACES])
def test_bad_trace_names_file_and_line(tmp_path, name, content, message, line):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(TraceError, match=message) as caught:
        load_trace(path)
    assert str(path) in str(caught.value)
    assert caught.value.line == line
    if line is not None:
        assert f"{path}:{line}:" in str(caught.value)


@pytest.mark.parametrize("kind", ["missing", "folder", "binary", "latin1", "unreadable"])
def test_unreadable_files_get_a_trace_error(tmp_path, kind):
    path = tmp_path / "trace"
    if kind == "folder":
        path.mkdir()
    elif kind == "binary":
        path.write_bytes(b"\x00\x01\x02binary\x00")
    elif kind == "latin1":
        path.write_bytes("0 1.0\n1 caf\xe9\n".encode("latin-1"))
    elif kind == "unreadable":  # an OSError other than "missing" (works as root, unlike chmod 000)
        (tmp_path / "plainfile").write_text("x")
        path = tmp_path / "plainfile" / "trace"
    with pytest.raises(TraceError) as caught:
        load_trace(path)
    assert str(path) in str(caught.value)


def test_folder_loading_sorts_skips_docs_and_rejects_empty(tmp_path):
    (tmp_path / "b").write_text("0 1\n1 2\n")
    (tmp_path / "a").write_text("0 1\n1 2\n")
    (tmp_path / "README.md").write_text("# docs")
    (tmp_path / ".hidden").write_text("junk")
    assert [t.name for t in load_trace_dir(tmp_path)] == ["a", "b"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TraceError, match="holds no trace files"):
        load_trace_dir(empty)
    with pytest.raises(TraceError, match="no such folder"):
        load_trace_dir(tmp_path / "nope")


REAL_FOLDERS = [
    ("broadband/train", 149), ("broadband/test", 100), ("3g/train", 115), ("3g/test", 262),
    ("4g/all/belgium_ghent_sabre", 40), ("4g/all/lumos5g_verizon_lte", 150), ("5g/all", 121), ("satellite/all", 63),
]


@pytest.mark.shared
@pytest.mark.parametrize("folder, count", REAL_FOLDERS)
def test_every_real_folder_loads(folder, count):
    traces = load_trace_dir(SHARED / "traces" / folder)
    assert len(traces) == count
    assert all(len(trace) >= 2 and trace.duration_s > 60 for trace in traces)
