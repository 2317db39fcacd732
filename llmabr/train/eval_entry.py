"""Inside the cage: ``python -I -m llmabr.train.eval_entry request.json`` scores a trained design.

Writes ``per_trace.json`` (one row per test trace, see ``llmabr.train.evaluate``), or for a list
of weight files ``per_checkpoint.json`` ({weights: rows}), or ``error.json`` with the reason.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[0]).read_text())
    try:
        import torch
        from gymnasium import spaces

        from llmabr.design.compose import DesignPolicy, policy_kwargs
        from llmabr.design.format import load_design
        from llmabr.design.loader import load_modules
        from llmabr.train.evaluate import evaluate
        from llmabr.train.trainer import GreedyPolicy
        from simulator.envs.gym_env import observation_space
        from simulator.layout import Layout
        from simulator.traces import load_trace_dir
        from simulator.video import load_profile

        torch.set_num_threads(1)
        run_dir = Path(request["run_dir"])
        design = load_design(run_dir / "design")
        loaded = load_modules(design)
        video = load_profile(request["video"])
        layout = Layout(request.get("history_len", 16), video.n_levels)
        policy = DesignPolicy(observation_space(layout), spaces.Discrete(video.n_levels), lambda _: 0.0,
                              **policy_kwargs(loaded, layout, design.shared_trunk))
        traces = load_trace_dir(request["traces"])
        weights = request["weights"] if isinstance(request["weights"], list) else [request["weights"]]
        rows_by_weights = {}
        for name in weights:  # one process for many checkpoints: torch is imported once
            policy.load_state_dict(torch.load(run_dir / name, weights_only=True))
            policy.set_training_mode(False)
            rows_by_weights[name] = evaluate(GreedyPolicy(policy), traces, video, mode=request["mode"], qoe=request["qoe"])
    except BaseException as error:  # noqa: BLE001 - design code may raise anything
        from llmabr.sandbox.probe import describe_error

        Path("error.json").write_text(json.dumps({"reason": describe_error(error)}))
        return 1
    if isinstance(request["weights"], list):
        Path("per_checkpoint.json").write_text(json.dumps(rows_by_weights))
    else:
        Path("per_trace.json").write_text(json.dumps(rows_by_weights[request["weights"]]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
