"""The trained policies shipped in ``designs/<type>/pensieve/`` (experiments/ship_policies.py).

Each folder holds ``policy.onnx``, ``layout.json`` and ``MODEL_CARD.md``. The check a
user would make, ``llmabr eval --policy FOLDER --traces <the card's test list>``, must reproduce the
card's test QoE: the card and this test both come from the trusted scorer, the card from the torch
weights (``llmabr eval RUN``), this test from the exported graph. The lists point into ../shared:
without it the replay is skipped (the folder checks still run).
"""

from __future__ import annotations

import json
import re

import pytest

from llmabr.cli.main import main
from llmabr.export.folder import read_policy_folder
from simulator.envs import NETWORK_TYPES
from simulator.paths import REPO_ROOT, shared_dir
from tests import needs

SHIPPED = [REPO_ROOT / "designs" / network / "pensieve" for network in NETWORK_TYPES]
CARD_TEST = re.compile(r"Test QoE per chunk \(95% CI\) on `([^`]+)` .*?\*\*(-?[0-9.]+) \[")


def _card_test(folder):
    match = CARD_TEST.search((folder / "MODEL_CARD.md").read_text())
    assert match, "MODEL_CARD.md states no test QoE"
    return match.group(1), float(match.group(2))


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda path: path.parent.name)
def test_a_policy_is_shipped_for_every_network_type(folder):
    assert (folder / "policy.onnx").stat().st_size > 100_000
    layout = json.loads((folder / "layout.json").read_text())
    assert layout["network"] == folder.parent.name  # what it was trained on
    read_policy_folder(folder)  # the checks eval and serve make before loading anything
    export = json.loads((folder / "export.json").read_text())
    assert export["design"] == "pensieve" and export["design_origin"] == "seed"  # designs/pensieve's sources
    assert str(REPO_ROOT) not in (folder / "MODEL_CARD.md").read_text() + (folder / "export.json").read_text()
    traces, _ = _card_test(folder)
    assert traces == ("traces/splits/broadband/test-idfree.txt" if folder.parent.name == "broadband"
                      else f"traces/splits/{folder.parent.name}/test.txt")


@pytest.mark.skipif(shared_dir() is None, reason="the test lists point into ../shared (absent here)")
@pytest.mark.parametrize("folder", SHIPPED, ids=lambda path: path.parent.name)
def test_eval_of_the_shipped_graph_reproduces_its_model_card(folder, tmp_path, capsys):
    traces, card_qoe = _card_test(folder)
    assert main(["eval", "--policy", str(folder), "--traces", str(REPO_ROOT / traces), "--baselines",
                 "bb,robustmpc", "--out", str(tmp_path), "--json"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    mine = next(stats for name, stats in summary["policies"].items() if name not in ("bb", "robustmpc"))
    assert mine["qoe_per_chunk"] == pytest.approx(card_qoe, abs=5e-4)


def _play_constant(client, layout, session_id: str, throughput_kbps: float, chunks: int = 12) -> list[int]:
    """A session whose every chunk downloads at ``throughput_kbps`` (4 s chunks, buffer capped at 60 s):
    the levels the server chose."""
    ladder = layout["ladder_kbps"]
    chunk_s, total = layout["chunk_s"], layout["chunks_total"]
    sizes = [kbps * 1000 * chunk_s / 8 for kbps in ladder]
    body = {"session_id": session_id, "next_chunk_bytes": sizes, "chunks_left": total}
    levels, buffer_s = [], 0.0
    for index in range(chunks):
        answer = client.post("/v1/decide", json=body)
        assert answer.status_code == 200, answer.text
        level = answer.json()["level"]
        levels.append(level)
        download_s = sizes[level] * 8 / 1000 / throughput_kbps + 0.08
        rebuffer_s = max(0.0, download_s - buffer_s)
        buffer_s = min(60.0, max(0.0, buffer_s - download_s) + chunk_s)
        chunk = {"bitrate_kbps": ladder[level], "buffer_s": buffer_s, "download_time_s": download_s,
                 "chunk_bytes": sizes[level], "rebuffer_s": rebuffer_s}
        body = {**body, "chunk": chunk, "chunks_left": total - index - 1}
    return levels


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda path: path.parent.name)
def test_serve_answers_from_the_shipped_folder_as_it_is(folder):
    """``llmabr serve --policy designs/<type>/pensieve`` out of the box: the folder loads, and the
    trained policy streams higher on a fast link (twice its top rung) than on one at half its lowest rung."""
    needs.modules("onnxruntime", "fastapi", extra="export")
    from fastapi.testclient import TestClient

    from llmabr.serve.app import create_app
    from llmabr.serve.backends import open_backend

    backend = open_backend(folder)
    client = TestClient(create_app(backend))
    layout = backend.layout
    fast = _play_constant(client, layout, "fast", 2.0 * layout["ladder_kbps"][-1])
    slow = _play_constant(client, layout, "slow", 0.5 * layout["ladder_kbps"][0])
    # (Not asserted: that it stays at the lowest rung on a link below it. The shipped 5g policy, trained on
    # traces that seldom stay under 1 Mbps, still tries 4.5 Mbps now and then at 0.45 Mbps.)
    assert sum(fast[4:]) > sum(slow[4:]), (fast, slow)
    assert client.get("/healthz").json()["model_loaded"]
