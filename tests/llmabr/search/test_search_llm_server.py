"""``llmabr search`` proposing with a real model server (llama.cpp with SmolLM2-135M), tiny budgets.

Screening only (``budget.train_seeds=0``), one worker: what is tested is the proposing side (the
search's proposing code against a real server, a local model the search serves itself, its token
budget, a server that dies mid-request), not training.
"""

import json
import os
import re
import signal
import sqlite3
import threading
import time

from llmabr.cli.main import main
from llmabr.search.archive import Archive
from tests.llmabr.llama_server import open_connections, server_processes_of, smollm2_path, start_server

SCREEN_ONLY = ["--set", "train.warm_start=none", "--set", "budget.screen_steps=768", "--set", "budget.screen_eval_every=384",
               "--set", "budget.train_seeds=0", "--set", "train.ppo.n_envs=8", "--set", "train.ppo.n_steps=48",
               "--set", "train.ppo.batch_size=128", "--set", "synthetic_test_count=4", "--set", "train.synthetic_count=10",
               "--set", "round_size=2", "--set", "train.early_stop.margin=100", "--set", "workers=1",
               "--set", "budget.minutes=4"]
GREEDY = ["--set", "llm.temperature=0", "--set", "llm.seed=0", "--set", "llm.max_tokens=48"]


def no_llm_env(monkeypatch):
    for variable in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LLMABR_LLM_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)


def endpoint(server) -> list[str]:
    return ["--set", "proposer=llm", "--set", f"llm.base_url={server.base_url}", "--set", f"llm.model={server.model}"]


def log_records(run) -> list[dict]:
    return [json.loads(line) for line in (run / "llm_requests.jsonl").read_text().splitlines()]


def assert_archive_intact(run):
    connection = sqlite3.connect(run / "archive.sqlite")
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    connection.close()
    archive = Archive(run)
    assert all(task["status"] == "done" for task in archive.tasks())
    assert archive.design("seed-pensieve")["stage"] == "screened"
    for design in archive.designs():
        assert (archive.folder(design["name"]) / "state.py").exists()


def reported_usage(report: str) -> tuple[int, int, int]:
    """(requests, prompt tokens, completion tokens) from the report's cost line."""
    match = re.search(r"\((\d+) LLM requests[^:]*: ([\d,]+) prompt \+ ([\d,]+) completion tokens\)", report)
    assert match, "the report does not count LLM tokens"
    return tuple(int(group.replace(",", "")) for group in match.groups())


def test_a_server_killed_mid_search_is_backed_off_from_and_the_search_finishes(tmp_path, monkeypatch):
    """The server is killed (SIGKILL, its whole group) while the search's first request is in flight."""
    no_llm_env(monkeypatch)
    server = start_server(tmp_path / "server", extra_args=())
    killed_in_flight = threading.Event()

    def kill_when_asked():
        deadline_s = time.monotonic() + 300
        while time.monotonic() < deadline_s:
            if open_connections(server.port):  # a request is in flight
                os.killpg(server.process.pid, signal.SIGKILL)
                killed_in_flight.set()
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_when_asked, daemon=True)
    watcher.start()
    run = tmp_path / "run"
    try:
        code = main(["search", "--out", str(run), "--set", "budget.designs=2", *endpoint(server), *GREEDY,
                     "--set", "llm.max_retries=1", "--set", "llm.backoff_base_s=0.05", "--set", "llm.backoff_max_s=0.5",
                     *SCREEN_ONLY])
    finally:
        watcher.join(timeout=5)
        server.stop()

    assert killed_in_flight.is_set() and code == 0
    archive = Archive(run)
    stop = archive.meta("proposing_stopped")
    assert stop.startswith("the LLM endpoint failed 6 times in a row") and "connection error" in stop
    records = log_records(run)
    assert len(records) == 6 and all(r["outcome"] == "failed" and r["attempts"] == 2 for r in records)
    assert all("connection error" in error["error"] for r in records for error in r["errors"])
    report = (run / "report.md").read_text()
    assert "Proposing stopped: the LLM endpoint failed 6 times in a row" in report
    assert_archive_intact(run)
    assert [d["name"] for d in archive.designs()] == ["seed-pensieve"]  # what it had


def test_a_local_model_search_serves_the_file_itself_and_stops_cleanly_at_its_token_budget(tmp_path, monkeypatch):
    """``--local-model FILE.gguf``: no endpoint, no key; the search serves the file itself, proposes until
    8,000 tokens cannot hold another request (each is about 2,400), reports the tokens and stops its server."""
    no_llm_env(monkeypatch)
    model = smollm2_path()
    servers_before = set(server_processes_of(os.getpid()))
    run = tmp_path / "run"

    code = main(["search", "--local-model", str(model), "--out", str(run), "--set", "budget.designs=4",
                 "--set", "llm.local_threads=1", *GREEDY, "--set", "llm.budget_tokens=8000", *SCREEN_ONLY])

    assert code == 0
    archive = Archive(run)
    assert archive.meta("proposing_stopped").startswith("LLM budget reached")
    records = log_records(run)
    sent = [r for r in records if r["outcome"] == "ok"]
    assert sent and records[-1]["outcome"] == "budget_exceeded"
    assert {r["outcome"] for r in records} == {"ok", "budget_exceeded"}
    assert sent[0]["base_url"].startswith("http://127.0.0.1:") and sent[0]["model"] == model.name
    spent = sum(r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"] for r in sent)
    assert spent <= 8000
    report = (run / "report.md").read_text()
    assert f"LLM proposer (local {model.name} via llama.cpp)" in report
    assert "Proposing stopped: LLM budget reached" in report
    requests, prompt_tokens, completion_tokens = reported_usage(report)
    assert requests == len(sent) and prompt_tokens > 2000 and completion_tokens > 0
    assert prompt_tokens + completion_tokens == spent
    assert "Uvicorn running on http://127.0.0.1:" in (run / "llama_server.log").read_text()
    assert set(server_processes_of(os.getpid())) <= servers_before  # the search stopped the server it started
    assert_archive_intact(run)
    assert {d["origin"] for d in archive.designs()} <= {"seed", "llm"}
