"""``llmabr check``: exit status, JSON report, and the seed designs passing S0 and S1."""

from __future__ import annotations

import json

import pytest

from llmabr.cli.main import main
from llmabr.design.format import Design, write_design
from simulator.paths import REPO_ROOT
from tests.llmabr.hostile.s1_cases import GOOD_NET


@pytest.mark.parametrize("seed", ["pensieve", "pensieve-compat"])
def test_seed_designs_pass_and_exit_zero(seed, capsys):
    assert main(["check", str(REPO_ROOT / "designs" / seed), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["stage_reached"] == "S1" and report["rejected_at"] is None
    names = [check["name"] for check in report["checks"]]
    assert names == ["static", "load", "features", "finite", "normalization", "determinism", "batch_independence",
                     "trunk", "parameters", "latency", "export"]
    assert 500_000 < report["param_count"] < 560_000  # Pensieve's ~531k
    assert {f["name"] for f in report["features"]} >= {"buffer", "throughput", "next_sizes"}


def test_rejected_design_exits_one_with_a_readable_table(tmp_path, capsys):
    folder = write_design(Design(name="raw", state_source="import torch\n\n\ndef state(m):\n"
                                 "    return {'sizes': m['next_chunk_bytes']}\n", net_source=GOOD_NET), tmp_path / "raw")
    assert main(["check", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "REJECTED at S1" in out and "normalization" in out and "raw kbps or bytes" in out


def test_s0_rejection_is_fast_and_exits_one(tmp_path, capsys):
    folder = write_design(Design(name="evil", state_source="import os\n\n\ndef state(m):\n    return {}\n",
                                 net_source=GOOD_NET), tmp_path / "evil")
    assert main(["check", str(folder), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["rejected_at"] == "S0" and report["cage"] is None
    assert "import os" in report["checks"][0]["reason"]


def test_missing_folder_is_a_usage_error(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope")]) == 2


def test_nada_design_passes_s1_with_export_skipped(tmp_path, capsys):
    from tests.llmabr.test_nada import NADA_STATE

    # MB-sized next chunks are fine on broadband (Envivio) but not on 5G ladders: target broadband
    folder = write_design(Design(name="nada", state_source=NADA_STATE, kind="nada", network="broadband"),
                          tmp_path / "nada")
    assert main(["check", str(folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    export = next(check for check in report["checks"] if check["name"] == "export")
    assert report["exportable"] is False and "llmabr serve" in export["reason"]


SHAPE_BRANCH_NET = '''import torch
from torch import nn


class Trunk(nn.Module):
    def __init__(self, feature_dims):
        super().__init__()
        self.names = sorted(feature_dims)
        self.layer = nn.Linear(sum(feature_dims.values()), 16)
        self.latent_dim = 16

    def forward(self, features):
        parts = [features[n] if features[n].shape[1] >= 4 else features[n] * 1.0 for n in self.names]
        return torch.relu(self.layer(torch.cat(parts, dim=1)))
'''


def test_a_shape_dependent_branch_still_exports(tmp_path, capsys):
    """torch's tracer imports torch.jit from C while the design's frame is on top; the import guard lets it."""
    state = (REPO_ROOT / "designs" / "pensieve" / "state.py").read_text()
    folder = write_design(Design(name="shapes", state_source=state, net_source=SHAPE_BRANCH_NET), tmp_path / "shapes")
    assert main(["check", str(folder), "--json"]) == 0, capsys.readouterr().out
    assert json.loads(capsys.readouterr().out)["passed"]


def test_normalization_warn_lets_a_raw_scale_design_through_with_the_finding_kept(tmp_path):
    """Replaying published designs as they are: "warn" passes S1 but keeps what "reject" would have said."""
    from llmabr.sandbox.checks import CheckConfig, check_design

    folder = write_design(Design(name="raw", state_source="import torch\n\n\ndef state(m):\n"
                                 "    return {'sizes': m['next_chunk_bytes']}\n", net_source=GOOD_NET), tmp_path / "raw")
    rejected = check_design(folder)
    assert not rejected.passed and rejected.rejected_at == "S1"
    warned = check_design(folder, CheckConfig(normalization="warn"))
    assert warned.passed
    finding = next(check for check in warned.checks if check.name == "normalization")
    assert finding.passed and finding.reason.startswith("warning (normalization = warn): features are not normalized")
