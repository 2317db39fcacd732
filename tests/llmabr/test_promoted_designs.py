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
    assert metrics["export"].get("onnx_bytes", 0) > 0 and metrics["serve"]["ok"]
    assert any(line.startswith("llmabr export") for line in metrics["reproduce"])


@pytest.mark.parametrize("folder", PROMOTED, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_promoted_designs_numbers_agree_with_each_other(folder):
    """paper_eval.json's numbers, recomputed from one another by hand and checked against the archive's
    metrics.json that ``llmabr archive promote`` wrote and against the test list they were scored on."""
    metrics = json.loads((folder / "paper_eval.json").read_text())
    test, improvement = metrics["test"], metrics["improvement_over_seed"]
    low, high = test["qoe_per_chunk_ci95"]
    assert low < test["qoe_per_chunk"] < high
    assert 0 <= test["rebuffer_ratio"] < 1 and test["bitrate_kbps"] > 0 and test["switches_per_min"] >= 0
    assert improvement["qoe_per_chunk"] == pytest.approx(test["qoe_per_chunk"] - metrics["seed_test_qoe_per_chunk"],
                                                         abs=1e-9)
    assert improvement["percent"] == pytest.approx(100 * improvement["qoe_per_chunk"]
                                                   / abs(metrics["seed_test_qoe_per_chunk"]))
    assert improvement["ci95"][0] <= improvement["qoe_per_chunk"] <= improvement["ci95"][1]
    listed = [line for line in (REPO_ROOT / metrics["test_list"]).read_text().splitlines()
              if line.strip() and not line.startswith(("#", "root:"))]
    assert test["traces"] == len(listed)
    promoted = json.loads((folder / "metrics.json").read_text())
    assert promoted["network"] == metrics["network"] and promoted["test_traces"] == metrics["test_list"]
    assert promoted["val_qoe"] == pytest.approx(metrics["val_qoe"], abs=1e-12)
    assert promoted["test_qoe"] == pytest.approx(test["qoe_per_chunk"], abs=1e-9)
    parity = metrics["export"]["parity"]
    assert parity["passed"] and parity["argmax_mismatches"] == 0 and parity["max_scaled_logit_diff"] <= parity["tolerance"]
    assert len(metrics["serve"]["levels"]) >= 1 and all(0 <= level < 6 for level in metrics["serve"]["levels"])


@pytest.mark.parametrize("folder", [path for path in PROMOTED if (path / "genome.json").exists()],
                         ids=lambda path: f"{path.parent.name}/{path.name}")
def test_an_offline_designs_name_and_sources_follow_from_its_genome(folder):
    """An offline proposer's design is named by its genome's hash and its sources are rendered from the
    genome: the committed files are that design, not an edited copy."""
    from llmabr.proposer.offline import genome_hash, net_source, state_source

    genome = json.loads((folder / "genome.json").read_text())
    kind = "state" if folder.name.startswith("offline-state-") else "network"
    assert folder.name == f"offline-{kind}-{genome_hash(genome)}"
    assert (folder / "state.py").read_text() == state_source(genome["state"], title=f"State of {folder.name}")
    assert (folder / "net.py").read_text() == net_source(genome["net"], title=f"Trunk of {folder.name}")
