"""The dash.js plugin end to end: real ffmpeg media, real dash.js v5 and onnxruntime-web in headless
Chromium, a real loopback server pacing the stream to a throughput trace.

One module fixture plays five sessions of a 24 s, 6-level stream (the Envivio ladder, 4 s
segments) and the tests read what the page logged:

* ``trained``: a policy from ``llmabr train`` (the default imitation warm start from RobustMPC,
  then 4,096 PPO steps on synthetic broadband: enough for its choices to follow throughput)
  exported with ``llmabr export``, on a 1.5-3 Mbps trace with no segment-size table, so the
  plugin estimates next sizes from the manifest bandwidths;
* ``low`` / ``high``: the same exported policy on a 0.6-0.9 Mbps and a 25-40 Mbps trace, with the
  segment-size table;
* ``no_model``: the model URL is wrong, so the plugin's own throughput rule must play the stream.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from simulator.paths import REPO_ROOT

from tests import needs
from tests.players.harness import (
    Session,
    make_dash_stream,
    missing_tools,
    onnx_logits,
    qoe_lin,
    run_sessions,
    segment_size_table,
)

MISSING = missing_tools()
if MISSING:  # a skip outside CI, saying how to install each; a failure under CI=true
    needs.missing("; ".join(MISSING), "as listed, or ./run test (as root: apt-get, npm ci)", module_level=True)

LADDER_KBPS = [300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0]  # envivio / envivio-synth profiles
VIDEO_S = 24.0  # 6 segments, enough for the history to slide; every session plays in real time
SEGMENT_S = 4.0
N_SEGMENTS = int(VIDEO_S / SEGMENT_S)
LATENCY_S = 0.08
LOGIT_TOLERANCE = 1e-5  # export's parity bound: the graph computes in float64 in wasm and in Python alike
MODEL_SESSIONS = ["trained", "low", "high", "shipped"]
# The shipped broadband policy (experiments/ship_policies.py) as a player engineer would take it: the
# folder served as it is in the repository (its ladder is Envivio's, the stream's).
SHIPPED = REPO_ROOT / "designs" / "broadband" / "pensieve"
SESSIONS = [
    Session("trained", [(3.0, 3.0), (3.0, 1.5)], "trained", sizes=False, latency_s=LATENCY_S),
    Session("low", [(4.0, 0.9), (4.0, 0.6)], "trained", latency_s=LATENCY_S),
    Session("high", [(4.0, 40.0), (4.0, 25.0)], "trained", latency_s=LATENCY_S),
    Session("no_model", [(4.0, 40.0), (4.0, 25.0)], "missing", latency_s=LATENCY_S),
    Session("shipped", [(4.0, 3.0), (4.0, 1.5)], "shipped", latency_s=LATENCY_S),
]
MODEL_OF = {session.name: session.model for session in SESSIONS}


@pytest.fixture(scope="module")
def stream_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("dash")
    make_dash_stream(out, LADDER_KBPS, VIDEO_S, SEGMENT_S)
    return out


@pytest.fixture(scope="module")
def trained_export(tmp_path_factory):
    needs.modules("onnx", "onnxruntime", extra="export")
    from llmabr.cli.main import main

    root = tmp_path_factory.mktemp("trained")
    assert main(["train", "designs/pensieve", "--network", "broadband", "--traces", "synthetic",
                 "--steps", "4096", "--out", str(root / "run")]) == 0
    assert main(["export", str(root / "run"), "--out", str(root / "export")]) == 0
    return root / "export"


@pytest.fixture(scope="module")
def played(stream_dir, trained_export, tmp_path_factory):
    """Every session played once: name -> {log, summary, page, server, console, ...}."""
    work = tmp_path_factory.mktemp("browser")
    models = {"trained": trained_export, "missing": work / "missing", "shipped": SHIPPED}
    started = time.monotonic()
    results = run_sessions(stream_dir, models, SESSIONS, work / "sessions")
    results["_wall_s"] = time.monotonic() - started
    results["_models"] = models
    return results


def qoe_parts(result: dict) -> dict:
    summary = result["summary"]
    return {"bitrate_kbps": summary["bitrateKbps"], "levels": summary["levels"], "rebuffer_s": summary["rebufferS"],
            "startup_s": summary["startupS"], "switches": summary["switches"],
            "avg_bitrate_kbps": summary["avgBitrateKbps"],
            "qoe_lin": qoe_lin(summary["bitrateKbps"], summary["rebufferS"])}


@pytest.mark.parametrize("name", [s.name for s in SESSIONS])
def test_session_plays_every_segment(played, name):
    result = played[name]
    assert result["error"] is None, f"{result['error']}\n" + "\n".join(result["console"])
    assert result["page"]["error"] is None, result["page"]["error"]
    assert result["page"]["done"] and result["page"]["totalSegments"] == N_SEGMENTS
    indices = [segment["index"] for segment in result["log"]["segments"]]
    assert indices == list(range(N_SEGMENTS))
    page_errors = [line for line in result["console"] if line.startswith("pageerror")]
    assert not page_errors, page_errors


@pytest.mark.parametrize("name", MODEL_SESSIONS)
def test_rule_decides_every_segment_after_the_first(played, name):
    log = played[name]["log"]
    assert log["ready"] and log["error"] is None, log["error"]
    segments = log["segments"]
    first = segments[0]
    assert first["decidedBy"] == "default" and first["level"] == log["layout"]["default_level"]
    for segment in segments[1:]:
        # What was fetched is what the model decided for exactly this segment.
        assert segment["decidedBy"] == "model", segment
        assert segment["level"] == segment["decidedLevel"]
    decisions = {decision["forSegment"]: decision for decision in log["decisions"]}
    assert sorted(decisions) == list(range(1, N_SEGMENTS))
    for segment in segments[1:]:
        assert decisions[segment["index"]]["level"] == segment["level"]
    assert log["staleAnswers"] == 0


@pytest.mark.parametrize("name", MODEL_SESSIONS)
def test_browser_decisions_equal_python_onnxruntime(played, name):
    log = played[name]["log"]
    rows = np.array([decision["row"] for decision in log["decisions"]], dtype=np.float32)
    browser_logits = np.array([decision["logits"] for decision in log["decisions"]], dtype=np.float32)
    browser_levels = np.array([decision["level"] for decision in log["decisions"]])
    model_dir = played["_models"][MODEL_OF[name]]
    python_logits = onnx_logits(model_dir, rows)
    np.testing.assert_allclose(browser_logits, python_logits, rtol=0, atol=LOGIT_TOLERANCE)
    # Same decision: the browser's level is Python's argmax, up to exact ties within tolerance
    # (an untrained policy's logits can sit 1e-6 apart).
    best = python_logits.max(axis=1)
    chosen = python_logits[np.arange(len(rows)), browser_levels]
    assert np.all(chosen >= best - LOGIT_TOLERANCE), (browser_levels, python_logits.argmax(axis=1))
    clear = np.sort(python_logits, axis=1)[:, -1] - np.sort(python_logits, axis=1)[:, -2] > LOGIT_TOLERANCE
    assert np.array_equal(browser_levels[clear], python_logits.argmax(axis=1)[clear])


@pytest.mark.parametrize("name", MODEL_SESSIONS)
def test_rows_carry_what_the_player_measured_in_layout_units(played, name, stream_dir):
    """Each row against the server's record and the files on disk, field by field."""
    result = played[name]
    log = result["log"]
    layout = log["layout"]
    history_len = layout["history_len"]
    offsets = {field["name"]: (field["offset"], field["size"]) for field in layout["fields"]}

    def field(row, field_name):
        offset, size = offsets[field_name]
        return np.asarray(row[offset:offset + size], dtype=np.float64)

    sent = {response["path"].rsplit("/", 1)[1]: response for response in result["server"]}
    sizes = segment_size_table(stream_dir, len(LADDER_KBPS))
    segments = log["segments"]
    for decision in log["decisions"]:
        row, next_index = decision["row"], decision["forSegment"]
        played_before = segments[:next_index]
        n_valid = min(len(played_before), history_len)
        valid = field(row, "valid")
        assert valid.tolist() == [0.0] * (history_len - n_valid) + [1.0] * n_valid
        for history_field in ("bitrate_kbps", "buffer_s", "download_time_s", "chunk_bytes", "rebuffer_s"):
            assert np.all(field(row, history_field)[:history_len - n_valid] == 0)  # before the first chunk
        newest = played_before[-1]
        file_name = newest["url"].rsplit("/", 1)[1]
        server = sent[file_name]
        assert field(row, "chunk_bytes")[-1] == server["bytes"] == sizes[newest["level"], newest["index"]]
        assert field(row, "bitrate_kbps")[-1] == LADDER_KBPS[newest["level"]]
        # Request start to last byte, RTT included: at least what the server took to send it,
        # plus at most a little browser overhead.
        server_s = server["last_byte_s"] - server["request_s"]
        download_s = field(row, "download_time_s")[-1]
        assert server_s - 0.02 <= download_s <= server_s + 0.5, (download_s, server_s)
        assert download_s >= LATENCY_S
        # Buffer right after arrival holds at least the segment that just arrived.
        assert SEGMENT_S - 1e-3 <= field(row, "buffer_s")[-1] <= 60 + SEGMENT_S
        assert 0 <= field(row, "rebuffer_s")[-1] <= download_s + 0.5
        # The history slides: every older slot is the previous row's slot one step newer.
        if next_index >= 2:
            previous = next(d for d in log["decisions"] if d["forSegment"] == next_index - 1)["row"]
            for history_field in ("bitrate_kbps", "buffer_s", "download_time_s", "chunk_bytes", "rebuffer_s", "valid"):
                assert np.array_equal(field(row, history_field)[:-1], field(previous, history_field)[1:])
        expected_next = (sizes[:, next_index] if name != "trained"
                         else np.array(LADDER_KBPS) * 1000 * SEGMENT_S / 8)  # no table: bandwidth x duration
        np.testing.assert_allclose(field(row, "next_chunk_bytes"), expected_next, rtol=1e-6)
        assert field(row, "ladder_kbps").tolist() == LADDER_KBPS
        assert field(row, "chunks_left").tolist() == [N_SEGMENTS - next_index]
        assert field(row, "chunks_total").tolist() == [N_SEGMENTS]
    # The first chunk's stall is the start-up wait, as in the simulator (buffer starts empty).
    assert segments[0]["rebuffer_s"] > 0


