"""``llmabr search`` end to end with tiny budgets: real Ray, real cages, real SQLite, a local LLM server."""

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from llmabr.cli.main import main
from llmabr.sandbox.cage import descendants
from llmabr.search.archive import Archive
from tests.conftest import wait_for
from tests.llmabr.fake_openai_server import Scripted, completion_body

TINY = ["--set", "train.warm_start=none", "--set", "budget.screen_steps=768", "--set", "budget.screen_eval_every=384", "--set", "budget.train_steps=768",
        "--set", "budget.train_seeds=1", "--set", "budget.top_k=1", "--set", "train.ppo.n_envs=8",
        "--set", "train.ppo.n_steps=48", "--set", "train.ppo.batch_size=128", "--set", "synthetic_test_count=4",
        "--set", "train.synthetic_count=10", "--set", "round_size=2", "--set", "train.early_stop.margin=100",
        "--set", "budget.minutes=8"]


def no_llm_env(monkeypatch):
    for variable in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LLMABR_LLM_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)


def test_embedded_search_runs_the_cascade_and_reports(tmp_path, monkeypatch, capsys):
    no_llm_env(monkeypatch)
    run = tmp_path / "run"
    assert main(["search", "--out", str(run), "--set", "budget.designs=2", *TINY, "--set", "budget.train_seeds=2"]) == 0
    archive = Archive(run)
    funnel = archive.funnel()
    assert funnel["proposed"] == 3 and funnel["screened"] == 3  # the seed and two offline designs
    finalists = archive.meta("finalists")
    assert "seed-pensieve" in finalists and len(finalists) == 2
    for name in finalists:
        design = archive.design(name)
        assert design["stage"] == "tested" and design["test_qoe"] is not None
    assert all(task["status"] == "done" for task in archive.tasks())
    report = (run / "report.md").read_text()
    assert "offline proposer, no LLM endpoint configured" in report and "**Verdict:**" in report
    assert "training seeds (2 per design)" in report and "recordings" in report and "normalized" in report
    assert "| optimal | 1 |" in report and "| bb | 1 |" in report and (run / "report.png").stat().st_size > 10_000
    assert any(verdict in report for verdict in ("is better than", "is worse than", "no significant difference",
                                                 "itself was best on validation"))
    assert "Verdict" in capsys.readouterr().out  # the search ends by printing its verdict
    assert main(["archive", "list", str(run), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {d["name"] for d in listed} == {d["name"] for d in archive.designs()}
    target = tmp_path / "promoted"
    capsys.readouterr()
    assert main(["archive", "promote", str(run), "seed-pensieve", "--to", str(target)]) == 2  # never the seed itself
    assert "not better than the seed design" in capsys.readouterr().err and not target.exists()
    candidate = next(name for name in finalists if name != "seed-pensieve")
    code = main(["archive", "promote", str(run), candidate, "--to", str(target)])
    from llmabr.cli.archive_cmd import validation_verdict

    verdict, why = validation_verdict(archive, candidate)
    assert (code == 0) == (verdict == "better") and "seeds" in why  # promoted only when better on validation
    if code != 0:
        assert main(["archive", "promote", str(run), candidate, "--to", str(target), "--force"]) == 0
    metrics = json.loads((target / "metrics.json").read_text())
    assert metrics["test_qoe"] is not None and metrics["versus_seed_on_validation"]["verdict"] == verdict


def test_when_s2_stops_every_design_the_best_stopped_ones_still_meet_the_seed_in_s3(tmp_path, monkeypatch):
    """A margin of -100 puts every candidate 'below' the seed's curve: S2 stops them all, yet S3 compares the best
    of them with the seed on equal budgets instead of ending with nothing to compare."""
    no_llm_env(monkeypatch)
    run = tmp_path / "run"
    assert main(["search", "--out", str(run), "--set", "budget.designs=2", *TINY,
                 "--set", "train.early_stop.margin=-100"]) == 0
    archive = Archive(run)
    finalists = archive.meta("finalists")
    candidates = [name for name in finalists if name != "seed-pensieve"]
    assert "seed-pensieve" in finalists and len(candidates) == 1
    design = archive.design(candidates[0])
    assert design["reason"].startswith("a finalist although S2 stopped it") and design["stage"] == "tested"
    assert "**Verdict:**" in (run / "report.md").read_text()


def test_kill_9_then_resume_loses_nothing_and_repeats_nothing(tmp_path, monkeypatch):
    no_llm_env(monkeypatch)
    run = tmp_path / "run"
    command = [sys.executable, "-m", "llmabr.cli.main", "search", "--out", str(run), "--set", "budget.designs=4", *TINY]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def screens_done() -> int:
        if not (run / "archive.sqlite").exists():
            return 0
        try:
            with contextlib.closing(sqlite3.connect(run / "archive.sqlite")) as connection:
                return connection.execute(
                    "SELECT COUNT(*) FROM tasks WHERE status = 'done' AND stage = 'screen'").fetchone()[0]
        except sqlite3.Error:  # the driver is creating it
            return 0

    # wait until some screening has finished (or the search has ended), then kill everything
    wait_for(lambda: screens_done() >= 2 or child.poll() is not None, timeout_s=240, interval_s=0.5)
    # kill -9 the driver and everything it started (its local Ray: GCS, raylet, workers in their own
    # process groups, and their cages), as a crash would; other Ray instances on the machine are untouched.
    # Until child.wait() the driver, even if it has just exited, stays a zombie: its pid and group are ours.
    assert child.poll() is None, "the search ended before it was killed: give it more work (budget.designs)"
    tree = descendants(child.pid)
    os.killpg(child.pid, signal.SIGKILL)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    child.wait()
    connection = sqlite3.connect(run / "archive.sqlite")
    done_before = connection.execute("SELECT design, stage, seed, finished_s FROM tasks WHERE status = 'done'").fetchall()
    unfinished = connection.execute("SELECT COUNT(*) FROM tasks WHERE status != 'done'").fetchone()[0]
    designs_before = {row[0] for row in connection.execute("SELECT name FROM designs")}
    connection.close()
    assert len(done_before) >= 2
    # what makes the resume a test: the kill interrupted the search (the report is its last act)
    assert not (run / "report.md").exists() and (unfinished > 0 or len(designs_before) < 5), child.returncode

    assert main(["search", "--resume", str(run)]) == 0
    archive = Archive(run)
    after = {(t["design"], t["stage"], t["seed"]): t for t in archive.tasks()}
    for design, stage, seed, finished_s in done_before:  # finished work was not run again
        assert after[(design, stage, seed)]["finished_s"] == finished_s and after[(design, stage, seed)]["attempts"] == 1
    assert designs_before <= {d["name"] for d in archive.designs()}  # nothing lost
    assert all(t["status"] == "done" for t in after.values())
    assert len([d for d in archive.designs() if d["origin"] == "offline"]) == 4  # no proposal made twice
    assert (run / "report.md").exists()


def test_llm_errors_back_off_and_the_search_carries_on(tmp_path, monkeypatch, server):
    """The endpoint fails for a while (500s past the client's retries), then answers; the search finishes.

    Two waits: the client's own retry (jittered, at most llm.backoff_base_s = 0.25 s), then, the client
    having given up, the search's: 4 x 0.25 s x 2^1 = 2 s before it asks the endpoint again.

    Scripted: a real server cannot be made to answer 500 twice and then succeed; a real server killed
    mid-search is in test_search_llm_server.py."""
    no_llm_env(monkeypatch)
    state = ("Analysis and ideas: buffer and throughput only.\n```python\nimport torch\n\n\ndef state(m):\n"
             "    top_kbps = m['ladder_kbps'][:, -1:]\n    valid = m['valid'][:, -8:]\n"
             "    rate = m['chunk_bytes'][:, -8:] / m['download_time_s'][:, -8:].clamp(min=1e-3) * valid\n"
             "    return {'buffer': m['buffer_s'][:, -1:] / 10.0, 'rate': rate / (top_kbps * 125.0),\n"
             "            'sizes': m['next_chunk_bytes'] / (top_kbps * 500.0)}\n```\n")
    server.script(*[Scripted(status=500, body={"error": {"message": "overloaded"}}) for _ in range(2)],
                  Scripted(body=completion_body([state])))
    run = tmp_path / "run"
    code = main(["search", "--out", str(run), "--set", "budget.designs=1", "--set", "proposer=llm",
                 "--set", f"llm.base_url={server.base_url}", "--set", "llm.max_retries=1",
                 "--set", "llm.backoff_base_s=0.25", *TINY])
    assert code == 0
    archive = Archive(run)
    llm_designs = [d for d in archive.designs() if d["origin"] == "llm"]
    assert len(llm_designs) == 1 and llm_designs[0]["stage"] in ("screened", "tested")
    log = [json.loads(line) for line in (run / "llm_requests.jsonl").read_text().splitlines()]
    assert [record["outcome"] for record in log] == ["failed", "ok"]
    arrivals_s = [request["received_s"] for request in server.chat_requests()]
    assert len(arrivals_s) == 3  # 500, retried once by the client: 500; later, from the search: 200
    [client_wait] = [error["wait_s"] for error in log[0]["errors"] if "wait_s" in error]
    assert 0 <= client_wait <= 0.25 and arrivals_s[1] - arrivals_s[0] >= client_wait
    assert arrivals_s[2] - arrivals_s[1] >= 2.0  # the search backed off before asking again
    assert "LLM proposer" in (run / "report.md").read_text()


def test_a_ray_worker_killed_mid_evaluation_is_retried(tmp_path, monkeypatch):
    no_llm_env(monkeypatch)
    run = tmp_path / "run"
    command = [sys.executable, "-m", "llmabr.cli.main", "search", "--out", str(run), "--set", "budget.designs=2", *TINY,
               "--set", "budget.screen_steps=6144"]
    search = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def stage_worker() -> int | None:
        """A Ray worker of this search (a descendant of its driver, so never another run's) that is
        running a stage: Ray names the worker's process after the task it runs."""
        for pid in descendants(search.pid):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if b"ray::_run_stage" in title:
                return pid
        return None

    seen: list[int] = []

    def found_or_ended() -> bool:
        pid = stage_worker()
        if pid is not None:
            seen.append(pid)
        return pid is not None or search.poll() is not None

    wait_for(found_or_ended, timeout_s=180, interval_s=0.5)
    assert seen, f"no Ray worker of this search was seen running a stage (search exit status {search.poll()})"
    os.kill(seen[-1], signal.SIGKILL)  # a worker dies in the middle of an evaluation
    _, stderr = search.communicate(timeout=600)
    assert search.returncode == 0, stderr[-2000:]
    archive = Archive(run)
    assert all(task["status"] == "done" for task in archive.tasks())  # the killed task ran again and finished
    assert (run / "report.md").exists()


def test_llm_budget_cap_stops_proposing_cleanly_with_a_complete_report(tmp_path, monkeypatch, llama_server):
    """A cap below the first request's worst case: nothing is sent to the real server, the search still reports."""
    from tests.llmabr.llama_server import chat_requests_answered

    no_llm_env(monkeypatch)
    run = tmp_path / "run"
    answered = chat_requests_answered(llama_server)
    code = main(["search", "--out", str(run), "--set", "budget.designs=3", "--set", "proposer=llm",
                 "--set", f"llm.base_url={llama_server.base_url}", "--set", f"llm.model={llama_server.model}",
                 "--set", "llm.budget_tokens=50", *TINY])
    assert code == 0 and chat_requests_answered(llama_server) == answered  # the worst case already crossed the cap
    archive = Archive(run)
    assert archive.meta("proposing_stopped").startswith("LLM budget reached")
    assert archive.design("seed-pensieve")["stage"] == "tested"
    report = (run / "report.md").read_text()
    assert "Proposing stopped: LLM budget reached" in report and "## Cascade" in report


def test_paper_mode_proposes_states_networks_then_their_combination(tmp_path, monkeypatch):
    no_llm_env(monkeypatch)
    run = tmp_path / "run"
    assert main(["search", "--out", str(run), "--mode", "paper", "--set", "budget.designs=2", *TINY]) == 0
    designs = Archive(run).designs()
    assert [d["kind"] for d in designs] == ["seed", "state", "network", "combo"]
    combo = designs[-1]
    assert combo["parent"] == f"{designs[1]['name']}+{designs[2]['name']}"
    assert (Archive(run).folder(combo["name"]) / "state.py").read_text() == \
        (Archive(run).folder(designs[1]["name"]) / "state.py").read_text()


def test_a_full_disk_on_archive_write_is_a_clear_error_and_the_run_resumes(tmp_path, monkeypatch):
    """SQLite's own SQLITE_FULL (max_page_count on the loop's connection) stands in for a full disk."""
    import io

    from rich.console import Console

    from llmabr.search.archive import ArchiveError
    from llmabr.search.config import load_search_config
    from llmabr.search.executor import RayExecutor
    from llmabr.search.loop import Search

    no_llm_env(monkeypatch)
    run = tmp_path / "run"
    config = load_search_config(None, [item for item in TINY if item != "--set"] + ["budget.designs=2"])
    search = Search(run, config, Console(file=io.StringIO()))
    pages = search.archive.db.execute("PRAGMA page_count").fetchone()[0]
    search.archive.db.execute(f"PRAGMA max_page_count = {pages + 1}")
    executor = RayExecutor(config.workers)
    try:
        with pytest.raises(ArchiveError, match="full.*intact.*--resume"):
            search.run(executor)
    finally:
        executor.shutdown()
    assert Archive(run).design("seed-pensieve") is not None  # still readable
    assert main(["search", "--resume", str(run)]) == 0  # and, with space again, it finishes
    assert all(task["status"] == "done" for task in Archive(run).tasks())


def test_bench_search_screens_the_same_replayed_designs_with_and_without_early_stop(tmp_path, monkeypatch, capsys):
    no_llm_env(monkeypatch)
    out = tmp_path / "bench"
    assert main(["bench", "search", "--designs", "2", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "early-stop " in printed and "no-early-stop" in printed and "designs per hour" in printed
    arms = json.loads((out / "bench.json").read_text())
    assert [arm["name"] for arm in arms] == ["early-stop", "no-early-stop"]
    replayed = sorted(p.name for p in (out / "designs").iterdir())
    for arm in arms:
        archive = Archive(out / arm["name"])
        assert arm["screened"] + arm["rejected_s0_s1"] == 2 and arm["per_hour"] > 0
        assert sorted(d["name"] for d in archive.designs() if d["origin"] == "replay") == replayed
        assert not archive.tasks(stage="train") and not archive.tasks(stage="test")  # screening only
        assert archive.meta("replay_cursor") == 2
    early = Archive(out / "early-stop").meta("config")
    assert early["early_stop"] is True and Archive(out / "no-early-stop").meta("config")["early_stop"] is False


def test_replay_with_nothing_usable_is_a_clear_error(tmp_path, monkeypatch, capsys):
    no_llm_env(monkeypatch)
    source = tmp_path / "replies.jsonl"
    source.write_text('{"kind": "state", "reply": "no code here"}\n')
    assert main(["search", "--out", str(tmp_path / "run"), "--replay", str(source), *TINY]) == 2
    err = capsys.readouterr().err
    assert "no design to replay" in err and "line 1" in err  # with the extraction's reason per reply
    assert not (tmp_path / "run").exists()  # refused before a run folder was made
