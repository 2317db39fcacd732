"""Mapping files for CSVs no preset knows, time formats and units, errors that say what to write, convert."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from simulator.envs.sources import resolve_traces
from simulator.traces import TraceError, load_file, load_trace, load_trace_dir
from simulator.traces.convert import convert_dir, cooked_name
from simulator.traces.timeparse import TimeFormatError, parse_times

FORMS = Path(__file__).parent / "data" / "public_forms"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- time formats ------------------------------------------------------------------------------------

def utc(*parts, hours=0.0):
    return datetime(*parts, tzinfo=timezone(timedelta(hours=hours))).timestamp()


@pytest.mark.parametrize("values, time_format, expected", [
    (["2023-04-05 11:03:07 CDT", "2023-04-05 10:03:08 MDT"], "%Y-%m-%d %H:%M:%S %Z",
     [utc(2023, 4, 5, 11, 3, 7, hours=-5), utc(2023, 4, 5, 10, 3, 8, hours=-6)]),
    (["2019.12.14_10.16.30", "2019.12.31_23.59.59"], "%Y.%m.%d_%H.%M.%S",
     [utc(2019, 12, 14, 10, 16, 30), utc(2019, 12, 31, 23, 59, 59)]),
    (["12/Mar/2021:01:02:03.25 PM +0130"], "%d/%b/%Y:%I:%M:%S.%f %p %z",
     [utc(2021, 3, 12, 13, 2, 3, hours=1.5) + 0.25]),
    (["1.5", "2"], "seconds", [1.5, 2.0]),
    (["1500", "2500"], "epoch_ms", [1.5, 2.5]),
    (["2024-05-27T11:04:35.5", "2024-05-27 11:04:36+02:00"], "iso",
     [utc(2024, 5, 27, 11, 4, 35) + 0.5, utc(2024, 5, 27, 11, 4, 36, hours=2)]),
    (["2023-04-05 11:03:07 CDT"], "auto", [utc(2023, 4, 5, 11, 3, 7, hours=-5)]),
])
def test_time_formats(values, time_format, expected):
    np.testing.assert_allclose(parse_times(values, time_format), expected)


def test_fixed_width_and_row_by_row_decoding_agree():
    # one length decodes as a byte matrix; unpadded days and a zone of another length go row by row
    values = ["2023-04-05 11:03:07 CDT", "2023-04-5 11:03:08 CDT", "2023-04-05 08:03:09 AKDT"]
    np.testing.assert_allclose(parse_times(values, "%Y-%m-%d %H:%M:%S %Z") - utc(2023, 4, 5, 11, 3, 7, hours=-5),
                               [0, 1, 2])


@pytest.mark.parametrize("value, message", [
    ("2023-04-05 11:03:07 XYZ", "tz_offsets_h"), ("2023-02-30 11:03:07 CDT", "impossible day"),
    ("2023-04-05 11:03", "does not match"),
])
def test_bad_times_name_the_value_and_its_index(value, message):
    with pytest.raises(TimeFormatError, match=message) as caught:
        parse_times(["2023-04-05 11:03:06 CDT", value], "%Y-%m-%d %H:%M:%S %Z")
    assert caught.value.index == 1


# -- mapping files --------------------------------------------------------------------------------

def test_toml_mapping_with_bytes_per_interval_and_a_row_filter(tmp_path):
    data = write(tmp_path / "log.tsv", "when\tbytes\tstate\n0\t125000\tD\n1\t250000\tD\n2\t0\tI\n3\t375000\tD\n")
    mapping = write(tmp_path / "my.toml", 'time = "when"\ntime_format = "seconds"\nrate = "bytes"\n'
                                          'rate_unit = "bytes"\nkeep = {state = ["D"]}\n')
    trace = load_trace(data, fmt=mapping)
    # bytes per 1 s interval x 8 / 1e6 = Mbps; the idle row at 2 s is filtered, its second held
    np.testing.assert_allclose(trace.time_s, [0, 1, 2, 3])
    np.testing.assert_allclose(trace.bw_mbps, [1.0, 2.0, 2.0, 3.0])
    assert load_file(data, mapping)[1].rows_dropped == {"state not in ['D']": 1}


def test_json_mapping_with_a_per_row_unit_column_and_no_header(tmp_path):
    data = write(tmp_path / "iperf.txt", "0,5,Mbits/sec\n1,500,Kbits/sec\n2,1,Gbits/sec\n")
    mapping = write(tmp_path / "m.json", json.dumps({"time": 0, "rate": 1, "rate_unit_column": 2, "header": False}))
    trace = load_trace(data, fmt=mapping)
    np.testing.assert_allclose(trace.bw_mbps, [5.0, 0.5, 1000.0])


def test_mapping_on_top_of_a_preset_and_a_zone_the_table_lacks(tmp_path):
    data = write(tmp_path / "drive.csv", "time,throughput,speed\n2023-04-05 11:03:07 XST,10,1\n"
                                         "2023-04-05 11:03:08 XST,20,1\n2023-04-05 11:03:40 XST,30,1\n"
                                         "2023-04-05 11:03:41 XST,40,1\n")
    with pytest.raises(TraceError, match="tz_offsets_h") as caught:
        load_file(data)
    assert caught.value.line == 2
    mapping = write(tmp_path / "m.toml", 'preset = "starlink-drive"\nsplit_gap_s = 60\ntz_offsets_h = {XST = 3}\n')
    traces, report = load_file(data, mapping)
    assert len(traces) == 1 and report.gaps_held == 1 and report.held_s == 31.0  # 32 s gap held, not split
    assert report.format == "starlink-drive + m.toml"


def test_a_trace_format_file_in_the_folder_is_used_for_every_file_below(tmp_path):
    (tmp_path / "day1").mkdir()
    write(tmp_path / "day1" / "a.csv", "t_ms,kbit\n0,1000\n1000,2000\n2000,3000\n")
    write(tmp_path / "trace-format.toml",
          'time = "t_ms"\ntime_format = "epoch_ms"\nrate = "kbit"\nrate_unit = "kbps"\n')
    trace, = load_trace_dir(tmp_path)
    np.testing.assert_allclose(trace.bw_mbps, [1, 2, 3])
    assert trace.name == "a.csv"


@pytest.mark.parametrize("text, message", [
    ('time = "t"\nrate = "r"\ncolour = "red"\n', "unknown key 'colour'"),
    ('time = "t"\nrate = "r"\nrate_unit = "furlongs"\n', "rate_unit: unknown unit"),
    ('time = "t"\nrate = "r"\ntime_format = "%Q"\n', "unsupported directive %Q"),
    ('time = "t"\nrate = "r"\nsplit_gap_s = -1\n', "split_gap_s"),
    ('rate = "r"\n', "time: name the time column"),
    ('time = "t"\n', "needs rate"),
    ('preset = "nope"\n', "no preset 'nope'"),
    ('time = "t\n', "invalid TOML"),
])
def test_bad_mapping_files_say_which_key(tmp_path, text, message):
    write(tmp_path / "data.csv", "t,r\n0,1\n1,2\n")
    mapping = write(tmp_path / "m.toml", text)
    with pytest.raises(TraceError, match=message) as caught:
        load_file(tmp_path / "data.csv", mapping)
    assert str(mapping) in str(caught.value)


def test_mapping_naming_a_column_the_file_lacks(tmp_path):
    data = write(tmp_path / "data.csv", "t,r\n0,1\n1,2\n")
    mapping = write(tmp_path / "m.toml", 'time = "t"\nrate = "rate_mbps"\n')
    with pytest.raises(TraceError, match=r"no column 'rate_mbps'; columns found: \['t', 'r'\]"):
        load_file(data, mapping)


def test_unknown_csv_names_its_columns_and_shows_a_mapping(tmp_path):
    data = write(tmp_path / "mystery.csv", "Zeit,Durchsatz_kbit\n0,1\n1,2\n")
    with pytest.raises(TraceError) as caught:
        load_file(data)
    message = str(caught.value)
    assert "columns found: ['Zeit', 'Durchsatz_kbit']" in message and caught.value.line == 1
    assert 'rate = "Durchsatz_kbit"' in message and "trace-format.toml" in message and "gnettrack" in message


def test_headerless_unknown_csv_says_it_looks_like_data(tmp_path):
    data = write(tmp_path / "pairs.csv", "1,125000\n2,130000\n")
    with pytest.raises(TraceError, match="looks like data, not a header"):
        load_file(data)


def test_rows_are_checked_with_their_file_line(tmp_path):
    data = write(tmp_path / "x.csv", "time,throughput_mbps\n0,1\n1,-2\n")
    with pytest.raises(TraceError, match="negative bandwidth") as caught:
        load_file(data)
    assert caught.value.line == 3


def test_repeated_header_rows_from_joined_files_are_dropped(tmp_path):
    data = write(tmp_path / "joined.csv", "time,throughput_mbps\n0,1\n1,2\ntime,throughput_mbps\n2,3\n3,4\n")
    traces, report = load_file(data)
    np.testing.assert_allclose(traces[0].bw_mbps, [1, 2, 3, 4])
    assert report.rows_dropped == {"a repeated header row": 1} and report.rows_read == 5


def test_a_single_file_path_with_several_traces_resolves_to_all(tmp_path):
    assert len(resolve_traces(FORMS / "5gophers" / "car-driving-trace-1.csv")) == 3


# -- convert --------------------------------------------------------------------------------------

def test_convert_writes_cooked_files_that_load_back_identically_and_a_manifest(tmp_path):
    out = tmp_path / "cooked"
    manifest = convert_dir(FORMS, out)
    original = {trace.name: trace for trace in load_trace_dir(FORMS)}
    again = load_trace_dir(out)
    assert len(again) == len(original) == manifest["traces"] == 11
    files = {entry["path"]: entry for entry in manifest["files"]}
    starlink = files[str(FORMS / "starlink" / "mob_all_area1.csv")]
    assert starlink["format"] == "starlink-drive" and starlink["rows_averaged"] == 1
    assert starlink["splits"] == {"time going back": 1, "gaps over 10 s": 1} and starlink["gaps_held"] == 1
    for output in starlink["outputs"]:
        written = load_trace(out / output["file"])
        np.testing.assert_array_equal(written.bw_mbps, original[output["trace"]].bw_mbps)
        np.testing.assert_array_equal(written.time_s, original[output["trace"]].time_s)
    assert (out / "starlink" / "mob_all_area1_part1").is_file()
    assert json.loads((out / "manifest.json").read_text()) == manifest
    with pytest.raises(TraceError, match="not empty"):
        convert_dir(FORMS, out)


def test_cooked_names_drop_the_csv_suffix_so_the_files_load_as_cooked():
    assert cooked_name("car-driving-trace-1.csv#Sprint_throughput_mbps") == "car-driving-trace-1_Sprint_throughput_mbps"
    assert cooked_name("data.csv#TCP_SPRINT_1_US-East_1#part2") == "data_TCP_SPRINT_1_US-East_1_part2"
    assert cooked_name("norway_bus_1") == "norway_bus_1"