@pytest.mark.parametrize("name", [s.name for s in SESSIONS])
def test_qoe_parts_are_logged(played, name, record_property):
    parts = qoe_parts(played[name])
    record_property(f"qoe_{name}", json.dumps(parts))
    print(f"{name}: {json.dumps(parts)}")
    levels = parts["levels"]
    assert parts["bitrate_kbps"] == [LADDER_KBPS[level] for level in levels]
    assert len(levels) == N_SEGMENTS
    assert parts["switches"] == sum(a != b for a, b in zip(levels, levels[1:]))
    assert parts["rebuffer_s"] >= 0 and parts["startup_s"] > 0
    assert parts["avg_bitrate_kbps"] == pytest.approx(np.mean(parts["bitrate_kbps"]))


def test_low_bandwidth_yields_lower_bitrate_than_high(played):
    low, high = qoe_parts(played["low"]), qoe_parts(played["high"])
    print(f"avg bitrate: low trace {low['avg_bitrate_kbps']:.0f} kbps, high trace {high['avg_bitrate_kbps']:.0f} kbps; "
          f"browser sessions took {played['_wall_s']:.1f} s")
    # The trained policy itself (no hand-made rule): warm-started from RobustMPC, it follows throughput.
    assert low["avg_bitrate_kbps"] < high["avg_bitrate_kbps"], (low["bitrate_kbps"], high["bitrate_kbps"])


def test_throughput_rule_plays_when_the_model_cannot_load(played):
    log = played["no_model"]["log"]
    assert not log["ready"] and "layout.json" in log["error"] and "404" in log["error"]
    segments = log["segments"]
    assert segments[0]["decidedBy"] == "player"  # no layout, no default level: dash.js's start
    assert all(segment["decidedBy"] == "fallback" for segment in segments[1:])
    assert log["decisions"] == []
    # Harmonic mean of the last 5 throughputs x 0.9 -> highest bitrate below it.
    for index in range(1, len(segments)):
        recent = segments[max(0, index - 5):index]
        estimate_kbps = len(recent) / sum(s["download_time_s"] / (s["chunk_bytes"] * 8 / 1000) for s in recent)
        expected = max(level for level, kbps in enumerate(LADDER_KBPS) if level == 0 or kbps <= 0.9 * estimate_kbps)
        assert segments[index]["level"] == expected
    assert segments[-1]["level"] == len(LADDER_KBPS) - 1  # 25-40 Mbps: the top of the ladder
