"""``llmabr archive show|diff|promote`` and the archive's ranking (the finalists' order), on run folders
written by hand (tests/llmabr/search/fake_run.py)."""

from __future__ import annotations

import difflib
import json

import pytest

from llmabr.cli.main import main
from llmabr.design.format import load_design
from llmabr.search.archive import Archive
from tests.llmabr.search.fake_run import SEED, make_run, rows

SEEDS = range(2)


@pytest.fixture
def run(tmp_path):
    """The seed design, `better` (+0.5 QoE on every validation trace), `level` (same as the seed) and
    `untested` (screened only), two S3 seeds each."""
    folder = tmp_path / "run"
    make_run(folder, {
        SEED: (1.0, [rows(0.0, seed) for seed in SEEDS], [rows(0.0, seed) for seed in SEEDS]),
        "better": (1.5, [rows(0.5, seed) for seed in SEEDS], [rows(0.4, seed) for seed in SEEDS]),
        "level": (1.0, [rows(0.0, seed + 5) for seed in SEEDS], [rows(0.0, seed) for seed in SEEDS]),
        "untested": (0.8, None, None),
    })
    return folder


def test_show_prints_the_designs_record_and_its_sources(run, capsys):
    assert main(["archive", "show", str(run), "better"]) == 0
    out = capsys.readouterr().out
    record, _, sources = out.partition("\n# ---- ")
    shown = json.loads(record)
    assert shown["name"] == "better" and shown["stage"] == "tested" and shown["val_qoe"] == 1.5
    folder = Archive(run).folder("better")
    assert f"state.py\n{(folder / 'state.py').read_text()}" in sources
    assert f"# ---- net.py\n{(folder / 'net.py').read_text()}" in out


def test_diff_is_the_unified_diff_of_both_sources(run, capsys):
    archive = Archive(run)
    assert main(["archive", "diff", str(run), "better", "level"]) == 0
    out = capsys.readouterr().out
    expected = "".join(
        "".join(difflib.unified_diff((archive.folder("better") / file).read_text().splitlines(keepends=True),
                                     (archive.folder("level") / file).read_text().splitlines(keepends=True),
                                     f"better/{file}", f"level/{file}"))
        for file in ("state.py", "net.py"))
    assert out == expected and "--- better/net.py" in out and "+++ level/net.py" in out
    assert main(["archive", "diff", str(run), "level", "level"]) == 0 and capsys.readouterr().out == ""


@pytest.mark.parametrize("action", [["show", "nope"], ["diff", "better", "nope"], ["promote", "nope"]])
def test_an_unknown_design_is_a_usage_error_naming_it(run, capsys, action):
    assert main(["archive", action[0], str(run), *action[1:]]) == 2
    err = capsys.readouterr().err
    assert "no design 'nope'" in err and f"llmabr archive list {run}" in err


def test_promote_copies_a_better_design_that_loads_with_its_metrics(run, tmp_path, capsys):
    target = tmp_path / "promoted"
    assert main(["archive", "promote", str(run), "better", "--to", str(target)]) == 0
    assert f"promoted better -> {target}" in capsys.readouterr().out
    source = Archive(run).folder("better")
    files = ["design.toml", "genome.json", "net.py", "state.py"]
    assert sorted(path.name for path in target.iterdir()) == sorted(files + ["metrics.json"])
    for file in files:
        assert (target / file).read_bytes() == (source / file).read_bytes()
    design = load_design(target)
    assert design.name == "better" and design.net_source == (source / "net.py").read_text()
    assert design.state_source == (source / "state.py").read_text()
    metrics = json.loads((target / "metrics.json").read_text())
    assert metrics["val_qoe"] == 1.5 and metrics["network"] == "broadband" and metrics["stage"] == "tested"
    versus = metrics["versus_seed_on_validation"]
    assert versus["verdict"] == "better" and not versus["forced"]
    assert "better - seed-pensieve: +0.500 val QoE/chunk" in versus["detail"] and "2 vs 2 seeds" in versus["detail"]


def test_promote_goes_to_designs_of_the_runs_network_by_default(run, tmp_path, monkeypatch):
    import simulator.paths

    monkeypatch.setattr(simulator.paths, "REPO_ROOT", tmp_path / "repo")  # not the real designs/ folder
    assert main(["archive", "promote", str(run), "better"]) == 0
    assert load_design(tmp_path / "repo" / "designs" / "broadband" / "better").name == "better"


def test_promote_refuses_an_existing_target_and_leaves_it_as_it_was(run, tmp_path, capsys):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    assert main(["archive", "promote", str(run), "better", "--to", str(target)]) == 2
    assert f"{target} exists; choose --to" in capsys.readouterr().err
    assert [path.name for path in target.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("name, verdict", [("level", "no significant difference"), (SEED, "seed")])
def test_promote_refuses_a_design_not_better_than_the_seed_unless_forced(run, tmp_path, capsys, name, verdict):
    target = tmp_path / "promoted"
    assert main(["archive", "promote", str(run), name, "--to", str(target)]) == 2
    assert "is not better than the seed design on validation" in capsys.readouterr().err and not target.exists()
    assert main(["archive", "promote", str(run), name, "--to", str(target), "--force"]) == 0
    versus = json.loads((target / "metrics.json").read_text())["versus_seed_on_validation"]
    assert versus["verdict"] == verdict and versus["forced"]


def test_promote_without_validation_results_says_so(run, tmp_path, capsys):
    assert main(["archive", "promote", str(run), "untested", "--to", str(tmp_path / "x")]) == 2
    assert "untested has no S3 validation results" in capsys.readouterr().err


def test_top_ranks_by_validation_best_first_among_designs_still_in_the_race(tmp_path):
    """The order finalists are taken in (``archive.top(stage="screened")``): highest validation QoE first,
    0.0 and negative scores in their place, unscored and rejected designs left out, ``k`` the first k."""
    archive = make_run(tmp_path, {SEED: (0.2, None, None), "neg": (-0.4, None, None), "zero": (0.0, None, None),
                                  "top": (2.5, None, None), "unscored": (None, None, None),
                                  "rejected": (9.0, None, None), "trained": (3.0, None, None)})
    archive.update("rejected", status="rejected", reason="S1: not normalized")
    archive.update("trained", stage="trained")
    assert [d["name"] for d in archive.top(stage="screened")] == ["top", SEED, "zero", "neg"]
    assert [d["name"] for d in archive.top(2, stage="screened")] == ["top", SEED]
    assert [d["name"] for d in archive.top()] == ["trained", "top", SEED, "zero", "neg"]
    with pytest.raises(ValueError, match="rank by val_qoe or test_qoe"):
        archive.top(by="reason")
