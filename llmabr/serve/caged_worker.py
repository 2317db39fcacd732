"""Inside the cage: ``python -I -m llmabr.serve.caged_worker request.json`` answers logits over pipes.

A long-lived child of ``llmabr serve`` for designs that cannot be exported (NADA-style Python
state functions). Protocol, one JSON object per line:

* first line out: ``{"ready": true, "design": NAME, "size": S, "n_levels": L}`` or ``{"error": REASON}``
  (then the process exits);
* each line in: ``{"rows": [[S floats], ...]}``; each line out: ``{"logits": [[L floats], ...]}``
  or ``{"error": REASON}`` (a bad row or a design error answers an error; the worker lives on).

The protocol uses a private copy of stdout; file descriptor 1 goes to stderr before design code
loads, so a design that prints cannot corrupt the answers.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def answer(data: dict) -> None:
        answers.write(json.dumps(data) + "\n")
        answers.flush()

    from llmabr.sandbox.probe import describe_error

    try:
        import numpy as np
        import torch

        from llmabr.export.export_entry import load_policy_logits

        torch.set_num_threads(1)
        request = json.loads(Path(argv[0]).read_text())
        size, n_levels = int(request["size"]), int(request["n_levels"])
        model, _ = load_policy_logits(Path(request["run_dir"]), request["weights"], request["history_len"], n_levels)
    except BaseException as error:  # noqa: BLE001 - design code may raise anything
        answer({"error": f"loading the design failed: {describe_error(error)}"})
        return 1
    answer({"ready": True, "design": request.get("design", ""), "size": size, "n_levels": n_levels})
    for line in sys.stdin:
        try:
            rows = np.asarray(json.loads(line)["rows"], dtype=np.float32)
            if rows.ndim != 2 or rows.shape[1] != size:
                raise ValueError(f"rows must be [batch, {size}], got shape {list(rows.shape)}")
            with torch.no_grad():
                logits = model(torch.from_numpy(rows))
            if tuple(logits.shape) != (rows.shape[0], n_levels):
                raise ValueError(f"the policy returned logits of shape {tuple(logits.shape)}, expected "
                                 f"({rows.shape[0]}, {n_levels})")
            answer({"logits": logits.tolist()})
        except BaseException as error:  # noqa: BLE001
            answer({"error": describe_error(error)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
