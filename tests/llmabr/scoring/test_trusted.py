"""Trusted scoring: a design that tampers with its own process cannot change a reported score.

The issue's case: a copy of designs/pensieve whose Trunk.__init__ replaces np.zeros with a function
returning arrays filled with 1000.0. Scored in the design's own process (before trusted scoring)
it reported QoE ~20 per chunk where RobustMPC scores ~1. Here it is trained WITHOUT S0 (so only the
trusted scorer stands in the way) and every number it reports must equal, exactly, the score of
the same weights played through the untampered seed design.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmabr.design.format import load_design, write_design
from llmabr.scoring.actor import CagedActor, ScoringError, score_weights
from llmabr.train.caged import evaluate_caged, train_caged
from llmabr.train.config import load_config
from llmabr.train.data import load_data
from simulator.paths import REPO_ROOT
from simulator.traces import generate

SMALL = ["warm_start=none", "total_steps=3000", "eval_every_steps=1000", "ppo.n_envs=8", "ppo.batch_size=256", "synthetic_count=12",
         "val_max_traces=4", "keep_checkpoints=true"]
SEED = REPO_ROOT / "designs" / "pensieve"

NP_ZEROS_TAMPER = '''import numpy as np


def _thousands(shape, dtype=float, **kwargs):
    return np.full(shape, 1000.0, dtype=dtype)


class Trunk(nn.Module):
    def __init__(self, feature_dims):
        super().__init__()
        np.zeros = _thousands  # every np.zeros in this process now starts at 1000
'''


def tampered_design(tmp_path):
    design = load_design(SEED)
    source = design.net_source.replace("import torch\n", "import torch\n" + NP_ZEROS_TAMPER.split("\n\n\nclass")[0] + "\n", 1)
    source = source.replace("    def __init__(self, feature_dims):\n        super().__init__()\n",
                            "    def __init__(self, feature_dims):\n        super().__init__()\n        np.zeros = _thousands\n", 1)
    assert "np.zeros = _thousands" in source and "def _thousands" in source
    return write_design(design.with_(name="tamper-np-zeros", net_source=source), tmp_path / "tamper")


@pytest.fixture(scope="module")
def tampered_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tamper")
    folder = tampered_design(root)
    config = load_config(None, SMALL)
    result = train_caged(folder, config, root / "run", wall_s=300)  # no S0: the scorer alone must hold
    return root / "run", result, config


def test_the_np_zeros_design_trains_and_its_scores_are_the_untampered_copys(tampered_run):
    run, result, config = tampered_run
    assert result["status"] == "ok", result["reason"]
    curve = json.loads((run / "curve.json").read_text())
    _, val_traces, video = load_data(config)
    checkpoints = sorted((run / "checkpoints").glob("policy_*.pt"))
    assert len(checkpoints) == len(curve) >= 3  # every checkpoint, the final weights last
    assert (run / "policy_final.pt").read_bytes() == checkpoints[-1].read_bytes()
    untampered = score_weights(SEED, checkpoints, val_traces, video, config.mode, config.qoe)
    expected = [np.mean([row["qoe_per_chunk"] for row in rows]) for rows in untampered.values()]
    assert [point["val_qoe"] for point in curve] == expected  # exactly, point by point
    assert result["best_val_qoe"] == max(expected) and max(expected) < 4.3  # Envivio's top rung bounds QoE/chunk


def test_test_scores_of_the_tampered_run_equal_the_untampered_copys(tampered_run, tmp_path):
    run, _, config = tampered_run
    traces = generate("broadband", 6, seed=91)
    reported = evaluate_caged(run, traces, "envivio", config.mode, config.qoe, "policy_best.pt")
    untampered = score_weights(SEED, [run / "policy_best.pt"], traces, "envivio", config.mode, config.qoe)
    assert reported == untampered["policy_best.pt"]
    assert all(row["qoe_per_chunk"] < 4.3 for row in reported)


def test_the_trainer_cannot_reach_validation_traces_or_scores(tampered_run):
    run, _, _ = tampered_run
    cage_files = {path.relative_to(run / "cage").as_posix() for path in (run / "cage").rglob("*") if path.is_file()}
    assert "train_traces.npz" in cage_files
    assert not any(name.startswith(("val", "policy_", "curve", "result", "checkpoints")) for name in cage_files)
    request = json.loads((run / "cage" / "request.json").read_text())
    assert request["config"]["val_traces"] is None and request["config"]["traces"] == "train_traces.npz"


def test_a_wrong_checkpoint_step_fails_the_run(tmp_path):
    from llmabr.train.caged import Schedule

    schedule = Schedule(load_config(None, SMALL))  # 8 players x 48 steps = 384 per rollout, every 1000
    assert [schedule.checkpoint() for _ in range(4)] == [384, 1536, 2688, 3840]
    assert schedule.final(None) == 3072 and schedule.final(1536) == 1544


def test_an_actor_that_cannot_load_the_design_is_a_scoring_error(tmp_path):
    design = load_design(SEED)
    broken = write_design(design.with_(net_source=design.net_source.replace("class Trunk", "class Trunq")),
                          tmp_path / "broken")
    with pytest.raises(ScoringError, match="loading the design failed"):
        CagedActor(broken, 16, 6)


def test_weights_that_do_not_fit_are_a_scoring_error_and_the_actor_survives_them(tampered_run):
    run, _, config = tampered_run
    traces = generate("broadband", 3, seed=5)
    with CagedActor(SEED, 16, 6) as actor:
        for junk in (b"not a state dict", b"\x00" * 10):
            with pytest.raises(ScoringError, match="loading the weights failed"):
                actor.evaluate(junk, traces, "envivio", config.mode, config.qoe)
        rows = actor.evaluate((run / "policy_best.pt").read_bytes(), traces, "envivio", config.mode, config.qoe)
        assert len(rows) == 3  # the same process scores the next evaluation


def _scored_cases():
    from tests.llmabr.hostile.tamper_cases import SCORED_AS_UNTAMPERED, TAMPER_CASES

    return [case for case in TAMPER_CASES if case.expect == SCORED_AS_UNTAMPERED]


@pytest.mark.parametrize("case", _scored_cases(), ids=lambda case: case.id)
def test_tampering_that_passes_s0_is_scored_exactly_as_the_untampered_seed(case, tmp_path):
    """The corpus's cases that S0 lets through train normally; every validation point and the test score
    equal those of the same weights played through designs/pensieve."""
    from llmabr.sandbox.static import check_design_sources

    design = load_design(SEED).with_(name=f"tamper-{case.id}".replace("_", "-"), state_source=case.state_source,
                                     net_source=case.net_source)
    folder = write_design(design, tmp_path / "design")
    assert check_design_sources(case.state_source, case.net_source).passed  # a case S0 lets through
    config = load_config(None, ["warm_start=none", "total_steps=768", "eval_every_steps=384", "ppo.n_envs=8", "ppo.batch_size=128",
                                "synthetic_count=8", "val_max_traces=3", "keep_checkpoints=true"])
    result = train_caged(folder, config, tmp_path / "run", wall_s=300)
    assert result["status"] == "ok", result["reason"]
    curve = json.loads((tmp_path / "run" / "curve.json").read_text())
    checkpoints = sorted((tmp_path / "run" / "checkpoints").glob("policy_*.pt"))
    _, val_traces, video = load_data(config)
    untampered = score_weights(SEED, checkpoints, val_traces, video, config.mode, config.qoe)
    assert [point["val_qoe"] for point in curve] == [np.mean([row["qoe_per_chunk"] for row in rows])
                                                      for rows in untampered.values()]
    traces = generate("broadband", 3, seed=92)
    reported = evaluate_caged(tmp_path / "run", traces, "envivio", config.mode, config.qoe, "policy_best.pt")
    assert reported == score_weights(SEED, [tmp_path / "run" / "policy_best.pt"], traces, "envivio", config.mode,
                                     config.qoe)["policy_best.pt"]
