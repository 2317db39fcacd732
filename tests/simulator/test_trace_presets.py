"""Public datasets in their published CSV forms: each preset detected from its header, with its quirks.

The files are written for the tests (tests/simulator/data/public_forms/, or inline here) with the
real headers and time formats; every expected trace below is worked out by hand from their rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulator.traces import TraceError, load_file, load_trace, load_trace_dir, load_traces
from simulator.traces.presets import PRESET_NAMES, detect_preset

FORMS = Path(__file__).parent / "data" / "public_forms"


def traces_by_name(path, fmt="auto"):
    traces, report = load_file(path, fmt)
    return {trace.name: trace for trace in traces}, report


def assert_trace(trace, time_s, bw_mbps):
    np.testing.assert_allclose(trace.time_s, time_s)
    np.testing.assert_allclose(trace.bw_mbps, bw_mbps)


def test_gnettrack_averages_a_shared_second_holds_a_missing_one_and_splits_a_long_gap():
    traces, report = traces_by_name(FORMS / "gnettrack" / "B_2019.12.14_10.16.30.csv")
    assert report.format == "gnettrack" and report.rows_read == 9
    first, second = traces["B_2019.12.14_10.16.30.csv#part1"], traces["B_2019.12.14_10.16.30.csv#part2"]
    # kbps / 1000; :31 holds 2000 and 4000 -> 3; :32 is missing -> 3 held; the idle row (0) stays as logged
    assert_trace(first, [0, 1, 2, 3, 4, 5], [1, 3, 3, 5, 0, 6])
    assert_trace(second, [0, 1, 2], [8, 9, 10])  # :50 comes 15 s after :35 -> a new trace
    assert (report.rows_averaged, report.timestamps_averaged, report.gaps_held, report.held_s) == (1, 1, 1, 1.0)
    assert report.splits == {"gaps over 10 s": 1}
    assert report.labels["NetworkMode"] == pytest.approx({"5G": 7 / 9, "LTE": 2 / 9})
    assert report.labels["State"] == pytest.approx({"D": 8 / 9, "I": 1 / 9})


def test_gnettrack_4g_header_is_detected_too():
    trace = load_trace(FORMS / "gnettrack" / "A_2018.02.12_13.40.27.csv")
    assert_trace(trace, [0, 1, 2], [2, 4, 6])


def test_5gophers_carriers_side_by_side_give_one_trace_each():
    traces, report = traces_by_name(FORMS / "5gophers" / "car-driving-trace-1.csv")
    assert report.format == "5gophers" and report.rate_columns == 3
    name = "car-driving-trace-1.csv#{}_throughput_mbps"
    # seq_num 4 is missing: held; Verizon's empty cell at seq 3 is dropped, so its gap 2 -> 5 is held from 4
    assert_trace(traces[name.format("Sprint")], [0, 1, 2, 3, 4, 5], [10, 20, 30, 40, 40, 50])
    assert_trace(traces[name.format("TMobile")], [0, 1, 2, 3, 4, 5], [100, 200, 100, 200, 200, 100])
    assert_trace(traces[name.format("Verizon")], [0, 1, 2, 4, 5], [50, 0, 50, 50, 50])
    assert report.rows_dropped == {"empty rate (Verizon_throughput_mbps)": 1}
    assert report.gaps_held == 3 and report.held_s == 1 + 1 + 2


def test_5gophers_runs_split_by_their_settings():
    traces, report = traces_by_name(FORMS / "5gophers" / "data.csv")
    assert_trace(traces["data.csv#TCP_SPRINT_1_US-East_1"], [0, 1, 2], [4, 6, 8])
    assert_trace(traces["data.csv#TCP_SPRINT_1_US-East_2"], [0, 1, 2], [1, 2, 3])
    assert report.splits == {"protocol/carrier/num_tcp_conn/server_location/run_num changes": 1}


def test_5gophers_panel_file_drops_ping_rows_and_walking_file_keeps_radio_labels_as_labels(tmp_path):
    panel = tmp_path / "los.csv"
    panel.write_text("protocol,num_tcp_conn,location,radio_type,run_num,seq_num,throughput_mbps,rtt_in_ms\n"
                     "ICMP,,A,4G,93,1,,129.5\nICMP,,A,4G,93,2,,54.1\n"
                     "TCP,1.0,A,4G,1,20,356.5,62.58\nTCP,1.0,A,4G,1,21,367.0,61.8\nTCP,1.0,A,4G,1,22,346.0,64.0\n")
    traces, report = load_file(panel)
    assert len(traces) == 1 and report.rows_dropped == {"empty rate": 2}
    assert_trace(traces[0], [0, 1, 2], [356.5, 367.0, 346.0])
    walk = tmp_path / "walking-trace.csv"
    walk.write_text("protocol,num_tcp_conn,seq_num,anonymized_mCid,radio_type,throughput_mbps,nrStatus,"
                    "primitive_handoff_type\nTCP,8,1,3,4G,92.1,NOT_RESTRICTED,\nTCP,8,2,3,5G,150,CONNECTED,\n"
                    "TCP,8,3,4,5G,160,CONNECTED,4G-5G\n")
    traces, report = load_file(walk)
    assert len(traces) == 1 and report.labels["radio_type"] == pytest.approx({"4G": 1 / 3, "5G": 2 / 3})


def test_starlink_drive_sessions_out_of_order_with_zone_names():
    traces, report = traces_by_name(FORMS / "starlink" / "mob_all_area1.csv")
    assert report.format == "starlink-drive" and len(traces) == 3
    # 09:40:24 MDT is 10:40:24 CDT: the session continues
    assert_trace(traces["mob_all_area1.csv#part1"], [0, 1, 2, 3, 4], [100, 200, 300, 400, 500])
    # time goes back to Apr 5; 11:03:07 twice (10, 30 -> 20); 11:03:09 missing -> 20 held
    assert_trace(traces["mob_all_area1.csv#part2"], [0, 1, 2, 3], [20, 20, 20, 40])
    # 40 s later: a new trace; its last row is short (time and throughput only), as in best_cl.csv
    assert_trace(traces["mob_all_area1.csv#part3"], [0, 1], [50, 60])
    assert report.splits == {"time going back": 1, "gaps over 10 s": 1}
    assert (report.rows_averaged, report.gaps_held) == (1, 1)


def test_lumos5g_one_trace_per_run(tmp_path):
    path = tmp_path / "Lumos5G-v1.0.csv"
    header = ("run_num,seq_num,abstractSignalStr,latitude,longitude,movingSpeed,compassDirection,nrStatus,lte_rssi,"
              "lte_rsrp,lte_rsrq,lte_rssnr,nr_ssRsrp,nr_ssRsrq,nr_ssSinr,Throughput,mobility_mode,"
              "trajectory_direction,tower_id")
    rows = [f"{run},{seq},2,44.97,-93.26,1.2,90.0,{status},-60,-90,-10,20,-95,-11,15,{mbps},walking,CW,16"
            for run, seq, status, mbps in [(1, 1, "CONNECTED", 800), (1, 2, "CONNECTED", 900),
                                           (1, 3, "NOT_RESTRICTED", 100), (2, 1, "CONNECTED", 1200),
                                           (2, 2, "CONNECTED", 1000)]]
    path.write_text("\n".join([header, *rows]) + "\n")
    traces, report = traces_by_name(path)
    assert report.format == "lumos5g"
    assert_trace(traces["Lumos5G-v1.0.csv#1_walking_CW"], [0, 1, 2], [800, 900, 100])
    assert_trace(traces["Lumos5G-v1.0.csv#2_walking_CW"], [0, 1], [1200, 1000])


def test_nyu_mets_headerless_iperf_units(tmp_path):
    path = tmp_path / "bus57.csv"
    path.write_bytes(b"3.97,Mbits/sec\r\n500,Kbits/sec\r\n12,bits/sec\r\n4.5,Mbits/sec\r\n")
    trace = load_trace(path)
    assert_trace(trace, [0, 1, 2, 3], [3.97, 0.5, 12e-6, 4.5])
    assert load_file(path)[1].format == "nyu-mets"


def test_generic_log_keeps_the_old_csv_behaviour(tmp_path):
    path = tmp_path / "tcp_downlink.csv"
    path.write_text("time,throughput_mbps,retrans,cwnd_kb\n2024-05-27T11:04:35.495698,53.4,0,13\n"
                    "2024-05-27T11:04:35.995415,144.6,0,13\n2024-05-27T11:04:36.495,150.0,0,13\n")
    trace = load_trace(path)
    np.testing.assert_allclose(trace.time_s, [0, 0.499717, 0.999302], atol=1e-9)
    assert load_file(path)[1].format == "generic"


@pytest.mark.parametrize("header, preset", [
    ("Timestamp,Longitude,Latitude,Speed,Operatorname,CellID,NetworkMode,RSRP,DL_bitrate,UL_bitrate,State",
     "gnettrack"),
    ("protocol,num_tcp_conn,seq_num,Sprint_throughput_mbps,TMobile_throughput_mbps", "5gophers"),
    ("protocol,carrier,num_tcp_conn,server_location,run_num,seq_num,throughput_mbps", "5gophers"),
    ("run_num,seq_num,nrStatus,Throughput,mobility_mode", "lumos5g"),
    ("time,throughput,speed,latitude,longtitu", "starlink-drive"),
    ("0.57,Mbits/sec", "nyu-mets"),
    ("time,throughput_mbps,retrans,cwnd_kb", "generic"),
    ("timestamp,bandwidth_kbps", "generic"),
    ("when,speed", None),
])
def test_presets_are_detected_from_the_header(header, preset):
    found = detect_preset(header.split(","))
    assert (found.name if found else None) == preset
    assert preset is None or preset in PRESET_NAMES


def test_a_multi_trace_file_is_refused_by_load_trace_but_loads_with_load_traces():
    path = FORMS / "5gophers" / "car-driving-trace-1.csv"
    with pytest.raises(TraceError, match="holds 3 traces"):
        load_trace(path)
    assert len(load_traces(path)) == 3


@pytest.mark.parametrize("folder, count", [("gnettrack", 3), ("5gophers", 5), ("starlink", 3)])
def test_folders_of_published_forms_load_and_skip_their_readme(folder, count):
    assert len(load_trace_dir(FORMS / folder)) == count
    assert len(load_trace_dir(FORMS)) == 11  # the README.md beside them is skipped
