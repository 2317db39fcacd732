"""The LLM proposer end to end against a real model: prompts -> LLMClient -> llama.cpp's server with
SmolLM2-135M -> extraction, S0 and S1 checks, repairs in the same conversation.

A 135M model writes poor code, and its replies may change with the llama.cpp build, so these tests
assert what holds whatever it writes: every reply is either accepted (and then loads and passes the
checks) or rejected with the reason the checks give, every repair continues the same conversation
with that reason, repairs are bounded, and the request log matches. To see a design pass, one test
asks the model to copy a given block (temperature 0, fixed seed), which it does for a short state
function.
"""

import json

import pytest

from llmabr.cli.main import main
from llmabr.design.format import load_design
from llmabr.proposer.client import LLMClient
from llmabr.proposer.context import build_context
from llmabr.proposer.extract import ExtractionError, extract_code
from llmabr.proposer.llm import LLMProposer, full_check, static_check
from llmabr.proposer.llm_config import LLMConfig
from llmabr.proposer.prompts import build_messages
from llmabr.proposer.replay import from_code
from tests.llmabr.fake_openai_server import Scripted, completion_body

GOOD_STATE = ("Analysis and ideas: the harmonic mean resists spikes.\n\n```python\nimport torch\n\n\n"
              "def state(m):\n    top_kbps = m['ladder_kbps'][:, -1:]\n"
              "    return {'buffer': m['buffer_s'][:, -1:] / 10.0, 'bitrate': m['bitrate_kbps'][:, -8:] / top_kbps}\n```\n")
COPIED_STATE = "import torch\n\n\ndef state(m):\n    return {'buffer': m['buffer_s'][:, -1:] / 10.0}\n"


@pytest.fixture(scope="module")
def context():
    return build_context("broadband")


def real_client(server, log_dir, **fields) -> LLMClient:
    config = LLMConfig(**{"base_url": server.base_url, "model": server.model, "temperature": 0.0, "seed": 0,
                          "max_tokens": 96, **fields})
    return LLMClient(config, log_dir, env={})


def log_records(log_dir) -> list[dict]:
    return [json.loads(line) for line in (log_dir / "llm_requests.jsonl").read_text().splitlines()]


def copy_messages(source: str) -> list[dict]:
    """A conversation in which the model already copied ``source`` once and is asked to copy it again."""
    block = f"```python\n{source}```"
    return [{"role": "system", "content": "You copy text exactly."}, {"role": "user", "content": f"Copy:\n{block}"},
            {"role": "assistant", "content": block}, {"role": "user", "content": f"Copy:\n{block}"}]


def cheap_verdict(kind: str, reply: str, finish: str) -> tuple[str, str] | None:
    """(stage, reason) for a reply that extraction or S0 rejects, as the proposer computes them; None past S0."""
    try:
        extracted = extract_code(reply, kind, finish)
    except ExtractionError as error:
        return "extract", str(error)
    passed, stage, reason = static_check(from_code("probe", kind, extracted.source, "llm", "", []))
    return None if passed else (stage, reason)


def assert_settled_honestly(kind, records, proposals, rejected, max_repairs, tmp_path):
    """Every reply accepted (and it loads) or rejected with its reason; each repair continues the conversation."""
    for before, after in zip(records, records[1:]):
        reply, finish = before["replies"][0], before["finish_reasons"][0]
        assert after["messages"][:-1] == before["messages"] + [{"role": "assistant", "content": reply}]
        assert after["purpose"].startswith(f"repair {kind} (")
        verdict = cheap_verdict(kind, reply, finish)
        if verdict is None:  # past S0: the caged probe rejected it, and its reason went back
            assert after["purpose"] == f"repair {kind} (S1)" and "S1" in after["messages"][-1]["content"]
        else:
            stage, reason = verdict
            assert after["purpose"] == f"repair {kind} ({stage})" and reason in after["messages"][-1]["content"]
    for proposal in proposals:
        assert proposal.origin == "llm" and proposal.conversation[-1]["role"] == "assistant"
        folder = proposal.write(tmp_path / proposal.name)
        design = load_design(folder)
        assert design.origin == "llm" and (folder / "conversation.json").exists()
    for failure in rejected:
        assert failure.stage in ("extract", "S0", "S1") and failure.reason
        assert failure.repairs == max_repairs


@pytest.mark.parametrize("kind, max_repairs", [("state", 2), ("network", 1)])
def test_the_real_prompt_goes_through_the_full_cascade_with_bounded_repairs(llama_server, tmp_path, context, kind,
                                                                            max_repairs):
    proposer = LLMProposer(real_client(llama_server, tmp_path), max_repairs=max_repairs, check=full_check)

    proposals, rejected = proposer.propose(kind, 1, context)

    records = log_records(tmp_path)
    assert records[0]["purpose"] == f"propose {kind}" and records[0]["messages"] == build_messages(kind, context)
    assert 1 <= len(records) <= 1 + max_repairs and all(r["outcome"] == "ok" for r in records)
    assert len(proposals) + len(rejected) == 1
    if rejected:
        assert len(records) == 1 + max_repairs  # every repair allowed was tried, then no more
    assert_settled_honestly(kind, records, proposals, rejected, max_repairs, tmp_path)
    usage = proposer.client.usage()
    assert usage["requests"] == len(records)
    assert usage["prompt_tokens"] == sum(r["usage"]["prompt_tokens"] for r in records) > 2000  # the whole prompt, each time


