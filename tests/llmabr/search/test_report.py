"""The search report's choices, on run folders written by hand (tests/llmabr/search/fake_run.py): the
winner on validation among several finalists, every branch of the verdict, per-trace averaging over
seeds by trace name, and a whole report with more than one finalist."""

from __future__ import annotations

import json

import pytest

from llmabr.scoring.yardsticks import compare, trace_groups
from llmabr.search import report
from llmabr.search.config import load_search_config
from tests.llmabr.search.fake_run import SEED, TRACES, alternating, make_run, rows

# write_report draws an S3-curves panel with a legend; these runs have no curves to label
pytestmark = pytest.mark.filterwarnings("ignore:No artists with labels found:UserWarning")


@pytest.mark.parametrize("scores, winner", [
    ({"a": 0.0, "b": -0.5, "c": None}, "a"),      # 0.0 is a score, above a negative one
    ({"a": None, "b": -3.0}, "b"),                # no score ranks last
    ({"a": 1.5, "b": 2.5, "c": 2.5}, "b"),        # a tie goes to the first listed
    ({"a": -1.0, "b": -0.25, "c": -2.0}, "b"),    # every score negative (a high-ladder type early on)
])
def test_best_on_validation(scores, winner):
    designs = {name: {"val_qoe": value} for name, value in scores.items()}
    assert report.best_on_validation(list(scores), designs) == winner


def stats_for(test_rows_by_design: dict[str, list[list[dict]]]):
    pairs = [(name, SEED) for name in test_rows_by_design if name != SEED]
    return compare(test_rows_by_design, trace_groups(test_rows_by_design[SEED][0]), pairs=pairs)


# Test rows per design, 2 seeds each, with known differences from the seed design's.
TEST_ROWS = {
    SEED: [rows(0.0, seed) for seed in range(2)],
    "up": [rows(0.5, seed) for seed in range(2)],          # +0.5 on every trace: better
    "down": [rows(-0.5, seed) for seed in range(2)],       # -0.5 on every trace: worse
    "level": [alternating(0.3, seed) for seed in range(2)],  # +-0.3 alternately: level on average
}


@pytest.mark.parametrize("val_qoe, expected", [
    ({SEED: 1.0, "up": 1.4, "down": 1.1, "level": 0.9},
     "the best design on validation, `up`, is better than the seed design on the held-out test traces: "
     "up - seed-pensieve: +0.500 QoE/chunk"),
    ({SEED: 1.0, "up": 0.2, "down": 1.3, "level": 0.9},
     "the best design on validation, `down`, is worse than the seed design on the held-out test traces: "
     "down - seed-pensieve: -0.500 QoE/chunk"),
    ({SEED: 1.0, "up": 0.2, "down": 1.1, "level": 1.2},
     "the best design on validation, `level`, shows no significant difference from the seed design on the held-out "
     "test traces: level - seed-pensieve: +0.000 QoE/chunk"),
    # the seed wins on validation; the best candidate is `level` at 0.0, not `up` (test-better, val -0.5)
    ({SEED: 1.0, "up": -0.5, "down": None, "level": 0.0},
     "the seed design itself was best on validation: no candidate replaced it. The best candidate on validation, "
     "`level`, against it on test: level - seed-pensieve: +0.000 QoE/chunk"),
], ids=["candidate-better", "candidate-worse", "candidate-level", "seed-wins"])
def test_verdict_names_the_winner_on_validation_and_its_test_comparison(val_qoe, expected):
    stats = stats_for(TEST_ROWS)
    designs = {name: {"val_qoe": value} for name, value in val_qoe.items()}
    text = report.verdict_text(stats, TEST_ROWS, designs, SEED)
    assert text.startswith(expected) and " (95 % CI " in text, text


def test_verdict_with_only_the_seed_tested():
    only = {SEED: TEST_ROWS[SEED]}
    text = report.verdict_text(None, only, {SEED: {"val_qoe": 0.7}}, SEED)
    assert text == "the seed design itself was best on validation: no candidate replaced it."


def test_per_trace_averages_the_seeds_by_trace_name_not_by_position(tmp_path):
    first = rows(0.0, seed=0, wobble=0.0)
    second = list(reversed(rows(1.0, seed=0, wobble=0.0)))  # the same traces, listed the other way round
    archive = make_run(tmp_path, {SEED: (1.0, None, [first, second])})
    averaged = report.per_trace(archive, SEED)
    assert [row["trace"] for row in averaged] == TRACES
    for row, own in zip(averaged, first):
        assert row["qoe_per_chunk"] == pytest.approx(own["qoe_per_chunk"] + 0.5)  # (q + (q + 1)) / 2
    (archive.folder(SEED) / "test-s1.json").write_text(json.dumps(second[:-1]))  # one trace short
    with pytest.raises(ValueError, match="cover other traces"):
        report.per_trace(archive, SEED)


