"""The cage: limits, deadline, scrubbed environment, and nothing left behind."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from llmabr.sandbox.cage import CageLimits, processes_in, run_caged, session_processes

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
    time.sleep(0.2)
    assert processes_in(workdir) == []  # also catches processes that left the session


def test_a_clean_job_exits_zero_and_reports_its_isolation(tmp_path):
    result, _ = caged(tmp_path, "print('hello from the cage')")
    assert result.returncode == 0 and not result.timed_out
    assert "hello from the cage" in result.stdout_tail
    assert result.isolation["limits"]["address_space_bytes"] == CageLimits().address_space_bytes
    if ROOT:
        assert result.isolation["pid_namespace"] and result.isolation["network_namespace"]
        assert result.isolation["capabilities_dropped"]


def test_infinite_loop_is_killed_at_the_deadline(tmp_path):
    start = time.perf_counter()
    result, workdir = caged(tmp_path, "while True:\n    pass\n", wall_s=1.5)
    assert result.timed_out and result.returncode == -9
    assert time.perf_counter() - start < 10
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


def test_parent_stays_responsive(tmp_path):
    caged(tmp_path, "import os\nos.kill(os.getppid(), 9)\n")  # tries to kill its parent (the jail)
    assert sum(range(1000)) == 499500  # and this process is untouched


def test_a_cage_dies_with_its_caller(tmp_path):
    """kill -9 of the orchestrator (or a Ray worker) takes its caged workload with it."""
    import signal
    import subprocess
    import sys
    import time

    marker = f"cage-orphan-{time.time_ns()}"
    caller = subprocess.Popen([sys.executable, "-c", (
        "import sys\nfrom pathlib import Path\nfrom llmabr.sandbox.cage import run_caged, CageLimits\n"
        f"run_caged([sys.executable, '-c', 'import time; time.sleep(60)  # {marker}'], Path({str(tmp_path)!r}), "
        "CageLimits(wall_s=120))\n")])

    def workloads():
        listing = subprocess.run(["ps", "-eww", "-o", "pid,args"], capture_output=True, text=True).stdout
        return [line for line in listing.splitlines() if marker in line and "run_caged" not in line]

    deadline = time.monotonic() + 30
    while not workloads() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert workloads(), "the caged workload never started"
    caller.send_signal(signal.SIGKILL)
    caller.wait()
    deadline = time.monotonic() + 10
    while workloads() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not workloads()
