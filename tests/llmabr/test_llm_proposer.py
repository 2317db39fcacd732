"""The LLM proposer end to end: prompts -> real openai client -> local server -> extraction, checks, repairs."""

import json

import pytest

from llmabr.cli.main import main
from llmabr.design.format import load_design
from llmabr.proposer.client import LLMClient
from llmabr.proposer.context import build_context
from llmabr.proposer.llm import LLMProposer, static_check
from llmabr.proposer.llm_config import LLMConfig
from tests.llmabr.fake_openai_server import Scripted, completion_body

GOOD_STATE = ("Analysis and ideas: the harmonic mean resists spikes.\n\n```python\nimport torch\n\n\n"
              "def state(m):\n    top_kbps = m['ladder_kbps'][:, -1:]\n"
              "    return {'buffer': m['buffer_s'][:, -1:] / 10.0, 'bitrate': m['bitrate_kbps'][:, -8:] / top_kbps}\n```\n")
EVIL_STATE = "Analysis and ideas: read a file.\n```python\nimport os\n\n\ndef state(m):\n    return {}\n```"


@pytest.fixture(scope="module")
def context():
    return build_context("broadband")


def client_for(server, tmp_path):
    return LLMClient(LLMConfig(base_url=server.base_url, model="gpt-4o-mini", timeout_s=5.0), tmp_path, env={})


def test_good_reply_becomes_a_design_with_its_conversation(server, tmp_path, context):
    server.script(Scripted(body=completion_body([GOOD_STATE])))
    proposals, rejected = LLMProposer(client_for(server, tmp_path), check=static_check).propose("state", 1, context)
    assert not rejected and len(proposals) == 1
    proposal = proposals[0]
    assert proposal.origin == "llm" and "harmonic mean" in proposal.notes and "def state(m)" in proposal.state_source
    assert proposal.conversation[-1]["role"] == "assistant"
    folder = proposal.write(tmp_path / proposal.name)
    assert load_design(folder).origin == "llm" and (folder / "conversation.json").exists()
    sent = server.received[0]["body"]["messages"]
    assert "Analysis and ideas:" in sent[1]["content"]


def test_no_code_then_rejected_code_are_repaired_in_the_same_conversation(server, tmp_path, context):
    server.script(Scripted(body=completion_body(["I would add throughput statistics."])),
                  Scripted(body=completion_body([EVIL_STATE])),
                  Scripted(body=completion_body([GOOD_STATE])))
    proposals, rejected = LLMProposer(client_for(server, tmp_path), max_repairs=2, check=static_check).propose(
        "state", 1, context)
    assert len(proposals) == 1 and not rejected
    first_repair, second_repair = server.received[1]["body"]["messages"], server.received[2]["body"]["messages"]
    assert first_repair[-2] == {"role": "assistant", "content": "I would add throughput statistics."}
    assert "no fenced" in first_repair[-1]["content"]
    assert "os" in second_repair[-1]["content"] and len(second_repair) == len(first_repair) + 2


def test_repairs_are_bounded_and_the_failure_keeps_its_reason(server, tmp_path, context):
    server.script(*[Scripted(body=completion_body([EVIL_STATE])) for _ in range(2)])
    proposals, rejected = LLMProposer(client_for(server, tmp_path), max_repairs=1, check=static_check).propose(
        "state", 1, context)
    assert not proposals and rejected[0].stage == "S0" and rejected[0].repairs == 1 and "os" in rejected[0].reason
    assert len(server.received) == 2


def test_n_replies_in_one_request(server, tmp_path, context):
    server.script(Scripted(body=completion_body([GOOD_STATE, "prose only", GOOD_STATE.replace("8", "4")])))
    proposals, rejected = LLMProposer(client_for(server, tmp_path), max_repairs=0).propose("state", 3, context)
    assert len(proposals) == 2 and len(rejected) == 1 and rejected[0].stage == "extract"
    assert server.received[0]["body"]["n"] == 3


def test_propose_cli_uses_the_endpoint_and_says_so(server, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the environment, not the code under test
    server.script(Scripted(body=completion_body([GOOD_STATE])))
    out = tmp_path / "props"
    assert main(["propose", "--kind", "state", "--n", "1", "--out", str(out), "--base-url", server.base_url]) == 0
    summary = json.loads((out / "proposals.json").read_text())
    assert summary["proposer"].startswith("LLM proposer") and len(summary["written"]) == 1
    assert (out / "llm_requests.jsonl").exists()


def test_propose_cli_reports_an_endpoint_that_keeps_failing(server, tmp_path, capsys):
    server.script(*[Scripted(status=400, body={"error": {"message": "model not found"}}) for _ in range(1)])
    code = main(["propose", "--kind", "network", "--n", "1", "--out", str(tmp_path / "p"), "--base-url", server.base_url])
    assert code == 1 and "model not found" in capsys.readouterr().err


def test_propose_cli_offline_by_default(tmp_path, capsys, monkeypatch):
    for variable in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LLMABR_LLM_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    out = tmp_path / "offline"
    assert main(["propose", "--kind", "network", "--n", "3", "--out", str(out)]) == 0
    summary = json.loads((out / "proposals.json").read_text())
    assert "offline proposer" in summary["proposer"] and "no LLM endpoint configured" in summary["proposer"]
    assert len(summary["written"]) == 3 and all((out / name / "genome.json").exists() for name in summary["written"])


def test_propose_cli_reads_the_llm_section_of_a_config_file(server, tmp_path):
    server.script(Scripted(body=completion_body([GOOD_STATE])))
    config = tmp_path / "search.toml"
    config.write_text(f'[llm]\nbase_url = "{server.base_url}"\nmodel = "local-model"\ntemperature = 0.2\n')
    assert main(["propose", "--n", "1", "--out", str(tmp_path / "p"), "--config", str(config)]) == 0
    body = server.received[0]["body"]
    assert body["model"] == "local-model" and body["temperature"] == 0.2
    bad = tmp_path / "bad.toml"
    bad.write_text("[llm]\nbase_urll = 'x'\n")
    assert main(["propose", "--n", "1", "--out", str(tmp_path / "q"), "--config", str(bad)]) == 2


def test_an_s1_rejection_goes_back_with_the_probe_reason(server, tmp_path, context):
    """S0 passes, the caged probe rejects raw bytes; the model gets the normalization reason and fixes it."""
    from llmabr.proposer.llm import full_check

    raw = ("Analysis and ideas: sizes.\n```python\nimport torch\n\n\ndef state(m):\n"
           "    return {'sizes': m['next_chunk_bytes'], 'buffer': m['buffer_s'][:, -1:] / 10.0}\n```")
    server.script(Scripted(body=completion_body([raw])), Scripted(body=completion_body([GOOD_STATE])))
    proposals, rejected = LLMProposer(client_for(server, tmp_path), max_repairs=1, check=full_check).propose(
        "state", 1, context)
    assert len(proposals) == 1 and not rejected
    repair = server.received[1]["body"]["messages"][-1]["content"]
    assert "normalization" in repair and "sizes" in repair
