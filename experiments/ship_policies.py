"""Ship one trained policy per network type into ``designs/<type>/pensieve/`` (issue 17, point 4).

    python experiments/ship_policies.py [--network T ...]

For each type, from the quality bar's runs (``runs/quality_bar/<type>/seed-*``, trained with the
default recipe by ``experiments/quality_bar.py train``): the run whose best VALIDATION QoE is the
highest is chosen (test QoE chooses nothing); ``llmabr eval RUN --traces <leak-free test list>``
scores its ``policy_best.pt`` against BB, RB, BOLA, RobustMPC and the offline optimum (the trusted
scorer); ``llmabr export`` writes the ONNX graph, ``layout.json`` and ``MODEL_CARD.md`` (the design's
sources are ``designs/pensieve``'s, unchanged, so they are not copied); and the card gains the recipe's five-seed quality-bar
row (``experiments/results/quality_bar/<type>/summary.json``) and the validation QoE of every
heuristic. Anyone can then re-check the card with ``llmabr eval --policy designs/<type>/pensieve
--traces <the list>`` (tests/llmabr/test_shipped_policies.py does, where ../shared is present).

The seed design is shipped because no searched design beat it with a significant difference on
any type (experiments/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.quality_bar import RESULTS, RUNS, TYPES, row_text, TABLE_HEAD, test_list  # noqa: E402

KEEP = ("policy.onnx", "layout.json", "export.json", "MODEL_CARD.md", "parity_rows.npz")  # the card cites the rows


def llmabr(*args: str) -> None:
    command = [sys.executable, "-m", "llmabr.cli.main", *args]
    print(" ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def ship(network: str, max_steps: int | None) -> Path:
    runs = [run for run in sorted((RUNS / network).glob("seed-*")) if (run / "result.json").exists()]
    if not runs:
        raise SystemExit(f"no finished runs under {RUNS / network}: python experiments/quality_bar.py train --network {network}")
    curves = {run: json.loads((run / "curve.json").read_text()) for run in runs}
    within = {run: [p for p in curve if max_steps is None or p["steps"] <= max_steps] for run, curve in curves.items()}
    best_val = {run: max(point["val_qoe"] for point in points) for run, points in within.items()}
    chosen = max(runs, key=lambda run: best_val[run])
    total_steps = json.loads((chosen / "result.json").read_text())["config"]["total_steps"]
    if max(p["val_qoe"] for p in curves[chosen]) > best_val[chosen]:  # policy_best.pt is a later checkpoint
        raise SystemExit(f"{chosen}: its policy_best.pt was saved after --max-steps {max_steps}; retrain it with "
                         "that budget")
    if any((chosen / "design" / name).read_text() != (ROOT / "designs" / "pensieve" / name).read_text()
           for name in ("state.py", "net.py")):
        raise SystemExit(f"{chosen}: its design is not designs/pensieve's; copy its sources beside the policy")
    traces = test_list(network)
    eval_dir = chosen / f"eval-{traces.stem}"
    llmabr("eval", str(chosen), "--traces", str(traces), "--out", str(eval_dir))
    target = ROOT / "designs" / network / "pensieve"
    staging = ROOT / "runs" / "ship" / network
    shutil.rmtree(staging, ignore_errors=True)
    llmabr("export", str(chosen), "--out", str(staging))
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in KEEP:  # text with paths relative to the repository, so the folder reads the same on any machine
        if name.endswith((".json", ".md")):
            (target / name).write_text((staging / name).read_text().replace(str(ROOT) + "/", ""))
        else:
            shutil.copy2(staging / name, target / name)

    card = (target / "MODEL_CARD.md").read_text()
    lines = ["", "## How this run was chosen, and the recipe over five seeds", "",
             f"Trained with the default recipe (`llmabr train designs/pensieve --network {network} --traces "
             f"traces/splits/{network}/train.txt --set val_traces=traces/splits/{network}/val.txt --steps {total_steps} "
             f"--seed S`: imitation of RobustMPC, then PPO); the design is the seed, `designs/pensieve` (its "
             f"sources, unchanged, are not copied here). Of the seeds "
             + ", ".join(f"{run.name} (best validation QoE {best_val[run]:.3f})" for run in runs)
             + f", `{chosen.name}` was the best on validation; the test list played no part in the choice.", ""]
    summary_path = RESULTS / network / "summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        lines += ["The recipe's quality bar on the leak-free test list, all seeds (experiments/results/quality_bar/"
                  f"{network}/; the policy at the end is each seed's validation-best checkpoint):", "", TABLE_HEAD,
                  row_text(summary), ""]
    lines += ["Re-check this card on the same traces (the numbers above are this policy's, played by the trusted "
              f"scorer): `llmabr eval --policy designs/{network}/pensieve --traces {traces.relative_to(ROOT)}`.", ""]
    (target / "MODEL_CARD.md").write_text(card + "\n".join(lines))
    print(f"shipped {chosen} -> {target}")
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", action="append", choices=TYPES)
    parser.add_argument("--max-steps", type=int, help="the quality bar's budget (quality_bar.py score --max-steps): "
                        "only checkpoints up to it count")
    args = parser.parse_args()
    for network in args.network or TYPES:
        ship(network, args.max_steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
