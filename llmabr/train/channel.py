"""The caged trainer's side of the line to the trusted scorer (``llmabr.train.caged``).

Frames of ``llmabr.scoring.wire`` on stdin and a private copy of stdout (file descriptor 1 goes
to stderr before design code loads, so a design that prints cannot forge a frame). Sent:
``progress`` (display only), ``checkpoint`` + state_dict bytes (answered ``continue`` or
``stop``), ``final`` + state_dict bytes or ``failed`` (answered ``ok``).
"""

from __future__ import annotations

import io
import os
import sys

from llmabr.scoring import wire


class ScorerChannel:
    def __init__(self):
        self.out_fd = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self.reader = wire.Reader(0)

    @staticmethod
    def _weights(policy) -> bytes:
        import torch

        buffer = io.BytesIO()
        torch.save(policy.state_dict(), buffer)
        return buffer.getvalue()

    def progress(self, data: dict) -> None:
        wire.send(self.out_fd, {"op": "progress", **data})

    def checkpoint(self, policy, steps: int) -> bool:
        """Send the weights; True to go on, False when the scorer stops the run."""
        wire.send(self.out_fd, {"op": "checkpoint", "steps": int(steps)}, self._weights(policy))
        header, _ = self.reader.read()
        return header.get("op") == "continue"

    def final(self, policy, steps: int) -> None:
        wire.send(self.out_fd, {"op": "final", "steps": int(steps)}, self._weights(policy))
        self.reader.read()

    def failed(self, reason: str, steps: int = 0) -> None:
        wire.send(self.out_fd, {"op": "failed", "reason": reason, "steps": int(steps)})
        self.reader.read()
