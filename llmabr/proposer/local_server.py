"""llama.cpp's OpenAI-compatible server for a local GGUF file, started and stopped by the command using it.

    server = LocalServer.for_config(config, log_path=run_dir / "llama_server.log").start()
    try:
        client = LLMClient(server.client_config(config), run_dir)   # no API key needed
        ...
    finally:
        server.stop()

``start`` checks the file (it must exist and begin with the GGUF magic) and the installation
(``llama-cpp-python[server]``, the ``llmabr[local-llm]`` extra), picks a free port on 127.0.0.1,
runs ``python -m llama_cpp.server`` in its own process group and polls ``/v1/models`` until the
model is loaded. ``stop`` ends the whole group: SIGTERM, then SIGKILL after a grace period.
The server is stopped however the command ends: ``stop`` runs from the caller's ``finally``,
from ``atexit``, and if this process is killed outright the kernel tells the server
(Linux ``PR_SET_PDEATHSIG``, set in the child before llama.cpp loads), which then exits. The
death signal follows the *thread* that started the server, so start it from the main thread.

llama_cpp.server reads settings from environment variables named like its options (HOST,
PORT, MODEL, API_KEY, ...; HOST and PORT even win over its command line), so the server gets
a scrubbed environment: only what a process needs to run (PATH, locale, library paths, thread
and GPU selection). API keys never reach it. Its output goes to ``log_path`` (a temporary file
when None), whose tail is quoted when it fails to start.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

from llmabr.proposer.client import LLMError
from llmabr.proposer.llm_config import LLMConfig

GGUF_MAGIC = b"GGUF"
INSTALL_HINT = "pip install 'llmabr[local-llm]'"
# Top-level modules of llama-cpp-python and of its [server] extra; checked without importing them.
SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
ENV_KEEP = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
            "LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT")
ENV_KEEP_PREFIXES = ("LC_", "OMP_", "GGML_", "CUDA_", "HIP_", "ROCR_", "GPU_DEVICE_", "VK_", "ONEAPI_", "ZE_")
# The server process: arm the parent-death signal (Linux), give up if the parent is already gone,
# then run ``python -m llama_cpp.server ARGS``. Run with ``python -c`` so that the server process
# needs nothing of llmabr. argv: [parent pid, server options...].
SERVE_SCRIPT = """
import os, runpy, signal, sys
parent_pid, args = int(sys.argv[1]), sys.argv[2:]
if sys.platform.startswith("linux"):
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:
        sys.exit(0)
sys.argv = ["llama_cpp.server", *args]
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""
STOP_GRACE_S = 5.0
POLL_S = 0.25
LOG_TAIL_CHARS = 3000


class LocalModelError(ValueError):
    """``llm.local_model`` cannot be served: the file is missing or not GGUF, or llama-cpp-python is absent."""


class LocalServerError(LLMError):
    """llama.cpp's server did not come up (it exited, or was not ready in time); the message quotes its output."""


