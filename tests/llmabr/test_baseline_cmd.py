"""``llmabr baseline``: JSON keys, the table, and clean exit code 2 on bad traces or profiles."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmabr.cli.baseline_cmd import guess_network_type
from llmabr.cli.main import main


@pytest.fixture
def trace_dir(tmp_path):
    folder = tmp_path / "traces"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("b_trace", "a_trace"):
        bw_mbps = rng.uniform(0.5, 4.0, 200)
        (folder / name).write_text("".join(f"{t:.1f}\t{bw:.4f}\n" for t, bw in zip(np.arange(200.0), bw_mbps)))
    return folder


@pytest.mark.parametrize("algo", ["bb", "rb", "bola", "fastmpc", "robustmpc"])
def test_json_output_has_per_trace_rows_and_means(trace_dir, capsys, algo):
    assert main(["baseline", "--algo", algo, "--traces", str(trace_dir), "--video", "envivio-synth", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in result["per_trace"]] == ["a_trace", "b_trace"]
    for row in result["per_trace"]:
        assert set(row) == {"name", "qoe_sum", "qoe_per_chunk", "rebuffer_s", "rebuffer_ratio", "bitrate_kbps",
                            "switches_per_min", "chunks"}
        assert 300 <= row["bitrate_kbps"] <= 4300
    assert set(result["mean"]) == {"qoe_sum", "rebuffer_s", "bitrate_kbps", "qoe_per_chunk"}
    assert result["mean"]["qoe_per_chunk"] == pytest.approx(result["mean"]["qoe_sum"] / 48)  # default mode, 49 chunks


def test_pensieve_mode_as_committed_table(trace_dir, capsys):
    argv = ["baseline", "--algo", "robustmpc", "--traces", str(trace_dir), "--video", "envivio-synth",
            "--compat", "pensieve", "--as-committed"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "a_trace" in out and "mean QoE per chunk" in out and "chunks 1..47" in out and "as committed" in out


@pytest.mark.parametrize("extra,message", [
    (["--video", "no-such-profile"], "not a built-in name"),
    (["--algo", "bb", "--as-committed"], "--as-committed applies to"),
    (["--qoe", "hd", "--video", "{tmp}/four_levels.json"], "hd_reward"),
])
def test_bad_input_exits_2_with_a_message_and_no_traceback(trace_dir, tmp_path, capsys, extra, message):
    from simulator.video import generate_vbr_profile, save_profile

    save_profile(generate_vbr_profile("four", [500, 1000, 2000, 4000]), tmp_path / "four_levels.json")
    argv = ["baseline", "--algo", "rb", "--traces", str(trace_dir)] + [arg.format(tmp=tmp_path) for arg in extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_trace_folder_exits_2(tmp_path, capsys):
    assert main(["baseline", "--algo", "bb", "--traces", str(tmp_path / "nowhere"), "--video", "envivio-synth"]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "Traceback" not in err


@pytest.mark.parametrize("path,expected", [
    ("/data/traces/3g/test", "3g"), ("x/satellite/all", "satellite"), ("x/5G/all", "5g"), ("/tmp/mine", None),
])
def test_network_type_guessed_from_the_trace_path(path, expected):
    assert guess_network_type(path) == expected


def test_cli_prints_optimal_rows_with_bounds(trace_dir, capsys):
    folder = trace_dir
    argv = ["baseline", "--traces", str(folder), "--video", "envivio-synth"]
    assert main(argv + ["--algo", "optimal", "--json", "--grid-scale", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert main(argv + ["--algo", "robustmpc", "--json"]) == 0
    robust = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in result["per_trace"]] == ["a_trace", "b_trace"]
    for mine, theirs in zip(result["per_trace"], robust["per_trace"]):
        assert {"levels", "upper_bound", "gap_bound", "dp_qoe_sum"} <= set(mine) and len(mine["levels"]) == 48
        assert mine["qoe_sum"] >= theirs["qoe_sum"] - 1e-6
    assert result["mean"]["qoe_sum"] >= robust["mean"]["qoe_sum"] and "qoe_sum" in result["mean"]
    assert result["settings"]["grid"]["search_buffer_s"] == pytest.approx(0.2)
    assert main(argv + ["--algo", "optimal", "--compat", "pensieve"]) == 0
    out = capsys.readouterr().out
    assert "upper bound" in out and "chunks 1..47" in out and "a_trace" in out
    assert main(argv + ["--algo", "optimal", "--json", "--no-bound"]) == 0
    unbounded = json.loads(capsys.readouterr().out)
    assert unbounded["mean"]["upper_bound"] is None and unbounded["per_trace"][0]["gap_bound"] is None
    assert main(argv + ["--algo", "optimal", "--as-committed"]) == 2


# -- the real test sets (../shared) ----------------------------------------------------------------
