"""Inside the cage: ``python -I -m llmabr.train.entry request.json`` trains, talking to the trusted scorer.

Any exception becomes a ``failed`` frame with its reason; the trusted side turns kills, timeouts
and silence into failed results itself.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def main(argv: list[str]) -> int:
    from llmabr.train.channel import ScorerChannel

    channel = ScorerChannel()  # before design code loads: the protocol's stdout is private
    request = json.loads(Path(argv[0]).read_text())
    try:
        from llmabr.train.config import from_dict
        from llmabr.train.trainer import train

        train(Path.cwd(), from_dict(request["config"]), channel, float(request["reward_scale"]),
              local_val=request.get("local_val"))
    except BaseException as error:  # noqa: BLE001 - design code may raise anything
        from llmabr.sandbox.probe import describe_error

        traceback.print_exc()
        try:
            channel.failed(f"training raised {describe_error(error)}")
        except Exception:  # noqa: BLE001 - the scorer is gone; it reports the silence itself
            pass
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
