"""``llm.local_model``: llama.cpp's server started for a GGUF file, and stopped however its user ends."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import pytest

from llmabr.cli.main import main
from llmabr.proposer.local_server import LocalModelError, LocalServer, LocalServerError, check_local_model, server_env
from tests.llmabr.llama_server import server_processes_of, smollm2_path


def answers(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2.0) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def test_a_missing_or_non_gguf_model_is_a_clear_error_before_anything_starts(tmp_path, capsys):
    text_file = tmp_path / "model.gguf"
    text_file.write_text("not a model")
    with pytest.raises(LocalModelError, match="does not exist"):
        check_local_model(tmp_path / "missing.gguf")
    with pytest.raises(LocalModelError, match="is not a file"):
        check_local_model(tmp_path)
    with pytest.raises(LocalModelError, match=r"is not a GGUF file \(it starts with b'not '"):
        check_local_model(text_file)

    run = tmp_path / "run"
    assert main(["search", "--local-model", str(tmp_path / "missing.gguf"), "--out", str(run)]) == 2
    assert "missing.gguf does not exist" in capsys.readouterr().err and not run.exists()
    assert main(["propose", "--local-model", str(text_file), "--out", str(tmp_path / "p")]) == 2
    assert "is not a GGUF file" in capsys.readouterr().err


def test_the_server_gets_no_keys_and_no_settings_from_the_environment():
    environ = {"PATH": "/usr/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "0",
               "OPENAI_API_KEY": "sk-secret", "API_KEY": "x", "HOST": "0.0.0.0", "PORT": "80", "MODEL": "other.gguf",
               "N_CTX": "1"}
    assert server_env(environ) == {"PATH": "/usr/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
                                   "CUDA_VISIBLE_DEVICES": "0"}


def test_a_server_that_cannot_load_its_model_is_reported_with_its_output(tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(64))  # the magic, then nothing llama.cpp can read
    smollm2_path()  # skips where llama-cpp-python is not installed
    server = LocalServer(broken, threads=1, start_timeout_s=60.0, log_path=tmp_path / "server.log")
    with pytest.raises(LocalServerError, match="exited with code") as caught:
        server.start()
    assert "broken.gguf" in str(caught.value) and str(tmp_path / "server.log") in str(caught.value)
    assert server.process is None and "--- llmabr: starting" in (tmp_path / "server.log").read_text()


def test_a_started_server_answers_then_stops_with_its_process_group(tmp_path):
    server = LocalServer(smollm2_path(), n_ctx=512, threads=1, log_path=tmp_path / "server.log")
    with server:
        assert answers(server.base_url)
        pid = server.process.pid
        assert os.getpgid(pid) == pid  # its own process group, stopped as a whole
        assert pid in server_processes_of(os.getpid())
    assert server.process is None and not answers(server.base_url)
    assert pid not in server_processes_of(os.getpid())


def test_the_server_exits_when_the_process_that_started_it_is_killed(tmp_path):
    """kill -9 leaves no finally or atexit to run: the kernel's parent-death signal stops the server."""
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from llmabr.proposer.local_server import LocalServer
        server = LocalServer({str(smollm2_path())!r}, n_ctx=512, threads=1, log_path=Path({str(tmp_path / "s.log")!r}))
        server.start()
        print(server.process.pid, server.base_url, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        started = parent.stdout.readline().split()
        assert len(started) == 2, "the parent did not start its server"
        _, base_url = started
        assert answers(base_url)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline_s = time.monotonic() + 20
    while time.monotonic() < deadline_s and server_processes_of(parent.pid):
        time.sleep(0.2)
    assert server_processes_of(parent.pid) == [] and not answers(base_url)
