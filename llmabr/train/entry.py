"""Inside the cage: ``python -I -m llmabr.train.entry request.json`` trains and writes result.json.

Any exception becomes a failed result with its reason; the cage turns kills and timeouts into
failed results on the caller's side.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def main(argv: list[str]) -> int:
    from llmabr.train.config import from_dict
    from llmabr.train.trainer import train, write_json

    out_dir = Path.cwd()
    request = json.loads(Path(argv[0]).read_text())
    try:
        train(out_dir / "design", from_dict(request["config"]), out_dir, request.get("reference_curve"))
    except BaseException as error:  # noqa: BLE001 - design code may raise anything
        from llmabr.sandbox.probe import describe_error

        write_json(out_dir / "result.json", {"status": "failed", "reason": f"training raised {describe_error(error)}",
                                             "traceback": traceback.format_exc()[-3000:]})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
