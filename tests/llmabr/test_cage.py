"""The cage: limits, deadline, scrubbed environment, and nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmabr.sandbox.cage import CageLimits, processes_in, run_caged, session_processes
from tests.conftest import wait_for

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="namespaces and read-only mounts need root; rlimits still apply")


def caged(tmp_path: Path, code: str, **limits):
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "job.py").write_text(code)
    result = run_caged([sys.executable, "-I", "job.py"], workdir, CageLimits(**limits))
    return result, workdir


def assert_nothing_left(result, workdir: Path):
    assert session_processes(result.session_id) == []
    # also catches processes that left the session; polled (a pid namespace's teardown is asynchronous),
    # so a process that outlives the cage fails this after the deadline
    assert wait_for(lambda: processes_in(workdir) == [], timeout_s=5.0), processes_in(workdir)


def test_a_clean_job_exits_zero_and_reports_its_isolation(tmp_path):
    result, _ = caged(tmp_path, "print('hello from the cage')")
    assert result.returncode == 0 and not result.timed_out
    assert "hello from the cage" in result.stdout_tail
    assert result.isolation["limits"]["address_space_bytes"] == CageLimits().address_space_bytes
    if ROOT:
        assert result.isolation["pid_namespace"] and result.isolation["network_namespace"]
        assert result.isolation["capabilities_dropped"]


def test_infinite_loop_is_killed_at_the_deadline(tmp_path):
    result, workdir = caged(tmp_path, "while True:\n    pass\n", wall_s=1.5)
    assert result.timed_out and result.returncode == -9
    assert result.wall_s >= 1.5  # not before it
    assert_nothing_left(result, workdir)


def test_cpu_limit_kills_a_busy_job(tmp_path):
    result, _ = caged(tmp_path, "while True:\n    pass\n", wall_s=20, cpu_s=1)
    assert not result.timed_out and result.signal_name in ("SIGXCPU", "SIGKILL")
    assert "CPU" in result.describe() or "SIGKILL" in result.describe()


def test_memory_bomb_fails_inside_the_cage(tmp_path):
    result, _ = caged(tmp_path, "blocks = []\nwhile True:\n    blocks.append(bytearray(1 << 28))\n",
                      address_space_bytes=1 << 30)
    assert result.returncode != 0 and "MemoryError" in result.stderr_tail


def test_fork_bomb_and_setsid_escape_leave_no_process(tmp_path):
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    time.sleep(300)\n"
        "for _ in range(50):\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(300)\n"
        "    except OSError:\n"
        "        break\n"
        "time.sleep(300)\n"
    )
    result, workdir = caged(tmp_path, code, wall_s=2.0)
    assert result.timed_out
    if ROOT:  # the pid namespace takes every process with its init, escaped ones included
        assert_nothing_left(result, workdir)
    else:  # without namespaces only the session can be killed; say what is not covered
        assert session_processes(result.session_id) == []


def test_environment_is_scrubbed(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    result, workdir = caged(tmp_path, "import os\nprint(sorted(os.environ.items()))\nprint(os.getcwd())")
    assert "sk-secret-value" not in result.stdout_tail and "proxy.invalid" not in result.stdout_tail
    assert "OPENAI_API_KEY" not in result.stdout_tail
    assert str(workdir) in result.stdout_tail  # the working directory is the empty sandbox folder


@needs_root
def test_file_system_outside_the_workdir_is_read_only(tmp_path):
    outside = tmp_path / "outside.txt"
    code = f"open({str(outside)!r}, 'w').write('x')\n"
    result, workdir = caged(tmp_path, code + "open('inside.txt', 'w').write('ok')\n")
    assert result.returncode != 0 and ("Read-only file system" in result.stderr_tail  # without root: read-only
                                       or "No such file or directory" in result.stderr_tail)  # root: not even visible
    assert not outside.exists()
    (tmp_path / "second").mkdir()
    ok, ok_workdir = caged(tmp_path / "second", "open('inside.txt', 'w').write('ok')\n")
    assert ok.returncode == 0 and (ok_workdir / "inside.txt").read_text() == "ok"


@needs_root
def test_only_python_the_package_and_readable_paths_are_visible(tmp_path):
    """The workload's root holds system folders, Python, llmabr/ and simulator/, the work folder and what the
    caller lists as readable: not the repository's traces or runs, not files beside the work folder."""
    from simulator.paths import REPO_ROOT

    secret = tmp_path / "scores.json"
    secret.write_text("{}")
    granted = tmp_path / "granted.txt"
    granted.write_text("data")
    code = "\n".join([
        "import os, json",
        "seen = {p: os.path.exists(p) for p in json.loads(open('paths.json').read())}",
        f"seen['granted'] = open({str(granted)!r}).read()",
        "try:",
        f"    open({str(granted)!r}, 'a').write('x')",
        "    seen['granted_writable'] = True",
        "except OSError:",
        "    seen['granted_writable'] = False",
        "import llmabr.scoring.actor, simulator.core, torch",  # what a caged design process needs still imports
        "open('seen.json', 'w').write(json.dumps(seen))",
    ])
    hidden = [str(secret), str(REPO_ROOT / "traces"), str(REPO_ROOT / "designs"), str(REPO_ROOT / "README.md"),
              str(REPO_ROOT.parent / "shared"), "/root"]  # /root itself exists: it leads to the interpreter
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "paths.json").write_text(__import__("json").dumps(hidden + [str(REPO_ROOT / "llmabr"), "/usr/bin"]))
    (workdir / "job.py").write_text(code)
    result = run_caged([sys.executable, "-I", "job.py"], workdir, CageLimits(wall_s=120, cpu_s=120,
                                                                               readable=(str(granted),)))
    assert result.returncode == 0, result.stderr_tail
    seen = __import__("json").loads((workdir / "seen.json").read_text())
    assert not any(seen[path] for path in hidden if path != "/root"), seen
    assert seen[str(REPO_ROOT / "llmabr")] and seen["/usr/bin"] and seen["granted"] == "data"
    assert seen["granted_writable"] is False and granted.read_text() == "data"
    assert result.isolation["visible_paths"] and str(workdir) in result.isolation["visible_paths"]


