"""Inside the cage: ``python -I -m llmabr.export.export_entry request.json`` traces a trained design to ONNX.

Request (written by ``llmabr.export.onnx_export``): ``run_dir``, ``weights``, ``n_levels``,
``history_len``, ``rows`` (an .npy file of float32 measurement rows in the work folder).
Writes into the work folder ``policy.onnx`` (obs [batch, size] -> logits [batch, n_levels], float32
throughout), ``torch_logits.npy`` (the torch policy's float32 logits on ``rows``) and ``info.json``
(parameter count, torch version), or ``error.json`` with ``stage`` and ``reason``. Where the design
also runs in float64, ``policy_float64.onnx`` (float32 in and out, float64 in between) and
``torch_logits64.npy`` (the same policy's logits computed in float64); otherwise ``info.json``
says why in ``float64_error``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import sys
import warnings
from pathlib import Path

OPSET = 17  # onnxruntime-web and every onnxruntime >= 1.14 run it


def actor_parameters(policy) -> int:
    """Parameters on the path obs -> logits (the critic is not exported), each counted once."""
    modules = [policy.pi_features_extractor, policy.mlp_extractor.actor, policy.action_net]
    seen = {id(p): p for module in modules for p in module.parameters()}
    return int(sum(p.numel() for p in seen.values()))


def load_policy_logits(run_dir: Path, weights: str, history_len: int, n_levels: int):
    """The trained policy as ``PolicyLogits`` (obs -> logits) in eval mode. EXECUTES DESIGN CODE: cage only.

    Returns (model, policy). Raises whatever the design raises; ``stage`` of the caller says where.
    """
    import torch
    from gymnasium import spaces

    from llmabr.design.compose import DesignPolicy, PolicyLogits, policy_kwargs
    from llmabr.design.format import load_design
    from llmabr.design.loader import load_modules
    from simulator.envs.gym_env import observation_space
    from simulator.layout import Layout

    design = load_design(run_dir / "design")
    loaded = load_modules(design)
    layout = Layout(history_len, n_levels)
    policy = DesignPolicy(observation_space(layout), spaces.Discrete(layout.n_levels), lambda _: 0.0,
                          **policy_kwargs(loaded, layout, design.shared_trunk))
    policy.load_state_dict(torch.load(run_dir / weights, weights_only=True))
    policy.set_training_mode(False)
    return PolicyLogits(policy).eval(), policy


def float64_logits(policy):
    """``policy`` copied to float64 as obs float32 -> logits float64. EXECUTES DESIGN CODE: cage only.

    SB3's ``extract_features`` casts observations to float32 (for a Box space that cast is all its
    preprocessing), so this calls the features extractor directly on float64 observations.
    """
    import torch

    class Float64Logits(torch.nn.Module):
        def __init__(self, policy64):
            super().__init__()
            self.policy = policy64

        def forward(self, obs):
            policy64 = self.policy
            features = policy64.pi_features_extractor(obs.to(torch.float64))
            return policy64.action_net(policy64.mlp_extractor.forward_actor(features))

    return Float64Logits(copy.deepcopy(policy).double()).eval()


@contextlib.contextmanager
def default_float64():
    """Tensors a design creates without a dtype (``torch.ones``, ``torch.tensor([0.5])``) come out float64."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def export_graph(model, example, path: str) -> list[str]:
    """Trace ``model`` to ONNX at ``path``; returns the tracer's warnings (frozen Python control flow)."""
    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # The TorchScript tracer (dynamo=False): the dynamo exporter fails on SB3 policies and
        # can freeze the batch axis to the example's size.
        torch.onnx.export(model, (example,), path, dynamo=False, opset_version=OPSET,
                          input_names=["obs"], output_names=["logits"],
                          dynamic_axes={"obs": {0: "batch"}, "logits": {0: "batch"}})
    return sorted({str(w.message).splitlines()[0][:300] for w in caught
                   if issubclass(w.category, torch.jit.TracerWarning)})


def trace_float64(policy, rows, n_levels: int) -> list[str]:
    """Write ``torch_logits64.npy`` and ``policy_float64.onnx``; returns the tracer's warnings."""
    import numpy as np
    import torch

    model64 = float64_logits(policy)
    with default_float64(), torch.no_grad():
        logits64 = model64(rows)
        if tuple(logits64.shape) != (rows.shape[0], n_levels) or logits64.dtype != torch.float64:
            raise ValueError(f"in float64 the policy returned {logits64.dtype} logits of shape {tuple(logits64.shape)}")
        np.save("torch_logits64.npy", logits64.numpy())

        class Float32Output(torch.nn.Module):  # the graph's contract: float32 in, float32 out
            def __init__(self):
                super().__init__()
                self.model64 = model64

            def forward(self, obs):
                return self.model64(obs).to(torch.float32)

        return export_graph(Float32Output(), rows[:2], "policy_float64.onnx")


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[0]).read_text())
    stage = "import"
    try:
        import numpy as np
        import torch

        torch.set_num_threads(1)
        stage = "load"
        n_levels = request["n_levels"]
        model, policy = load_policy_logits(Path(request["run_dir"]), request["weights"], request["history_len"],
                                           n_levels)
        rows = torch.from_numpy(np.load(request["rows"]).astype(np.float32))
        stage = "torch"
        with torch.no_grad():
            logits = model(rows)
        if tuple(logits.shape) != (rows.shape[0], n_levels):
            raise ValueError(f"the policy returned logits of shape {tuple(logits.shape)}, "
                             f"expected ({rows.shape[0]}, {n_levels})")
        np.save("torch_logits.npy", logits.numpy().astype(np.float32))
        stage = "trace"
        tracer_warnings = export_graph(model, rows[:2], "policy.onnx")
        info = {"parameters": actor_parameters(policy), "opset": OPSET, "torch": torch.__version__,
                "tracer_warnings": tracer_warnings, "float64_error": None}
        try:  # a design that only works in float32 still exports, as a float32 graph
            trace_float64(policy, rows, n_levels)
        except Exception as error:  # noqa: BLE001 - design code may raise anything
            from llmabr.sandbox.probe import describe_error

            for name in ("torch_logits64.npy", "policy_float64.onnx"):
                Path(name).unlink(missing_ok=True)
            info["float64_error"] = describe_error(error)
        Path("info.json").write_text(json.dumps(info))
    except BaseException as error:  # noqa: BLE001 - design code may raise anything
        from llmabr.sandbox.probe import describe_error

        Path("error.json").write_text(json.dumps({"stage": stage, "reason": describe_error(error)}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
