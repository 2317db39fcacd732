"""Inside the cage: ``python -I -m llmabr.scoring.actor_entry request.json`` turns rows into actions.

The design's whole job in an evaluation: float32 measurement rows in, one level per row out
(the argmax of its logits). It never sees a reward, a trace or a score; the trusted scorer
(``llmabr.scoring.actor``) runs the simulator and adds up QoE in its own process.

This process loads the design (its module-level code runs here, once, before any row is seen)
and then forks one child per evaluation: the child loads the weights it is sent, answers the
rows of that evaluation, and exits. Whatever a design keeps in memory while answering (rows it
saw, counters) dies with the child, so nothing carries from one evaluation to the next: a
design cannot learn the validation traces across checkpoints or tell a re-evaluation apart.

Protocol (frames of ``llmabr.scoring.wire`` on stdin / a private copy of stdout):
first ``{"ready": true}`` or ``{"error": R}``; then per evaluation ``{"op": "evaluate"}`` +
state_dict bytes -> ``{"loaded": true}`` | ``{"error": R}``; ``{"op": "act"}`` + float32 rows
[B, size] -> ``{"op": "actions"}`` + int32 [B] | ``{"error": R}``; ``{"op": "end"}`` ->
``{"op": "evaluated"}``. ``{"op": "quit"}`` ends the process.

With ``"backend": "onnx"`` in the request (``llmabr.scoring.actor.OnnxActor``) there is no design:
an evaluation's payload is the bytes of an exported ``policy.onnx``, which the forked child loads
with onnxruntime (one thread) and runs on the rows; the parent never imports onnxruntime, so no
onnxruntime thread pool exists when it forks.
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

from llmabr.scoring import wire


LOAD_FAILED = 3  # the child's exit status when the weights did not load (it has answered the error itself)


def serve_evaluation(policy, weights: bytes, reader: wire.Reader, out_fd: int, size: int) -> int:
    """The forked child: one evaluation; returns its exit status (the caller exits with it)."""
    import numpy as np
    import torch

    from llmabr.design.compose import PolicyLogits
    from llmabr.sandbox.probe import describe_error

    try:
        policy.load_state_dict(torch.load(io.BytesIO(weights), weights_only=True))
        policy.set_training_mode(False)
        logits_of = PolicyLogits(policy).eval()
    except BaseException as error:  # noqa: BLE001 - design code may raise anything
        wire.send(out_fd, {"error": f"loading the weights failed: {describe_error(error)}"})
        return LOAD_FAILED
    wire.send(out_fd, {"loaded": True})
    while True:
        header, rows = reader.read()
        if header.get("op") == "end":
            return 0
        try:
            if not isinstance(rows, np.ndarray) or rows.ndim != 2 or rows.shape[1] != size:
                raise ValueError(f"rows must be float32 [batch, {size}]")
            with torch.no_grad():
                actions = logits_of(torch.from_numpy(rows.copy())).argmax(dim=1).numpy().astype(np.int32)
            wire.send(out_fd, {"op": "actions"}, actions)
        except BaseException as error:  # noqa: BLE001
            wire.send(out_fd, {"error": describe_error(error)})


def serve_onnx_evaluation(graph: bytes, reader: wire.Reader, out_fd: int, request: dict, layout) -> int:
    """The forked child of an ONNX evaluation: load the graph, check its signature, answer rows."""
    import numpy as np

    size, n_levels = layout.size, layout.n_levels
    input_name, output_name = request.get("input", "obs"), request.get("output", "logits")
    try:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ValueError(f"policy.onnx is not an ONNX graph onnxruntime can load "
                             f"({type(error).__name__}: {str(error).strip()[:300]})") from None
        inputs, outputs = session.get_inputs(), session.get_outputs()
        found = ([(i.name, list(i.shape[1:]), i.type) for i in inputs], [(o.name, list(o.shape[1:]), o.type)
                                                                       for o in outputs])
        expected = ([(input_name, [size], "tensor(float)")], [(output_name, [n_levels], "tensor(float)")])
        if found != expected:
            raise ValueError(f"policy.onnx has the signature {found}; layout.json and the simulator need "
                             f"{expected} (inputs, outputs: name, shape after the batch axis, type)")
    except BaseException as error:  # noqa: BLE001 - the graph came from design code
        wire.send(out_fd, {"error": f"loading the graph failed: {str(error)[:1000]}"})
        return LOAD_FAILED
    wire.send(out_fd, {"loaded": True})
    while True:
        header, rows = reader.read()
        if header.get("op") == "end":
            return 0
        try:
            if not isinstance(rows, np.ndarray) or rows.ndim != 2 or rows.shape[1] != size:
                raise ValueError(f"rows must be float32 [batch, {size}]")
            logits = session.run([output_name], {input_name: np.ascontiguousarray(rows, dtype=np.float32)})[0]
            if logits.shape != (rows.shape[0], n_levels):
                raise ValueError(f"the graph returned logits of shape {list(logits.shape)}, expected "
                                 f"[{rows.shape[0]}, {n_levels}]")
            wire.send(out_fd, {"op": "actions"}, logits.argmax(axis=1).astype(np.int32))
        except BaseException as error:  # noqa: BLE001
            wire.send(out_fd, {"error": f"{type(error).__name__}: {str(error)[:1000]}"})


def main(argv: list[str]) -> int:
    out_fd = os.dup(1)
    os.dup2(2, 1)  # a design that prints cannot corrupt the protocol
    sys.stdout = sys.stderr
    reader = wire.Reader(0)
    from llmabr.sandbox.probe import describe_error

    request = json.loads(Path(argv[0]).read_text())
    if request.get("backend") == "onnx":  # nothing runs before a graph arrives
        import importlib.util

        from simulator.layout import Layout

        if importlib.util.find_spec("onnxruntime") is None:  # imported only in the forked children
            wire.send(out_fd, {"error": "onnxruntime is not installed; install the export extra: "
                                        "pip install 'llmabr[export]'"})
            return 1
        layout = Layout(int(request["history_len"]), int(request["n_levels"]))
        return answer_evaluations(lambda graph, reader, fd: serve_onnx_evaluation(graph, reader, fd, request, layout),
                                  reader, out_fd, layout)
    try:
        import torch
        from gymnasium import spaces

        from llmabr.design.compose import DesignPolicy, policy_kwargs
        from llmabr.design.format import load_design
        from llmabr.design.loader import load_modules
        from simulator.envs.gym_env import observation_space
        from simulator.layout import Layout

        torch.set_num_threads(1)
        design = load_design(Path(request["design"]))
        layout = Layout(int(request["history_len"]), int(request["n_levels"]))
        policy = DesignPolicy(observation_space(layout), spaces.Discrete(layout.n_levels), lambda _: 0.0,
                              **policy_kwargs(load_modules(design), layout, design.shared_trunk))
    except BaseException as error:  # noqa: BLE001 - design code may raise anything
        wire.send(out_fd, {"error": f"loading the design failed: {describe_error(error)}"})
        return 1
    return answer_evaluations(lambda weights, reader, fd: serve_evaluation(policy, weights, reader, fd, layout.size),
                              reader, out_fd, layout)


def answer_evaluations(evaluation, reader: wire.Reader, out_fd: int, layout) -> int:
    """Announce readiness, then fork ``evaluation(payload, reader, out_fd)`` once per evaluation request."""
    wire.send(out_fd, {"ready": True, "size": layout.size, "n_levels": layout.n_levels})
    while True:
        try:
            header, payload = reader.read()
        except wire.WireError:
            return 0  # the scorer went away
        op = header.get("op")
        if op == "quit":
            return 0
        if op != "evaluate":
            wire.send(out_fd, {"error": f"unexpected request {op!r}"})
            continue
        child = os.fork()
        if child == 0:
            code = 1
            try:
                code = evaluation(payload, reader, out_fd)
            except BaseException:  # noqa: BLE001 - the scorer sees the missing answer
                code = 1
            os._exit(code)
        _, status = os.waitpid(child, 0)
        reader.pending.clear()  # the child consumed this evaluation's frames
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == LOAD_FAILED:
            continue  # the child answered the error: this evaluation never started
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            wire.send(out_fd, {"op": "evaluated"})
        else:
            how = (f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                   else f"exited with status {os.WEXITSTATUS(status)}")
            wire.send(out_fd, {"error": f"the evaluation process {how}"})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