def test_a_copied_design_passes_the_cascade_and_is_written_with_its_conversation(llama_server, tmp_path):
    proposer = LLMProposer(real_client(llama_server, tmp_path), max_repairs=1, check=full_check)

    proposals, rejected = proposer.propose_messages("state", 1, copy_messages(COPIED_STATE))

    records = log_records(tmp_path)
    assert len(proposals) + len(rejected) == 1 and len(records) <= 2
    assert_settled_honestly("state", records, proposals, rejected, 1, tmp_path)
    for proposal in proposals:  # SmolLM2 copies this one faithfully at temperature 0
        assert proposal.state_source.strip() in records[-1]["replies"][0]
        assert proposal.conversation == records[-1]["messages"] + [{"role": "assistant",
                                                                    "content": records[-1]["replies"][0]}]


def test_a_server_that_ignores_n_is_asked_again_for_the_rest(llama_server, tmp_path):
    proposer = LLMProposer(real_client(llama_server, tmp_path, max_tokens=48), max_repairs=0, check=static_check)

    proposals, rejected = proposer.propose_messages("state", 2, copy_messages(COPIED_STATE))

    records = log_records(tmp_path)
    assert [(r["purpose"], r["params"]["n"], len(r["replies"])) for r in records] == \
        [("propose state", 2, 1), ("propose state", 1, 1)]  # one choice each: asked twice in all
    replies = [r["replies"][0] for r in records]
    settled = len(proposals) + len(rejected)
    assert settled == len(set(replies))  # a reply that repeats the first one is kept once


def test_propose_cli_reads_the_llm_section_and_uses_the_endpoint(llama_server, tmp_path):
    config = tmp_path / "search.toml"
    config.write_text(f'[llm]\nbase_url = "{llama_server.base_url}"\nmodel = "{llama_server.model}"\n'
                      f'temperature = 0.0\nseed = 0\nmax_tokens = 32\n')
    out = tmp_path / "props"

    code = main(["propose", "--kind", "state", "--n", "1", "--out", str(out), "--config", str(config),
                 "--max-repairs", "0"])

    summary = json.loads((out / "proposals.json").read_text())
    assert summary["proposer"] == f"LLM proposer ({llama_server.model} at {llama_server.base_url})"
    assert len(summary["written"]) + len(summary["failures"]) == 1 and code == (0 if summary["written"] else 1)
    assert all(failure["reason"] for failure in summary["failures"])
    [record] = log_records(out)
    assert record["model"] == llama_server.model and record["params"]["temperature"] == 0.0
    assert record["params"]["max_tokens"] == 32 and record["usage"]["completion_tokens"] <= 32
    bad = tmp_path / "bad.toml"
    bad.write_text("[llm]\nbase_urll = 'x'\n")
    assert main(["propose", "--n", "1", "--out", str(tmp_path / "q"), "--config", str(bad)]) == 2


def test_propose_cli_reports_a_prompt_the_model_cannot_take(small_context_server, tmp_path, capsys):
    code = main(["propose", "--kind", "network", "--n", "1", "--out", str(tmp_path / "p"),
                 "--base-url", small_context_server.base_url, "--model", small_context_server.model])
    err = capsys.readouterr().err
    assert code == 1 and "the LLM endpoint failed" in err and "context window" in err and "1 attempt" in err


def test_propose_cli_reports_an_endpoint_that_keeps_failing_after_its_retries(server, tmp_path, capsys):
    """503 on every attempt (a real server cannot be made to): retried llm.max_retries times, then reported
    with the attempts and the last error; nothing is written. (Errors that retrying cannot fix, such as a
    prompt over the context window, are tried once: the test above.)"""
    from tests.llmabr.fake_openai_server import error_body

    server.script(*[Scripted(status=503, body=error_body("overloaded", "server_error"))] * 3)
    config = tmp_path / "search.toml"
    config.write_text(f'[llm]\nbase_url = "{server.base_url}"\nmodel = "m"\nmax_retries = 2\nbackoff_base_s = 0.01\n')
    out = tmp_path / "p"
    code = main(["propose", "--kind", "state", "--n", "1", "--out", str(out), "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 1 and "the LLM endpoint failed" in err and "3 attempts" in err and "HTTP 503: overloaded" in err
    assert len(server.chat_requests()) == 3
    assert not list(out.glob("*/state.py"))  # no design written


def test_propose_cli_offline_by_default(tmp_path, capsys, monkeypatch):
    for variable in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LLMABR_LLM_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    out = tmp_path / "offline"
    assert main(["propose", "--kind", "network", "--n", "3", "--out", str(out)]) == 0
    summary = json.loads((out / "proposals.json").read_text())
    assert "offline proposer" in summary["proposer"] and "no LLM endpoint configured" in summary["proposer"]
    assert len(summary["written"]) == 3 and all((out / name / "genome.json").exists() for name in summary["written"])


def test_n_replies_in_one_request(server, tmp_path, context):
    """Servers that honour ``n`` (OpenAI, vLLM) answer with n choices in one request, settled one by one;
    llama.cpp's server cannot (it always answers with one), so a scripted server does."""
    server.script(Scripted(body=completion_body([GOOD_STATE, "prose only", GOOD_STATE.replace("8", "4")])))
    client = LLMClient(LLMConfig(base_url=server.base_url, model="gpt-4o-mini", timeout_s=5.0), tmp_path, env={})
    proposals, rejected = LLMProposer(client, max_repairs=0).propose("state", 3, context)
    assert len(proposals) == 2 and len(rejected) == 1 and rejected[0].stage == "extract"
    assert server.received[0]["body"]["n"] == 3 and len(server.received) == 1