@needs_root
def test_no_network(tmp_path):
    code = "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=2)\n"
    result, _ = caged(tmp_path, code)
    assert result.returncode != 0 and "unreachable" in result.stderr_tail.lower()


def test_a_workload_that_kills_its_parent_ends_its_own_run_at_once_and_the_caller_cages_the_next(tmp_path):
    """The workload kills its parent, the jail (in a pid namespace getppid() is 0, and kill(0) signals the
    cage's own process group), then would sleep for a minute: run_caged sees the jail die and returns long
    before the deadline, nothing is left, and the caller (this process) goes on caging jobs."""
    result, workdir = caged(tmp_path, "import os, time\nos.kill(os.getppid(), 9)\ntime.sleep(60)\n", wall_s=30)
    assert not result.timed_out and result.returncode == -9, result.describe()
    assert_nothing_left(result, workdir)
    (tmp_path / "next").mkdir()
    again, _ = caged(tmp_path / "next", "print('caged again')")
    assert again.returncode == 0 and "caged again" in again.stdout_tail


@needs_root
def test_a_workload_cannot_signal_a_process_outside_the_cage(tmp_path):
    """A process of the caller's (a stand-in for the orchestrator) is out of reach: it is not in the
    workload's pid namespace (nor, where a throw-away uid runs the workload, of its uid)."""
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        code = (f"import os\ntry:\n    os.kill({victim.pid}, 9)\n    print('signal sent')\n"
                "except OSError as error:\n    print('refused:', type(error).__name__)\n")
        result, _ = caged(tmp_path, code)
        assert result.returncode == 0 and "refused:" in result.stdout_tail, result.stdout_tail + result.stderr_tail
        assert victim.poll() is None  # still running
    finally:
        victim.kill()
        victim.wait()


def test_a_cage_dies_with_its_caller(tmp_path):
    """kill -9 of the orchestrator (or a Ray worker) takes its caged workload with it."""
    import signal

    caller = subprocess.Popen([sys.executable, "-c", (
        "import sys\nfrom pathlib import Path\nfrom llmabr.sandbox.cage import run_caged, CageLimits\n"
        f"run_caged([sys.executable, '-c', 'import time; time.sleep(60)'], Path({str(tmp_path)!r}), "
        "CageLimits(wall_s=120))\n")])
    # the jail writes isolation.json just before it execs the workload; both work in tmp_path (found by
    # their working directory, not by searching the process list for a name)
    assert wait_for(lambda: (tmp_path / "isolation.json").exists() and processes_in(tmp_path), timeout_s=60), \
        "the caged workload never started"
    caller.send_signal(signal.SIGKILL)
    caller.wait()
    assert wait_for(lambda: processes_in(tmp_path) == [], timeout_s=10), processes_in(tmp_path)
