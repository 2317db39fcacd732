"""Training and evaluation smoke tests: a few thousand caged PPO steps, failures as results, eval outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmabr.cli.main import main
from llmabr.design.format import load_design, write_design
from llmabr.sandbox.cage import can_drop_privileges
from llmabr.train.caged import train_caged
from llmabr.train.config import TrainConfig, load_config, parse_set
from simulator.paths import REPO_ROOT
from simulator.traces import generate, write_cooked

SMALL = ["warm_start=none", "total_steps=3000", "eval_every_steps=1500", "ppo.n_envs=8", "ppo.batch_size=256", "synthetic_count=12",
         "val_max_traces=4"]


def test_config_overrides_and_errors(tmp_path):
    config = load_config(None, ["ppo.n_epochs=2", "seed=3", "traces=synthetic", "reward_scale=0.5"])
    assert config.ppo.n_epochs == 2 and config.seed == 3 and config.reward_scale == 0.5
    toml = tmp_path / "c.toml"
    toml.write_text("network = '3g'\n[ppo]\nlearning_rate = 1e-4\n")
    assert load_config(toml, ["ppo.n_steps=48"]).ppo.learning_rate == 1e-4
    with pytest.raises(ValueError, match="unknown setting 'ppo.lr'"):
        load_config(None, ["ppo.lr=1"])
    with pytest.raises(ValueError, match="key=value"):
        parse_set(["seed"])
    assert TrainConfig().ppo.ent_start > TrainConfig().ppo.ent_end  # decayed, never constant


@pytest.mark.parametrize("knots, steps, coef", [
    (None, 0, 1.0), (None, 1_125_000, 0.525), (None, 2_250_000, 0.05), (None, 2_900_000, 0.05),  # 75 % of 3M
    ("0:1,1500000:0.37,3500000:0.05", 750_000, 0.685), ("0:1,1500000:0.37,3500000:0.05", 2_500_000, 0.21),
    ("0:1,1500000:0.37,3500000:0.05", 9_000_000, 0.05),  # held after the last knot
])
def test_entropy_schedule(knots, steps, coef):
    from llmabr.train.config import parse_knots
    from llmabr.train.trainer import EntropyDecay

    decay = EntropyDecay(1.0, 0.05, 0.75, 3_000_000, knots=parse_knots(knots) if knots else None)
    assert decay.coef_at(steps) == pytest.approx(coef)


@pytest.mark.parametrize("text", ["1:1.0", "0:1,0:0.5", "0:1,100:-1", "one", "0:1;100:0.5"])
def test_bad_entropy_schedule_is_a_clear_error(text):
    from llmabr.train.config import from_dict

    with pytest.raises(ValueError, match="ppo.ent_schedule"):
        load_config(None, [f"ppo.ent_schedule={text}"])
    with pytest.raises(ValueError, match="ppo.ent_schedule"):  # a stored config (search, cage request) too
        from_dict({"ppo": {"ent_schedule": text}})


def test_quality_bar_recipe_loads():
    config = load_config(REPO_ROOT / "experiments" / "quality_bar.toml", ["network=3g"])
    assert config.network == "3g" and config.total_steps == 4_600_000 and config.ppo.trunk_dtype == "bfloat16"
    assert config.ppo.ent_schedule.startswith("0:1.0,")


def test_capped_decay_ends_early():
    from llmabr.train.trainer import EntropyDecay

    decay = EntropyDecay(1.0, 0.05, 0.75, 3_000_000, max_steps=1_500_000)
    assert decay.coef_at(1_500_000) == pytest.approx(0.05) and decay.coef_at(750_000) == pytest.approx(0.525)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "pensieve"
    result = train_caged(REPO_ROOT / "designs" / "pensieve", load_config(None, SMALL), out, wall_s=300)
    return out, result


def test_caged_training_writes_a_complete_run(trained):
    out, result = trained
    assert result["status"] == "ok", result.get("reason")
    assert result["steps"] >= 3000 and result["best_val_qoe"] is not None
    for name in ("policy_best.pt", "policy_final.pt", "curve.json", "progress.json", "design/state.py"):
        assert (out / name).exists(), name
    curve = json.loads((out / "curve.json").read_text())
    assert len(curve) >= 2 and curve[-1]["steps"] >= 3000
    isolation = result["cage"]["isolation"]  # what the jail achieved (isolation.json, written before exec)
    assert isolation["limits"]["address_space_bytes"] == 8 << 30 and isolation["no_new_privs"]
    if os.geteuid() == 0:  # namespaces, the new root and a throw-away uid need root
        assert isolation["pid_namespace"] and isolation["network_namespace"], isolation
        assert isolation["visible_paths"] and str(REPO_ROOT / "traces") not in isolation["visible_paths"]
        assert isolation["capabilities_dropped"]
        # a throw-away uid where it can run this interpreter (not where Python lives under /root, mode 700)
        assert (isolation["uid"] != 0) == can_drop_privileges()
    assert any((out / "cage" / "tb").rglob("events.out.tfevents.*"))  # the trainer writes only under cage/


def test_same_seed_reproduces_the_run(trained, tmp_path):
    out, result = trained
    again = train_caged(REPO_ROOT / "designs" / "pensieve", load_config(None, SMALL), tmp_path / "again", wall_s=300)
    first = json.loads((out / "curve.json").read_text())
    second = json.loads((tmp_path / "again" / "curve.json").read_text())
    assert [p["val_qoe"] for p in first] == [p["val_qoe"] for p in second]
    assert again["steps"] == result["steps"]


def test_a_design_that_crashes_mid_training_is_a_failed_result(tmp_path):
    design = load_design(REPO_ROOT / "designs" / "pensieve")
    crashing = design.with_(state_source=design.state_source.replace(
        "    top_kbps = m[\"ladder_kbps\"][:, -1:]",
        "    top_kbps = m[\"ladder_kbps\"][:, -1:]\n    if m[\"chunks_left\"].shape[0] == 256:\n"
        "        raise ValueError(\"boom at the first update\")"))
    folder = write_design(crashing, tmp_path / "crashing")
    result = train_caged(folder, load_config(None, SMALL), tmp_path / "run", wall_s=300)
    assert result["status"] == "failed" and "boom at the first update" in result["reason"]


def test_a_run_past_its_deadline_is_a_failed_result(tmp_path):
    result = train_caged(REPO_ROOT / "designs" / "pensieve", load_config(None, SMALL + ["total_steps=10000000"]),
                         tmp_path / "run", wall_s=8)
    assert result["status"] == "failed" and "deadline" in result["reason"]


def test_eval_cli_writes_summary_csv_and_cdf(trained, tmp_path, capsys):
    out, _ = trained
    test_dir = tmp_path / "test_traces"
    test_dir.mkdir()
    for trace in generate("broadband", 5, seed=77):
        write_cooked(trace, test_dir / trace.name)
    assert main(["eval", str(out), "--traces", str(test_dir), "--baselines", "bb,robustmpc,optimal", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) == {"pensieve", "bb", "robustmpc", "optimal"}
    low, high = summary["robustmpc"]["qoe_per_chunk_ci95"]
    assert low <= summary["robustmpc"]["qoe_per_chunk"] <= high and low < high
    assert summary["bb"]["normalized"] == pytest.approx(0.0) and summary["optimal"]["normalized"] == pytest.approx(1.0)
    norm_low, norm_high = summary["robustmpc"]["normalized_ci95"]
    assert norm_low <= summary["robustmpc"]["normalized"] <= norm_high
    versus = summary["optimal"]["pensieve_minus_this"]  # 3,000 steps of PPO against the offline optimum
    assert versus["verdict"] == "worse" and versus["ci95"][1] < 0
    eval_dir = out / "eval-test_traces"
    assert (eval_dir / "cdf.png").stat().st_size > 1000
    assert len((eval_dir / "per_trace.csv").read_text().strip().splitlines()) == 1 + 4 * 5


def test_eval_cli_takes_the_seeds_of_one_design_and_refuses_mixed_designs(trained, tmp_path, capsys):
    out, _ = trained
    test_dir = tmp_path / "t"
    test_dir.mkdir()
    for trace in generate("broadband", 4, seed=78):
        write_cooked(trace, test_dir / trace.name)
    args = ["eval", str(out), str(out), "--traces", str(test_dir), "--baselines", "bb,optimal", "--out", str(tmp_path / "e")]
    assert main(args + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pensieve"]["seeds"] == 2
    other = tmp_path / "other"
    other.mkdir()
    (other / "result.json").write_text(json.dumps({**json.loads((out / "result.json").read_text()), "design": "x"}))
    assert main(["eval", str(out), str(other), "--traces", str(test_dir)]) == 2
    assert "different designs" in capsys.readouterr().err


def test_early_stop_rule():
    from llmabr.train.early_stop import EarlyStopConfig, EarlyStopRule

    reference = [{"steps": 0, "val_qoe": 0.3}, {"steps": 1000, "val_qoe": 1.0}]
    rule = EarlyStopRule(reference, EarlyStopConfig(enabled=True, margin=0.1, min_fraction=0.25, patience=2), 1000)
    assert rule.reference_at(500) == pytest.approx(0.65)
    assert not rule.should_stop(100, 0.0)  # too early for a verdict
    assert not rule.should_stop(400, 0.0)  # first strike
    assert not rule.should_stop(500, 0.7)  # back within the margin: strikes reset
    assert not rule.should_stop(600, 0.5)
    assert rule.should_stop(700, 0.5) and "below the seed design" in rule.reason
    assert not rule.should_stop(1000, 0.0)  # at the end of the budget a stop saves nothing: no verdict


@pytest.mark.parametrize("scale_qoe, val_qoe, stops", [(1.0, 0.8, True), (10.0, 0.8, False), (10.0, -0.1, True)])
def test_early_stop_margin_is_a_share_of_the_bb_to_optimum_distance(scale_qoe, val_qoe, stops):
    """margin 0.1 of a 1-QoE scale is 0.1 QoE; of a 10-QoE scale (a 5g ladder) 1 QoE: one rule for every type."""
    from llmabr.train.early_stop import EarlyStopConfig, EarlyStopRule

    reference = [{"steps": 0, "val_qoe": 1.0}, {"steps": 1000, "val_qoe": 1.0}]
    rule = EarlyStopRule(reference, EarlyStopConfig(enabled=True, margin=0.1, min_fraction=0.0, patience=1), 1000,
                         scale_qoe=scale_qoe)
    assert rule.margin_qoe == pytest.approx(0.1 * scale_qoe)
    assert rule.should_stop(500, val_qoe) is stops
    with pytest.raises(ValueError, match="optimum above BB"):
        EarlyStopRule(reference, EarlyStopConfig(enabled=True), 1000, scale_qoe=0.0)


def test_training_stops_early_behind_the_reference(tmp_path):
    config = load_config(None, SMALL + ["total_steps=6000", "eval_every_steps=1000", "early_stop.enabled=true",
                                       "early_stop.min_fraction=0.1", "early_stop.patience=1"])
    unbeatable = [{"steps": 0, "val_qoe": 5.0}, {"steps": 6000, "val_qoe": 5.0}]
    result = train_caged(REPO_ROOT / "designs" / "pensieve", config, tmp_path / "run", wall_s=300,
                         reference_curve=unbeatable)
    assert result["status"] == "ok" and result["stopped_early"]
    assert result["steps"] < 6000 and "stopped early" in result["reason"]


def test_train_cli_runs_several_seeds_with_early_stopping(tmp_path, capsys):
    """The seed design's curve is trained first (early stopping off) and cached; then both seeds run against
    it. A margin of -100 puts every run 'below' that curve, so S2 stops each at its first verdict: the
    first validation point at or after half the budget (1,000 of 2,000 steps)."""
    args = ["train", str(REPO_ROOT / "designs" / "pensieve"), "--steps", "2000", "--seeds", "2", "--early-stop",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "runs")]
    for item in ["warm_start=none", "eval_every_steps=1000", "ppo.n_envs=8", "ppo.batch_size=256", "synthetic_count=12",
                 "val_max_traces=4", "early_stop.margin=-100"]:
        args += ["--set", item]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "training the seed design first" in err and "2/2 seeds finished" in err
    [cached] = list((tmp_path / "cache").glob("seed-curve-broadband-*.json"))
    reference = json.loads(cached.read_text())
    assert reference[-1]["steps"] >= 2000  # the reference ran its whole budget: no early stop for it
    for seed in (0, 1):
        result = json.loads((tmp_path / "runs" / f"seed-{seed}" / "result.json").read_text())
        assert result["status"] == "ok" and result["stopped_early"], result.get("reason")
        assert 1000 <= result["steps"] < 2000 and result["reason"].startswith("stopped early at")
    assert err.count("stopped early at") == 2


def test_an_explicit_validation_set_replaces_the_split(tmp_path):
    from llmabr.train.data import load_data

    for side, seed in (("train", 1), ("val", 2)):
        (tmp_path / side).mkdir()
        for trace in generate("3g", 6 if side == "train" else 3, seed=seed):
            write_cooked(trace, tmp_path / side / f"{side}-{trace.name}")
    split = load_data(load_config(None, ["network=3g", f"traces={tmp_path / 'train'}"]))
    assert len(split[0]) + len(split[1]) == 6  # validation taken from the training traces
    listing = tmp_path / "val.txt"
    listing.write_text(f"root: {tmp_path / 'val'}\n" + "".join(f"{p.name}\n" for p in sorted((tmp_path / 'val').iterdir())))
    for val in (tmp_path / "val", listing):
        train, val_traces, _ = load_data(load_config(None, ["network=3g", f"traces={tmp_path / 'train'}", f"val_traces={val}"]))
        assert len(train) == 6 and [t.name for t in val_traces] == sorted(p.name for p in (tmp_path / "val").iterdir())


def test_bench_train_runs_all_arms_side_by_side(capsys):
    """A smoke run of the benchmark (one rollout per arm): the table, the versus and compare ratios, the ceiling line."""
    nada = Path(__file__).parent / "nada_designs" / "pensieve_nada"
    assert main(["bench", "train", "--steps", "1000", "--versus", "ppo.n_epochs=1", "--compare", str(nada)]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("sb3_ceiling", "abr ", "abr_versus", "compare "))
    assert "defaults vs ppo.n_epochs=1 (abr_versus):" in out and "ratio to SB3 ceiling:" in out.splitlines()[-1]
    assert "compare: design pensieve_nada (nada) trains at" in out and "of pensieve (torch)" in out