def test_a_report_with_several_finalists_picks_the_winner_on_validation_not_on_test(tmp_path, monkeypatch):
    """Three finalists and the seed, two seeds each: `steady` wins on validation (1.3) though `spiky` is
    better on test; the verdict, the table and the comparisons say so, every finalist is listed."""
    run = tmp_path / "run"
    archive = make_run(run, {
        "spiky": (1.1, None, [rows(0.8, seed) for seed in range(2)]),
        "steady": (1.3, None, [rows(0.5, seed) for seed in range(2)]),
        "flat": (0.0, None, [alternating(0.3, seed) for seed in range(2)]),
        SEED: (1.0, None, [rows(0.0, seed) for seed in range(2)]),
    })
    baselines = {"bb": rows(-1.0), "robustmpc": rows(0.1), "optimal": rows(2.0)}
    monkeypatch.setattr(report, "baseline_rows", lambda config, test_traces: baselines)
    config = load_search_config(None, ["budget.top_k=3", "budget.train_seeds=2"])
    text = report.write_report(archive, config, "tests-only", {"proposer": "hand-written", "elapsed_s": 60.0}).read_text()
    verdict = next(line for line in text.splitlines() if line.startswith("**Verdict:**"))
    assert "the best design on validation, `steady`, is better than the seed design" in verdict
    assert "steady - seed-pensieve: +0.500 QoE/chunk" in verdict and "(2 per design)" in verdict
    table = [line for line in text.splitlines() if line.startswith("| ") and " | 2 | " in line]
    assert [line.split(" | ")[0][2:] for line in table] == ["spiky", "steady", "flat", SEED]
    assert "| steady | 2 | 1.300 |" in text and "| flat | 2 | 0.000 |" in text  # 0.0 shown, not "-"
    # normalized by hand: (QoE - BB) / (optimum - BB) = (q + 0.5 - (q - 1)) / (q + 2 - (q - 1)) = 1.5 / 3
    steady_row = next(line for line in table if line.startswith("| steady |"))
    assert steady_row.split(" | ")[5] == "0.500"
    assert "- spiky - seed-pensieve: +0.800 QoE/chunk" in text and "- flat - seed-pensieve: +0.000 QoE/chunk" in text


@pytest.mark.parametrize("train_seeds, expected", [
    (0, "**Verdict:** screening only (`budget.train_seeds = 0`): no full training and no test, so no claim about the "
        "seed design on test traces. Best on S2 validation: `zero` 0.000 (seed design -0.250)."),
    (2, "**Verdict:** no finalist and seed pair was tested, so there is no comparison (see the funnel and the failures "
        "below)."),
], ids=["screening-only", "nothing-tested"])
def test_a_report_without_tested_designs_says_why_there_is_no_comparison(tmp_path, monkeypatch, train_seeds, expected):
    """No S3 results: with budget.train_seeds = 0 the verdict names the best screened design (0.0 above a
    negative seed score); otherwise it says that nothing was compared."""
    archive = make_run(tmp_path / "run", {SEED: (-0.25, None, None), "zero": (0.0, None, None),
                                          "low": (-1.0, None, None)})
    monkeypatch.setattr(report, "baseline_rows", lambda config, test_traces: {"bb": rows(-1.0), "optimal": rows(2.0)})
    config = load_search_config(None, [f"budget.train_seeds={train_seeds}"])
    text = report.write_report(archive, config, "tests-only", {"proposer": "hand-written"}).read_text()
    assert expected in text.splitlines()


def test_paired_comparison_refuses_rows_of_other_traces_or_in_another_order():
    """Pairing is by trace name: rows listed in another order (or of other traces) are refused, not paired
    by position."""
    seed_rows, candidate = rows(0.0), rows(0.5)
    assert compare({SEED: [seed_rows], "c": [candidate]}).difference("c", SEED).mean == pytest.approx(0.5)
    with pytest.raises(ValueError, match="other traces \\(or another order\\)"):
        compare({SEED: [seed_rows], "c": [list(reversed(candidate))]})
    with pytest.raises(ValueError, match="other traces"):
        compare({SEED: [seed_rows], "c": [[{**row, "trace": row["trace"] + "-x"} for row in candidate]]})