def check_local_model(path: str | os.PathLike) -> Path:
    """The model file, resolved, after checking that it is a GGUF file and that llama.cpp's server is installed."""
    model = Path(str(path)).expanduser().resolve()
    if not model.exists():
        raise LocalModelError(f"llm.local_model: {model} does not exist")
    if not model.is_file():
        raise LocalModelError(f"llm.local_model: {model} is not a file (give the path of a .gguf file)")
    with open(model, "rb") as handle:
        head = handle.read(len(GGUF_MAGIC))
    if head != GGUF_MAGIC:
        raise LocalModelError(f"llm.local_model: {model} is not a GGUF file (it starts with {head!r}, not "
                              f"{GGUF_MAGIC!r}); llama.cpp loads GGUF models only: download a .gguf build of the "
                              f"model or convert it with llama.cpp's convert_hf_to_gguf.py")
    missing = [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise LocalModelError(f"llm.local_model needs llama-cpp-python with its server extra, which is not installed "
                              f"(missing modules: {', '.join(missing)}): {INSTALL_HINT}")
    return model


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_env(environ: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in environ.items()
            if name in ENV_KEEP or name.startswith(ENV_KEEP_PREFIXES)}


class LocalServer:
    """One llama.cpp server process for one GGUF file, on 127.0.0.1, reachable while started.

    model_path       the GGUF file
    n_ctx            context window in tokens: prompt plus reply must fit, else requests fail
                     with HTTP 400 ("This model's maximum context length is ...")
    threads          CPU threads for prompt processing and generation (None: available cores)
    gpu_layers       layers offloaded to a GPU by a GPU build (0: CPU only; -1: all)
    start_timeout_s  loading the model may take this long before ``start`` gives up
    log_path         where the server's stdout and stderr go (None: a temporary file)
    extra_args       more ``llama_cpp.server`` options, e.g. ("--cache", "true")
    """

    def __init__(self, model_path: str | os.PathLike, n_ctx: int = 4096, threads: int | None = None,
                 gpu_layers: int = 0, start_timeout_s: float = 300.0, log_path: Path | None = None,
                 extra_args: tuple[str, ...] = ()):
        self.model_path = Path(str(model_path))
        self.n_ctx, self.gpu_layers, self.start_timeout_s = n_ctx, gpu_layers, start_timeout_s
        self.threads = threads or available_cores()
        self.log_path = log_path
        self.extra_args = tuple(extra_args)
        self.model = self.model_path.name  # the alias the server answers to
        self.port: int | None = None
        self.process: subprocess.Popen | None = None

    @classmethod
    def for_config(cls, config: LLMConfig, log_path: Path | None = None) -> "LocalServer":
        if config.local_model is None:
            raise ValueError("llm.local_model is not set")
        return cls(config.local_model, n_ctx=config.local_n_ctx, threads=config.local_threads,
                   gpu_layers=config.local_gpu_layers, start_timeout_s=config.local_start_timeout_s,
                   log_path=log_path)

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the local server is not started")
        return f"http://127.0.0.1:{self.port}/v1"

    def client_config(self, config: LLMConfig) -> LLMConfig:
        """``config`` pointed at this server: its URL, and its model alias as the model name."""
        return replace(config, base_url=self.base_url, model=self.model)

    def describe(self) -> str:
        return f"local {self.model} via llama.cpp ({self.threads} threads, n_ctx {self.n_ctx})"

    # -- start and stop ----------------------------------------------------------------------------

    def start(self) -> "LocalServer":
        """Start the server and wait until it answers; LocalModelError or LocalServerError if it cannot."""
        if self.process is not None:
            return self
        self.model_path = check_local_model(self.model_path)
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        deadline_s = time.monotonic() + self.start_timeout_s
        for _ in range(3):  # another process may take the free port before the server binds it: pick another
            self.port = free_port()
            with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
                log.write(f"--- llmabr: starting llama_cpp.server {' '.join(self._command()[4:])}\n".encode())
                log.flush()
                self.process = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=subprocess.STDOUT, env=server_env(dict(os.environ)),
                                                start_new_session=True)
            atexit.register(self.stop)
            try:
                self._wait_ready(deadline_s)
                return self
            except LocalServerError as error:
                port_taken = "address already in use" in str(error).lower()
                self.stop()
                if not port_taken:
                    raise
        raise LocalServerError(f"llama.cpp's server could not bind a free port on 127.0.0.1 in 3 tries; "
                               f"see {self.log_path}")

    def stop(self) -> None:
        """Stop the server's whole process group (SIGTERM, then SIGKILL); safe to call more than once."""
        process, self.process = self.process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- helpers -------------------------------------------------------------------------------------

    def _command(self) -> list[str]:
        return [sys.executable, "-c", SERVE_SCRIPT, str(os.getpid()),
                "--model", str(self.model_path), "--model_alias", self.model, "--host", "127.0.0.1",
                "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads),
                "--n_threads_batch", str(self.threads), "--n_gpu_layers", str(self.gpu_layers), *self.extra_args]

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as handle:
            handle.seek(max(0, self.log_path.stat().st_size - chars))
            return handle.read().decode(errors="replace")

    def _wait_ready(self, deadline_s: float) -> None:
        url = f"{self.base_url}/models"
        while True:
            code = self.process.poll()
            if code is not None:
                raise LocalServerError(f"llama.cpp's server for {self.model_path} exited with code {code} before it "
                                       f"was ready; the end of its output ({self.log_path}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2.0) as response:
                    if response.status == 200 and json.load(response).get("data"):
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass  # not listening yet, or still loading the model
            if time.monotonic() > deadline_s:
                raise LocalServerError(f"llama.cpp's server for {self.model_path} was not ready after "
                                       f"{self.start_timeout_s:g} s (llm.local_start_timeout_s); the end of its "
                                       f"output ({self.log_path}):\n{self.log_tail()}")
            time.sleep(POLL_S)
