"""``llmabr export``: the ONNX graph's contract, parity with the caged torch policy, refusals with reasons."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests import needs

needs.modules("onnx", "onnxruntime", extra="export", module_level=True)

import onnx  # noqa: E402

from llmabr.cli.main import main
from llmabr.design.format import Design, load_design, write_design
from llmabr.export import ExportError, export_policy
from llmabr.export.parity import onnx_session
from llmabr.export.source import resolve_source
from llmabr.train.evaluate import evaluate
from simulator.layout import MEANINGS, UNITS, Layout
from simulator.traces import generate, write_cooked
from simulator.video import load_profile
from tests.llmabr.conftest import train_tiny

TINY = ["warm_start=none", "total_steps=1536", "eval_every_steps=768", "ppo.n_envs=8", "ppo.batch_size=256", "synthetic_count=10",
        "val_max_traces=3", "network=3g"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("export-run") / "pensieve", TINY)


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("export-out")
    return out, export_policy(run_dir, out)


def test_export_writes_the_contract(exported, run_dir):
    out, data = exported
    for name in ("policy.onnx", "layout.json", "parity_rows.npz", "export.json", "MODEL_CARD.md"):
        assert (out / name).is_file(), name
    assert not (out / ".export-cage").exists()  # the cage's work folder is cleaned up
    layout = json.loads((out / "layout.json").read_text())
    video = load_profile(json.loads((run_dir / "result.json").read_text())["video"])
    expected = Layout(16, video.n_levels)
    assert layout["size"] == expected.size and layout["n_levels"] == video.n_levels
    assert [(f["name"], f["offset"], f["size"]) for f in layout["fields"]] == expected.fields
    assert all(f["unit"] == UNITS[f["name"]] and f["meaning"] == MEANINGS[f["name"]] for f in layout["fields"])
    assert layout["ladder_kbps"] == [float(kbps) for kbps in video.bitrates_kbps]
    assert layout["chunks_total"] == video.n_chunks  # default mode plays every chunk of the video
    assert (layout["input"], layout["output"], layout["design"], layout["network"]) == ("obs", "logits", "pensieve", "3g")
    assert json.loads((out / "export.json").read_text()) == data

    session = onnx_session(out / "policy.onnx")
    assert [(i.name, i.shape[1:], i.type) for i in session.get_inputs()] == [("obs", [expected.size], "tensor(float)")]
    assert [(o.name, o.shape[1:]) for o in session.get_outputs()] == [("logits", [video.n_levels])]
    parity = np.load(out / "parity_rows.npz")
    for batch in (1, 7, len(parity["obs"])):  # the batch axis is dynamic, not frozen at the trace example's 2
        logits = session.run(["logits"], {"obs": parity["obs"][:batch]})[0]
        assert logits.shape == (batch, video.n_levels)
        np.testing.assert_allclose(logits, parity["logits"][:batch], rtol=1e-5, atol=1e-5)
    assert data["parity"]["passed"] and data["parity"]["argmax_mismatches"] == 0
    # The seed design runs in float64, so the graph does, and the bound is absolute.
    assert data["precision"] == data["parity"]["precision"] == "float64"
    assert data["parity"]["criterion"].startswith("|onnx - torch| <= tolerance,")
    assert data["parity"]["max_abs_logit_diff"] <= 1e-5 and data["parity"]["float32_fallback_reason"] is None
    np.testing.assert_array_equal(parity["logits"], parity["logits_float64"].astype(np.float32))
    assert parity["logits_float32"].shape == parity["logits"].shape
    # Below 1 MB for the seed design: its weights are packed exactly (3.5 bytes each) and no Conv is left.
    graph = onnx.load(str(out / "policy.onnx"))
    assert data["onnx_bytes"] < 1_000_000 < 4 * data["parameters"]
    assert "Conv" not in {node.op_type for node in graph.graph.node}
    assert data["graph"]["rewrite"]["convs_rewritten"] == 3
    assert data["parity"]["rows"] == len(parity["obs"]) > 500
    # The recorded rows cover the first decision after chunk 0 and the random ones an empty history.
    valid = parity["obs"][:, expected.slice("valid")]
    assert valid.sum(axis=1).min() == 0 and (valid.sum(axis=1) == 1).any()
    assert 0 < data["latency"]["median_us"] <= data["latency"]["p99_us"]
    assert data["onnx_bytes"] == (out / "policy.onnx").stat().st_size and data["parameters"] > 10_000


def test_model_card_reports_training_parity_and_latency(exported, run_dir):
    out, data = exported
    card = (out / "MODEL_CARD.md").read_text()
    result = json.loads((run_dir / "result.json").read_text())
    assert "# Model card: pensieve" in card and "origin: seed" in card
    assert f"{result['best_val_qoe']:.3f}" in card and f"| steps | {result['steps']}" in card
    assert f"({result['train_traces']} for training" in card
    assert "not evaluated; run `llmabr eval" in card
    assert f"{data['parity']['max_abs_logit_diff']:.2e}" in card and f"{data['latency']['median_us']:.1f} us" in card
    assert f"{data['onnx_bytes']:,} bytes" in card and f"{data['parameters']:,}" in card
    assert f"{data['graph']['rewrite']['values_packed']:,} weights stored exactly in 3.5 bytes" in card


class OnnxGreedy:
    """The exported graph as a batched baseline: what a player running policy.onnx decides."""

    name = "onnx"

    def __init__(self, path):
        self.session = onnx_session(path)

    def reset(self, mask=None) -> None:
        pass

    def act(self, obs):
        return self.session.run(["logits"], {"obs": np.asarray(obs, dtype=np.float32)})[0].argmax(axis=1).astype(np.int32)


def test_onnx_plays_like_the_caged_torch_policy_and_the_card_shows_test_qoe(exported, run_dir, tmp_path, capsys):
    """End to end on held-out traces: ``llmabr eval`` scores the torch policy in the cage; the ONNX
    graph played through the same protocol must make every decision alike, so every trace's QoE
    is identical; a re-export then reports that evaluation in the model card."""
    out, _ = exported
    traces_dir = tmp_path / "test-traces"
    traces_dir.mkdir()
    for trace in generate("3g", 4, seed=99):
        write_cooked(trace, traces_dir / trace.name)
    assert main(["eval", str(run_dir), "--traces", str(traces_dir), "--baselines", "bb", "--json"]) == 0
    capsys.readouterr()
    torch_rows = json.loads((run_dir / "eval-test-traces" / "per_trace.json").read_text())
    result = json.loads((run_dir / "result.json").read_text())
    onnx_rows = evaluate(OnnxGreedy(out / "policy.onnx"), generate("3g", 4, seed=99), load_profile(result["video"]),
                         mode=result["config"]["mode"], qoe=result["config"]["qoe"])
    assert [row["trace"] for row in onnx_rows] == [row["trace"] for row in torch_rows]
    assert [row["qoe_sum"] for row in onnx_rows] == pytest.approx([row["qoe_sum"] for row in torch_rows], abs=1e-9)
    assert [row["switches_per_min"] for row in onnx_rows] == [row["switches_per_min"] for row in torch_rows]

    again = tmp_path / "again"
    assert main(["export", str(run_dir), "--out", str(again)]) == 0
    assert "parity on" in capsys.readouterr().out
    card = (again / "MODEL_CARD.md").read_text()
    summary = json.loads((run_dir / "eval-test-traces" / "summary.json").read_text())["policies"]["pensieve"]
    assert f"**{summary['qoe_per_chunk']:.3f} [" in card and "bb " in card and "not evaluated" not in card
    shutil.rmtree(run_dir / "eval-test-traces")  # leave the shared run as other tests expect it


NADA_STATE = '''
def state_func(bit_rate_kbps_list, buffer_size_second_list, delay_second_list, video_chunk_size_bytes_list,
               next_chunk_bytes_sizes, video_chunk_remain_num, total_chunk_num, all_bit_rate_kbps):
    return {"normal_states": [[buffer_size_second_list[-1] / 10.0]],
            "time_series_states": [[d / 10.0 for d in delay_second_list]]}
'''


def _fake_run(tmp_path, run_dir, design: Design):
    """A run folder with the trained weights of ``run_dir`` and another design's sources."""
    fake = tmp_path / design.name
    fake.mkdir()
    for name in ("policy_best.pt", "result.json"):
        shutil.copy(run_dir / name, fake / name)
    write_design(design, fake / "design")
    return fake


