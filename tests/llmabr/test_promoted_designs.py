"""The designs promoted by ``experiments/paper_eval.py promote`` (``designs/<type>/<name>/``).

Each must still load, pass S0 and S1 (the export dry-run included) and carry the metrics that put
it there. Weights are not committed: ``paper_eval.json`` says how to retrain, export and serve it.
"""

from __future__ import annotations

import json

import pytest

from llmabr.cli.main import main
from llmabr.design.format import load_design
from simulator.paths import REPO_ROOT

NETWORKS = ("broadband", "3g", "4g", "5g", "satellite")
# designs/<type>/pensieve/ (shipped trained policies, tests/llmabr/test_shipped_policies.py) hold no design.toml
PROMOTED = sorted(path for network in NETWORKS for path in (REPO_ROOT / "designs" / network).glob("*")
                  if (path / "design.toml").exists())


def test_there_are_promoted_designs():
    assert PROMOTED, "no design under designs/<type>/; run python experiments/paper_eval.py promote"


@pytest.mark.parametrize("folder", PROMOTED, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_promoted_design_loads_passes_s0_s1_and_has_its_metrics(folder, capsys):
    design = load_design(folder)
    assert design.name
    assert main(["check", str(folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["stage_reached"] == "S1"
    assert "export" in [check["name"] for check in report["checks"]]
    metrics = json.loads((folder / "paper_eval.json").read_text())
    assert metrics["network"] == folder.parent.name and metrics["design"] == folder.name
    for key in ("qoe_per_chunk", "qoe_per_chunk_ci95", "bitrate_kbps", "rebuffer_ratio", "switches_per_min"):
        assert key in metrics["test"]
    assert metrics["export"].get("onnx_bytes", 0) > 0 and metrics["serve"]["ok"]
    assert any(line.startswith("llmabr export") for line in metrics["reproduce"])
