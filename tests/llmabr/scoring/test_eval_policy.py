"""``llmabr eval --policy DIR``: an exported policy scored like its run, its folder checked, clear refusals.

One tiny trained run, exported once; the graph runs in a caged process (``OnnxActor``) and must
make every decision the caged torch policy makes on the same traces, so every per-trace QoE is
the one ``llmabr eval RUN`` reports.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests import needs

needs.modules("onnx", "onnxruntime", extra="export", module_level=True)

from llmabr.cli.main import main
from llmabr.export import export_policy
from llmabr.export.folder import PolicyFolderError, check_layout, read_policy_folder
from llmabr.scoring.actor import CagedActor, OnnxActor, ScoringError
from simulator.layout import Layout
from simulator.traces import generate, write_cooked
from simulator.video import load_profile
from tests.llmabr.conftest import train_tiny

TINY = ["warm_start=none", "total_steps=512", "eval_every_steps=512", "ppo.n_envs=4", "ppo.n_steps=64", "ppo.batch_size=128",
        "synthetic_count=6", "val_max_traces=2", "network=3g"]
HEURISTICS = ("bb", "rb", "bola", "robustmpc", "optimal")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A barely trained pensieve run: nearly random weights still make varied, deterministic decisions."""
    return train_tiny(tmp_path_factory.mktemp("eval-policy-run") / "pensieve", TINY)


