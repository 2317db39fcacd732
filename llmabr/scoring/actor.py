"""Trusted scoring of a design: the simulator and the QoE run HERE; the design only picks levels.

``CagedActor(design_dir, history_len, n_levels)`` starts the design in the cage
(``llmabr.scoring.actor_entry``: its own session, limits, scrubbed environment, no network,
a work folder holding nothing but the design's two files) and keeps it for many evaluations.
``actor.evaluate(weights_bytes, traces, video, mode, qoe)`` runs the deterministic test protocol
(``simulator.baselines.protocol.run_test_protocol``) in this process with a ``RemotePolicy``: each
chunk step sends the observation rows of every trace in one frame and gets one level per row
back. Levels are checked (shape, integer, in range); rewards, rebuffering and every statistic are
computed by the simulator in this process, which never executes design code. So a design that
patches numpy, torch or builtins in its own process changes at most its own decisions.

``OnnxActor(name, history_len, n_levels)`` is the same cage for an exported graph
(``llmabr eval --policy``): its ``evaluate`` takes the bytes of ``policy.onnx`` instead of a
state_dict, and onnxruntime parses and runs the graph only in the caged process, since the graph
was traced from design code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from llmabr.sandbox import cage
from llmabr.scoring import wire

START_TIMEOUT_S = 180.0  # torch import and the design's own set-up, on a loaded machine
STEP_TIMEOUT_S = 60.0  # one batched decision (the probe caps latency at 250 ms for 256 rows)


class ScoringError(RuntimeError):
    """The design could not be scored: why (its own error, a bad answer, or what the cage did)."""


class RemotePolicy:
    """A caged design as a batched policy (``reset(mask)`` / ``act(obs)``) for ``run_test_protocol``."""

    def __init__(self, actor: "CagedActor"):
        self.actor, self.name = actor, actor.design_name
        self.levels: list[np.ndarray] = []  # every step's answer, [n_traces] each

    def reset(self, mask=None) -> None:
        pass

    def act(self, obs: np.ndarray) -> np.ndarray:
        header, actions = self.actor.ask({"op": "act"}, np.ascontiguousarray(obs, dtype=np.float32))
        if header.get("op") != "actions" or not isinstance(actions, np.ndarray):
            raise ScoringError(f"the design answered {header} instead of levels")
        if actions.shape != (obs.shape[0],) or actions.dtype != np.int32:
            raise ScoringError(f"the design answered levels of shape {actions.shape} ({actions.dtype}), "
                               f"expected ({obs.shape[0]},) int32")
        if actions.min(initial=0) < 0 or actions.max(initial=0) >= self.actor.n_levels:
            raise ScoringError(f"the design answered a level outside 0..{self.actor.n_levels - 1}")
        self.levels.append(actions.copy())
        return actions.copy()


class CagedActor:
    """One caged design process answering levels for many evaluations (one fork each, see actor_entry).

    After each ``evaluate``, ``last_levels`` holds the levels it answered: int32 [n_traces, n_steps],
    traces in the protocol's (sorted) order.
    """

    def __init__(self, design_dir: Path, history_len: int, n_levels: int, limits: cage.CageLimits | None = None,
                 start_timeout_s: float = START_TIMEOUT_S, step_timeout_s: float = STEP_TIMEOUT_S):
        self.n_levels, self.step_timeout_s = n_levels, step_timeout_s
        self.last_levels: np.ndarray | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix="llmabr-actor-"))
        request = self._prepare(design_dir)
        (self.workdir / "request.json").write_text(json.dumps(
            {**request, "history_len": history_len, "n_levels": n_levels}))
        self.limits = limits or cage.CageLimits(wall_s=0.0, cpu_s=7 * 24 * 3600, address_space_bytes=8 << 30)
        self.stderr_path = self.workdir / "stderr.txt"
        with open(self.stderr_path, "wb") as stderr:
            self.child = cage.spawn_caged([sys.executable, "-I", "-m", "llmabr.scoring.actor_entry", "request.json"],
                                          self.workdir, self.limits, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=stderr)
        self.reader = wire.Reader(self.child.process.stdout.fileno())
        self.closed = False
        try:
            ready, _ = self._read(start_timeout_s)
        except ScoringError:
            self.close()
            raise
        if not ready.get("ready"):
            self.close()
            raise ScoringError(ready.get("error") or f"the design process answered {ready} when starting")

    def _prepare(self, design_dir) -> dict:
        """Put what the caged process may see into the work folder; returns the request's own keys."""
        from llmabr.design.format import load_design, write_design

        design = load_design(Path(design_dir))
        self.design_name = design.name
        write_design(design, self.workdir / "design")  # only the design's files: no runs, traces or scores
        return {"design": "design"}

    def _read(self, timeout_s: float) -> tuple[dict, object]:
        try:
            return self.reader.read(timeout_s)
        except wire.WireError as error:
            raise ScoringError(f"the caged design process failed ({error}; {self._state()})" + self._stderr_line()) from None

    def _state(self) -> str:
        return cage.process_state(self.child.process)

    def _stderr_line(self) -> str:
        return cage.last_line(self.stderr_path)

    def ask(self, header: dict, payload=None, timeout_s: float | None = None) -> tuple[dict, object]:
        """Send one frame and read the answer; an ``error`` answer raises ``ScoringError``."""
        try:
            wire.send(self.child.process.stdin.fileno(), header, payload)
        except OSError as error:
            raise ScoringError(f"the caged design process is gone ({error}; {self._state()})" + self._stderr_line()) from None
        answer, data = self._read(self.step_timeout_s if timeout_s is None else timeout_s)
        if "error" in answer:
            raise ScoringError(str(answer["error"])[:2000])
        return answer, data

    def evaluate(self, weights: bytes, traces, video, mode: str = "default", qoe: str = "lin") -> list[dict]:
        """Per-trace rows of the deterministic test protocol for the policy with ``weights`` (state_dict bytes)."""
        from llmabr.train.evaluate import evaluate

        if self.closed:
            raise ScoringError("the caged design process was closed")
        self.ask({"op": "evaluate"}, weights, timeout_s=self.step_timeout_s)
        policy = RemotePolicy(self)
        try:
            rows = evaluate(policy, traces, video, mode=mode, qoe=qoe)
        except ScoringError:
            self.close()  # mid-evaluation: the process's state is unknown, never reuse it
            raise
        self.ask({"op": "end"})
        self.last_levels = np.stack(policy.levels, axis=1)
        return rows

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            wire.send(self.child.process.stdin.fileno(), {"op": "quit"})
        except OSError:
            pass
        for pipe in (self.child.process.stdin, self.child.process.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        self.child.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class OnnxActor(CagedActor):
    """An exported graph scored like a design: ``evaluate(graph_bytes, ...)`` with ``policy.onnx``'s bytes.

    The caged process (``actor_entry`` with ``"backend": "onnx"``) imports onnxruntime and loads
    the graph in the child it forks for each evaluation; its work folder holds nothing (the graph
    arrives over the pipe). ``input_name`` / ``output_name``: the graph's tensors (layout.json's
    ``input`` and ``output``); the child refuses a graph whose signature is not
    ``input`` float32 [batch, size] -> ``output`` float32 [batch, n_levels].
    """

    def __init__(self, name: str, history_len: int, n_levels: int, input_name: str = "obs",
                 output_name: str = "logits", **kwargs):
        self._tensors = {"input": input_name, "output": output_name}
        super().__init__(name, history_len, n_levels, **kwargs)

    def _prepare(self, name) -> dict:
        self.design_name = str(name)
        return {"backend": "onnx", **self._tensors}


def score_onnx(graph: bytes, name: str, traces, video, mode: str, qoe: str, history_len: int = 16,
               input_name: str = "obs", output_name: str = "logits") -> tuple[list[dict], np.ndarray]:
    """Per-trace rows of the test protocol for an exported graph, and its levels [n_traces, n_steps]."""
    from simulator.video import load_profile

    video = load_profile(video)
    with OnnxActor(name, history_len, video.n_levels, input_name, output_name) as actor:
        rows = actor.evaluate(graph, traces, video, mode, qoe)
        return rows, actor.last_levels


def score_weights(design_dir: Path, weight_files: list[Path], traces, video, mode: str, qoe: str,
                  history_len: int = 16) -> dict[str, list[dict]]:
    """Per-trace rows for each weights file (one caged process for all of them), keyed by file name."""
    from simulator.video import load_profile

    video = load_profile(video)
    with CagedActor(design_dir, history_len, video.n_levels) as actor:
        return {Path(path).name: actor.evaluate(Path(path).read_bytes(), traces, video, mode, qoe)
                for path in weight_files}
