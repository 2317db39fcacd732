"""Inside the cage: ``python -I -m llmabr.export.export_entry request.json`` traces a trained design to ONNX.

Request (written by ``llmabr.export.onnx_export``): ``run_dir``, ``weights``, ``n_levels``,
``history_len``, ``rows`` (an .npy file of float32 measurement rows in the work folder).
Writes into the work folder ``policy.onnx`` (obs [batch, size] -> logits [batch, n_levels]),
``torch_logits.npy`` (the torch policy's logits on ``rows``) and ``info.json`` (parameter
count, torch version), or ``error.json`` with ``stage`` and ``reason``.
"""

from __future__ import annotations

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
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # The TorchScript tracer (dynamo=False): the dynamo exporter fails on SB3 policies and
            # can freeze the batch axis to the example's size.
            torch.onnx.export(model, (rows[:2],), "policy.onnx", dynamo=False, opset_version=OPSET,
                              input_names=["obs"], output_names=["logits"],
                              dynamic_axes={"obs": {0: "batch"}, "logits": {0: "batch"}})
        tracer_warnings = sorted({str(w.message).splitlines()[0][:300] for w in caught
                                  if issubclass(w.category, torch.jit.TracerWarning)})
        Path("info.json").write_text(json.dumps({
            "parameters": actor_parameters(policy), "opset": OPSET, "torch": torch.__version__,
            "tracer_warnings": tracer_warnings}))
    except BaseException as error:  # noqa: BLE001 - design code may raise anything
        from llmabr.sandbox.probe import describe_error

        Path("error.json").write_text(json.dumps({"stage": stage, "reason": describe_error(error)}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
