"""Where ``llmabr serve`` gets logits from: an exported graph in-process, or a caged child process.

* ``OnnxBackend(folder)``: ``policy.onnx`` + ``layout.json`` from ``llmabr export`` (or a shipped
  ``designs/<type>/<name>/`` holding them), run with onnxruntime in the server's process (a graph,
  no Python design code); layout.json must describe the simulator's row (``llmabr.export.folder``).
* ``CagedBackend(run)``: a trained run folder whose design cannot be exported. The design runs
  in ONE long-lived child (``llmabr.serve.caged_worker``) started through the cage's jail (its
  own session, resource limits, scrubbed environment, and where the server runs as root a
  throw-away uid and no network: ``cage.spawn_caged``); the server sends it rows and reads logits
  over pipes. If it dies or stops answering, the request that found it gets a 503 with the reason
  only when a fresh child (restarted at most ``max_restarts`` times; sessions live in the server,
  so nothing is lost) cannot answer either.

Both answer ``logits(row) -> float32 [n_levels]`` for one float32 row [size] and carry the
layout.json data (``.layout``) that the server builds rows with.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from llmabr.export.folder import GRAPH, LAYOUT, PolicyFolderError, check_layout
from llmabr.export.source import ExportError, layout_info, resolve_source, video_of
from llmabr.sandbox import cage


class BackendError(RuntimeError):
    """The policy cannot answer: why (the server answers 503 with it)."""


def open_backend(path: str | Path, video: str | None = None):
    """An ``OnnxBackend`` for an export folder, else a ``CagedBackend`` for a run folder (or RUN:NAME)."""
    folder = Path(path)
    present = [name for name in (GRAPH, LAYOUT) if (folder / name).is_file()]
    if len(present) == 2:
        return OnnxBackend(folder)
    try:
        source = resolve_source(path)
    except ExportError as error:
        if present:  # half an export folder: say which half is missing
            missing = LAYOUT if present == [GRAPH] else GRAPH
            raise BackendError(f"{folder}: {present[0]} without {missing}; an export folder holds both (llmabr "
                               "export RUN --out DIR writes them)") from None
        raise BackendError(f"{path}: neither an export folder (policy.onnx + layout.json from llmabr export) nor a "
                           f"trained run folder: {error}") from None
    return CagedBackend(source, video=video)


class OnnxBackend:
    kind = "onnx"
    blocking = False  # ~50 us per decision: answered on the event loop, no thread hop

    def __init__(self, folder: Path):
        from llmabr.export.parity import onnx_session

        folder = Path(folder)
        try:
            self.layout = json.loads((folder / "layout.json").read_text())
        except (OSError, ValueError) as error:
            raise BackendError(f"{folder / 'layout.json'}: cannot be read: {error}") from None
        if not isinstance(self.layout, dict):
            raise BackendError(f"{folder / 'layout.json'}: a JSON object is expected, got {type(self.layout).__name__}")
        try:
            check_layout(self.layout, folder / "layout.json")  # the row SessionHistory builds is the simulator's
        except PolicyFolderError as error:
            raise BackendError(str(error)) from None
        try:
            self.session = onnx_session(folder / "policy.onnx")
        except Exception as error:  # onnxruntime raises its own exception types
            raise BackendError(f"{folder / 'policy.onnx'}: onnxruntime cannot load it: {error}") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        signature = ([(i.name, i.shape[1:]) for i in inputs], [(o.name, o.shape[1:]) for o in outputs])
        expected = ([(self.layout["input"], [self.layout["size"]])], [(self.layout["output"], [self.layout["n_levels"]])])
        if signature != expected:
            raise BackendError(f"{folder}: policy.onnx has inputs/outputs {signature}, layout.json says {expected}")
        self.input_name, self.output_name = self.layout["input"], self.layout["output"]
        self.design = self.layout["design"]
        self.source = str(folder)

    def logits(self, row: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: row.reshape(1, -1)})[0][0]

    def unavailable(self) -> str | None:
        return None

    def close(self) -> None:
        pass


class _ChildDied(Exception):
    """The caged worker is gone or unusable (the message says how); a restart may help."""


class CagedBackend:
    kind = "caged"
    blocking = True  # a pipe round trip: run in a worker thread, not on the event loop

    def __init__(self, source, video: str | None = None, start_timeout_s: float = 120.0,
                 answer_timeout_s: float = 10.0, limits: cage.CageLimits | None = None, max_restarts: int = 3):
        self.layout = layout_info(source, video_of(source, video))
        self.design, self.source = source.design.name, str(source.run_dir)
        self.start_timeout_s, self.answer_timeout_s = start_timeout_s, answer_timeout_s
        self.max_restarts, self.restarts = max_restarts, 0
        # CPU seconds add up over a server's life: the rlimit only stops a runaway, the server decides when it ends.
        self.limits = limits or cage.CageLimits(wall_s=0.0, cpu_s=30 * 24 * 3600, readable=(
            str(source.run_dir / "design"), str(source.run_dir / source.weights)))
        self._lock = threading.Lock()
        self._pending = b""
        self._dead: str | None = None  # why the current child is gone (None: it is running)
        self._closed = False
        self.child: cage.CagedProcess | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix="llmabr-serve-"))
        (self.workdir / "request.json").write_text(json.dumps({
            "run_dir": str(source.run_dir), "weights": source.weights, "history_len": self.layout["history_len"],
            "n_levels": self.layout["n_levels"], "size": self.layout["size"], "design": self.design}))
        try:
            self._start()
        except _ChildDied as died:
            self.close()
            raise BackendError(f"{self.design}: the caged policy process did not start: {died}") from None

    @property
    def process(self) -> subprocess.Popen | None:
        return self.child.process if self.child is not None else None

    def _start(self) -> None:
        """Start a worker through the cage (with pipes) and wait for its ready line."""
        self._pending = b""
        with open(self.workdir / "stderr.txt", "wb") as stderr:
            self.child = cage.spawn_caged([sys.executable, "-I", "-m", "llmabr.serve.caged_worker", "request.json"],
                                          self.workdir, self.limits, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=stderr)
        ready = self._read_answer(self.start_timeout_s)
        if "error" in ready or not ready.get("ready"):
            self._stop_child()
            raise _ChildDied(ready.get("error") or f"unexpected first answer {ready}")
        self._dead = None

    def _restart(self) -> None:
        """Replace a dead worker (sessions live in the server, so nothing is lost), at most ``max_restarts`` times."""
        if self.restarts >= self.max_restarts:
            raise BackendError(f"{self._dead}; not restarted: all {self.max_restarts} restarts were used")
        self.restarts += 1
        try:
            self._start()
        except _ChildDied as died:
            self._dead = f"restart {self.restarts} of {self.max_restarts} failed: {died}"
            raise BackendError(self._dead) from None

    def _read_answer(self, timeout_s: float) -> dict:
        """One JSON line from the worker within ``timeout_s``; a dead or silent worker is killed."""
        deadline = time.monotonic() + timeout_s
        stdout = self.child.process.stdout
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while b"\n" not in self._pending:
                left_s = deadline - time.monotonic()
                if left_s <= 0 or not selector.select(left_s):
                    self._died(f"no answer within {timeout_s:g} s")
                data = os.read(stdout.fileno(), 1 << 16)
                if not data:
                    try:
                        self.child.process.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        pass
                    self._died("it closed its output")
                self._pending += data
        line, self._pending = self._pending.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            self._died(f"unreadable answer {line[:200]!r}")

    def _died(self, what: str):
        returncode = self.child.process.poll()
        state = "still running" if returncode is None else (
            f"exited with status {returncode}" if returncode >= 0 else f"killed by signal {-returncode}")
        self._dead = f"the caged policy process failed ({what}; {state})" + self._stderr_line()
        self._stop_child()
        raise _ChildDied(self._dead)

    def _stderr_line(self) -> str:
        return cage.last_line(self.workdir / "stderr.txt")

    def _ask(self, row: np.ndarray) -> dict:
        try:
            self.child.process.stdin.write((json.dumps({"rows": [row.tolist()]}) + "\n").encode())
        except (BrokenPipeError, OSError):
            self._died("its input pipe closed")
        return self._read_answer(self.answer_timeout_s)

    def logits(self, row: np.ndarray) -> np.ndarray:
        """Logits for one row. A worker found dead is restarted and asked again once (see ``_restart``)."""
        with self._lock:  # one request in flight on the pipe at a time
            if self._closed:
                raise BackendError(self._dead or "the server closed the caged policy process")
            answer = None
            for _attempt in range(2):
                if self._dead is not None or self.child.process.poll() is not None:
                    if self._dead is None:
                        self._dead = f"the caged policy process ended (status {self.child.process.returncode})"
                        self._stop_child()
                    self._restart()
                try:
                    answer = self._ask(row)
                    break
                except _ChildDied:
                    continue
            if answer is None:
                raise BackendError(self._dead)
        if "error" in answer:
            raise BackendError(f"the design raised: {answer['error']}")
        return np.asarray(answer["logits"][0], dtype=np.float32)

    def unavailable(self) -> str | None:
        """None while the policy can answer: running, or dead with a restart left (the next request restarts it)."""
        if self._closed:
            return self._dead or "the server closed the caged policy process"
        if self._dead is None and self.child is not None and self.child.process.poll() is not None:
            self._dead = f"the caged policy process ended (status {self.child.process.returncode})" + self._stderr_line()
        if self._dead is not None and self.restarts >= self.max_restarts:
            return f"{self._dead}; not restarted: all {self.max_restarts} restarts were used"
        return None

    def _stop_child(self) -> None:
        """Kill the worker and everything it started (its work folder stays for a restart)."""
        child = self.child
        if child is None:
            return
        for pipe in (child.process.stdin, child.process.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        child.kill()
        self.process_returncode = child.process.returncode

    def close(self) -> None:
        """Kill the worker and everything it started; remove its work folder."""
        with self._lock:  # after a request in flight (at most answer_timeout_s)
            self._stop_child()
            if self._dead is None:
                self._dead = "the server closed the caged policy process"
            self._closed = True
            shutil.rmtree(self.workdir, ignore_errors=True)