def test_nada_design_is_refused_with_a_pointer_to_serve(run_dir, tmp_path, capsys):
    fake = _fake_run(tmp_path, run_dir, Design(name="nada-like", state_source=NADA_STATE, kind="nada"))
    with pytest.raises(ExportError, match=r"NADA-style.*llmabr serve --policy"):
        export_policy(fake, tmp_path / "out")
    assert main(["export", str(fake), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "llmabr serve --policy" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "policy.onnx").exists()


def test_design_that_runs_only_in_float32_exports_a_float32_graph_and_says_why(run_dir, tmp_path, capsys):
    seed = load_design(run_dir / "design")
    float32_only = seed.net_source.replace("self.merge(torch.cat(parts, dim=1))",
                                           "self.merge(torch.cat(parts, dim=1).float())")
    assert float32_only != seed.net_source
    fake = _fake_run(tmp_path, run_dir, seed.with_(name="float32-only", net_source=float32_only))
    assert main(["export", str(fake), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    data = json.loads((tmp_path / "out" / "export.json").read_text())
    assert data["precision"] == "float32" and data["parity"]["passed"]
    assert "same dtype" in data["parity"]["float32_fallback_reason"]  # torch's own words, from the cage
    assert "float32 graph:" in printed and "x max(1, |torch logit|)" in data["parity"]["criterion"]
    card = (tmp_path / "out" / "MODEL_CARD.md").read_text()
    assert "graph arithmetic: float32" in card and "float32 only because" in card
    parity = np.load(tmp_path / "out" / "parity_rows.npz")
    assert "logits_float64" not in parity and np.array_equal(parity["logits"], parity["logits_float32"])
    # Its weights are packed too (exactly: parity above), so it stays under 1 MB as well.
    assert data["graph"]["rewrite"]["values_packed"] == 2048 * 128 and data["onnx_bytes"] < 1_000_000

    # Asking for float64 from a design that cannot run in it is refused, with both reasons.
    assert main(["export", str(fake), "--out", str(tmp_path / "out64"), "--precision", "float64"]) == 1
    err = capsys.readouterr().err
    assert "no float64 graph" in err and "same dtype" in err and "--precision auto" in err
    assert not (tmp_path / "out64" / "policy.onnx").exists()


def test_design_that_traces_wrongly_fails_parity(run_dir, tmp_path, capsys):
    """A Python branch on a tensor is frozen at trace time: ONNX then computes something else on rows
    that take the other branch. The export must notice and refuse, with the reason."""
    seed = load_design(run_dir / "design")
    frozen = seed.state_source.replace("def state(m):\n", "def state(m):\n    if m['buffer_s'][:, -1].max() > 30:\n"
                                       "        m = {**m, 'buffer_s': m['buffer_s'] * 3.0}\n", 1)
    assert frozen != seed.state_source
    fake = _fake_run(tmp_path, run_dir, seed.with_(name="frozen-branch", state_source=frozen))
    assert main(["export", str(fake), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "parity check failed" in err and "different decisions" in err and "Traceback" not in err
    assert "tracer warned" in err  # the hint says why
    assert not (tmp_path / "out" / "policy.onnx").exists()  # no graph that is not the policy
    assert (tmp_path / "out" / "parity_rows.npz").exists()  # the evidence stays


def test_design_that_fails_to_load_gives_its_reason(run_dir, tmp_path, capsys):
    seed = load_design(run_dir / "design")
    broken = seed.with_(name="broken", state_source=seed.state_source + "\nraise ValueError('no state today')\n")
    fake = _fake_run(tmp_path, run_dir, broken)
    assert main(["export", str(fake), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "loading the design" in err and "ValueError: no state today" in err and "state.py line" in err
    assert "Traceback" not in err


def test_run_name_source_prefers_seed_0_of_a_search_run(run_dir, tmp_path):
    search = tmp_path / "search"
    (search / "designs" / "cand").mkdir(parents=True)
    (search / "archive.sqlite").write_bytes(b"")
    for seed in ("train-s1", "train-s0"):
        shutil.copytree(run_dir, search / "designs" / "cand" / seed)
    (search / "designs" / "cand" / "train-s0" / "policy_best.pt").unlink()  # falls back to policy_final.pt
    source = resolve_source(f"{search}:cand")
    assert source.run_dir.name == "train-s0" and source.weights == "policy_final.pt"
    assert "train-s0" in source.note and "2 trained" in source.note and "policy_final.pt" in source.note
    with pytest.raises(ExportError, match="no design folder 'other'"):
        resolve_source(f"{search}:other")
    with pytest.raises(ExportError, match="no archive.sqlite"):
        resolve_source(f"{tmp_path}:cand")
    (search / "designs" / "screened-only").mkdir()
    with pytest.raises(ExportError, match="no finished training run"):
        resolve_source(f"{search}:screened-only")
    with pytest.raises(ExportError, match="no such run folder"):
        resolve_source(tmp_path / "nowhere")