@pytest.fixture(scope="module")
def policy_dir(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-policy") / "pensieve-3g"
    export_policy(run_dir, out)
    return out


@pytest.fixture(scope="module")
def traces_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval-policy-traces") / "test"
    folder.mkdir()
    for trace in generate("3g", 4, seed=99):
        write_cooked(trace, folder / trace.name)
    return folder


@pytest.fixture
def copy_of(policy_dir, tmp_path):
    """A writable copy of the exported folder with layout.json changed by ``change(layout)``."""

    def make(change=None, name="changed"):
        folder = tmp_path / name
        shutil.copytree(policy_dir, folder)
        if change is not None:
            layout = json.loads((folder / "layout.json").read_text())
            change(layout)
            (folder / "layout.json").write_text(json.dumps(layout))
        return folder

    return make


def test_the_onnx_policy_scores_every_trace_as_the_caged_torch_policy(run_dir, policy_dir, traces_dir, tmp_path,
                                                                      capsys):
    assert main(["eval", str(run_dir), "--traces", str(traces_dir), "--baselines", "bb,optimal",
                 "--out", str(tmp_path / "torch"), "--json"]) == 0
    torch_summary = json.loads(capsys.readouterr().out)
    assert main(["eval", "--policy", str(policy_dir), "--traces", str(traces_dir), "--baselines", "bb,optimal",
                 "--out", str(tmp_path / "onnx"), "--json"]) == 0
    onnx_summary = json.loads(capsys.readouterr().out)  # --json prints parseable JSON only
    torch_rows = json.loads((tmp_path / "torch" / "per_trace.json").read_text())
    onnx_rows = json.loads((tmp_path / "onnx" / "per_trace.json").read_text())

    assert [row["trace"] for row in onnx_rows] == [row["trace"] for row in torch_rows] == sorted(
        trace.name for trace in generate("3g", 4, seed=99))
    for onnx_row, torch_row in zip(onnx_rows, torch_rows):
        assert set(onnx_row) == set(torch_row) | {"levels"}
        for key, value in torch_row.items():
            assert onnx_row[key] == (value if isinstance(value, str) else pytest.approx(value, abs=1e-9)), key
    assert set(onnx_summary) == set(torch_summary) == {"pensieve", "bb", "optimal"}
    for name in onnx_summary:
        assert onnx_summary[name]["qoe_per_chunk"] == pytest.approx(torch_summary[name]["qoe_per_chunk"], abs=1e-9)
        assert onnx_summary[name]["normalized"] == pytest.approx(torch_summary[name]["normalized"], abs=1e-9)
    result = json.loads((run_dir / "result.json").read_text())
    meta = json.loads((tmp_path / "onnx" / "summary.json").read_text())
    assert (meta["video"], meta["mode"], meta["qoe"]) == (result["video"], "default", "lin")  # layout.json's

    # The levels themselves, chunk by chunk: the trusted scorer's record of what each process answered.
    traces, video = generate("3g", 4, seed=99), load_profile(result["video"])
    with CagedActor(run_dir / "design", 16, video.n_levels) as actor:
        rows = actor.evaluate((run_dir / "policy_best.pt").read_bytes(), traces, video, "default", "lin")
        torch_levels = actor.last_levels
    assert rows == torch_rows
    onnx_levels = np.array([row["levels"] for row in onnx_rows])
    assert onnx_levels.shape == torch_levels.shape == (4, video.n_chunks - 1)
    np.testing.assert_array_equal(onnx_levels, torch_levels)
    assert len(np.unique(onnx_levels)) > 1  # decisions that could differ, not one constant level


def test_the_cli_prints_the_policy_and_every_baseline(policy_dir, traces_dir, tmp_path, capsys):
    assert main(["eval", "--policy", str(policy_dir), "--traces", str(traces_dir), "--out", str(tmp_path / "e")]) == 0
    printed = capsys.readouterr().out
    assert "pensieve: exported policy (ONNX)" in printed
    lines = {line.split("│")[1].strip(): line for line in printed.splitlines() if line.count("│") > 2}
    assert set(HEURISTICS) | {"pensieve"} <= set(lines)
    assert "better" in lines["bb"] or "worse" in lines["bb"] or "no significant difference" in lines["bb"]
    assert lines["optimal"].split("│")[4].strip() == "1.000"  # the normalized scale's top
    assert f"wrote {tmp_path / 'e' / 'summary.json'}" in printed
    csv_lines = (tmp_path / "e" / "per_trace.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 1 + 6 * 4 and "levels" not in csv_lines[0]


def test_what_the_export_did_not_record_comes_from_options(copy_of, traces_dir, tmp_path, capsys):
    def forget(layout):
        for key in ("video", "mode", "qoe"):
            del layout[key]

    folder = copy_of(forget)
    (folder / "export.json").unlink()
    assert main(["eval", "--policy", str(folder), "--traces", str(traces_dir)]) == 2
    assert "does not record the video, mode, qoe the policy was trained with; give --video --mode --qoe" in \
        capsys.readouterr().err
    video = json.loads((copy_of(name="original") / "layout.json").read_text())["video"]
    assert main(["eval", "--policy", str(folder), "--traces", str(traces_dir), "--video", video, "--mode", "default",
                 "--qoe", "lin", "--baselines", "none", "--out", str(tmp_path / "e"), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"pensieve"}


@pytest.mark.parametrize("change, message", [
    (lambda layout: layout["ladder_kbps"].pop(), "ladder_kbps holds 5 bitrates, n_levels is 6"),
    (lambda layout: layout["fields"].reverse(), "fields[0] is 'chunks_total' at offset"),
    (lambda layout: layout.update(Layout(8, 6).describe()), "history_len 8; the simulator's test protocol builds rows "
                                                            "with 16 past chunks"),
    (lambda layout: layout.update(Layout(16, 5).describe(), ladder_kbps=layout["ladder_kbps"][:5]),
     "the policy has 5 levels"),
    (lambda layout: layout.update(size=999), "size 999, but its fields make a row of"),
    (lambda layout: layout.pop("fields"), "missing fields; export again"),
    (lambda layout: layout.update(layout_version=2), "layout_version 2"),
], ids=["ladder-length", "field-order", "history-length", "level-count", "size", "missing-key", "version"])
def test_a_layout_that_is_not_the_simulators_is_refused_by_name(copy_of, traces_dir, capsys, change, message):
    folder = copy_of(change)
    assert main(["eval", "--policy", str(folder), "--traces", str(traces_dir)]) == 2
    error = capsys.readouterr().err
    assert message in error and str(folder / "layout.json") in error


def test_a_folder_without_a_graph_or_with_a_file_that_is_not_one_is_refused(copy_of, traces_dir, tmp_path, capsys):
    folder = copy_of(name="no-graph")
    (folder / "policy.onnx").unlink()
    assert main(["eval", "--policy", str(folder), "--traces", str(traces_dir)]) == 2
    assert f"{folder}: no policy.onnx there" in capsys.readouterr().err
    assert main(["eval", "--policy", str(tmp_path / "absent"), "--traces", str(traces_dir)]) == 2
    assert "no such folder" in capsys.readouterr().err

    folder = copy_of(name="lfs")
    (folder / "policy.onnx").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 976515\n")
    assert main(["eval", "--policy", str(folder), "--traces", str(traces_dir)]) == 2
    assert "Git LFS pointer" in capsys.readouterr().err

    folder = copy_of(name="junk")
    (folder / "policy.onnx").write_bytes(b"\x08 this is not a protobuf of a graph")
    assert main(["eval", "--policy", str(folder), "--traces", str(traces_dir), "--baselines", "none"]) == 1
    assert "policy.onnx is not an ONNX graph onnxruntime can load" in capsys.readouterr().err


def test_a_graph_with_another_signature_is_refused_in_the_cage(policy_dir):
    """The signature is read by onnxruntime in the caged child, never in the scoring process."""
    import onnx
    from onnx import TensorProto, helper

    size = read_policy_folder(policy_dir).layout["size"]
    graph = helper.make_graph([helper.make_node("Identity", ["obs"], ["logits"])], "identity",
                              [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    traces = generate("3g", 1, seed=1)
    with OnnxActor("identity", 16, 6) as actor:
        with pytest.raises(ScoringError, match=r"signature .*'logits', \[6\]"):
            actor.evaluate(model.SerializeToString(), traces, "envivio-synth")
        # The refusal ended that evaluation only: the same actor scores the real graph next.
        rows = actor.evaluate((policy_dir / "policy.onnx").read_bytes(), traces, "envivio-synth")
        assert len(rows) == 1 and actor.last_levels.shape == (1, 48)
    assert onnx.checker.check_model(model) is None


def test_both_run_and_policy_or_neither_is_a_usage_error(run_dir, policy_dir, traces_dir, capsys):
    assert main(["eval", str(run_dir), "--policy", str(policy_dir), "--traces", str(traces_dir)]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["eval", "--traces", str(traces_dir)]) == 2
    assert "one of them" in capsys.readouterr().err


def test_check_layout_accepts_what_export_writes_and_serve_refuses_what_it_refuses(policy_dir, copy_of):
    from llmabr.serve.backends import BackendError, open_backend

    layout = json.loads((policy_dir / "layout.json").read_text())
    assert check_layout(layout) == Layout(16, 6)
    folder = copy_of(lambda layout: layout["fields"].reverse())
    with pytest.raises(PolicyFolderError, match="fields"):
        read_policy_folder(folder)
    with pytest.raises(BackendError, match=r"fields\[0\] is 'chunks_total'"):
        open_backend(folder)
    (folder / "layout.json").unlink()
    with pytest.raises(BackendError, match="policy.onnx without layout.json"):
        open_backend(folder)


def test_the_scoring_process_never_imports_onnxruntime(policy_dir, traces_dir, tmp_path):
    import subprocess
    import sys

    from simulator.paths import REPO_ROOT

    script = ("import sys; from llmabr.cli.main import main; "
              f"code = main(['eval', '--policy', {str(policy_dir)!r}, '--traces', {str(traces_dir)!r}, "
              f"'--baselines', 'bb', '--out', {str(tmp_path / 'e')!r}, '--json']); "
              "assert code == 0, code; assert 'onnxruntime' not in sys.modules, 'onnxruntime was imported'")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert set(json.loads(done.stdout)) == {"pensieve", "bb"}
