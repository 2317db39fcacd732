"""The two-level paired bootstrap, the normalized score and the verdicts (llmabr.scoring.stats)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import scipy.stats

from llmabr.scoring.stats import (BootstrapResult, Estimate, describe_comparison, two_level_bootstrap, verdict)
from llmabr.train.evaluate import bootstrap_ci


def slow_bootstrap(scores, groups, resamples, level, seed, normalize=None):
    """The same statistic, replicate by replicate, from the draws the docstring promises."""
    matrices = {name: np.atleast_2d(np.asarray(values, dtype=float)) for name, values in scores.items()}
    n_traces = next(iter(matrices.values())).shape[1]
    labels = list(groups) if groups is not None else list(range(n_traces))
    order = list(dict.fromkeys(labels))
    members = [[t for t in range(n_traces) if labels[t] == label] for label in order]
    rng = np.random.default_rng(seed)
    seed_draws = {n: rng.integers(0, n, size=(resamples, n))
                  for n in sorted({len(m) for m in matrices.values()} - {1})}
    group_draws = rng.integers(0, len(order), size=(resamples, len(order)))
    replicates = {name: [] for name in matrices}
    for r in range(resamples):
        columns = [t for g in group_draws[r] for t in members[g]]
        for name, matrix in matrices.items():
            rows = seed_draws[len(matrix)][r] if len(matrix) > 1 else [0]
            replicates[name].append(np.mean([matrix[s, t] for s in rows for t in columns]))
    replicates = {name: np.array(values) for name, values in replicates.items()}
    tail = (1 - level) / 2

    def interval(values):
        return tuple(np.quantile(values, [tail, 1 - tail]))

    names = list(matrices)
    out = {"policies": {name: interval(replicates[name]) for name in names},
           "differences": {(a, b): interval(replicates[a] - replicates[b])
                           for i, a in enumerate(names) for b in names[i + 1:]}}
    if normalize:
        floor, ceiling = normalize
        out["normalized"] = {name: interval((replicates[name] - replicates[floor])
                                            / (replicates[ceiling] - replicates[floor])) for name in names}
    return out


def _interval(estimate: Estimate) -> tuple[float, float]:
    return estimate.low, estimate.high


def _width(estimate: Estimate) -> float:
    return estimate.high - estimate.low


# -- the fast code computes the slow loop's statistic, draw for draw ---------------------------------

@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("level", [0.95, 0.8])
def test_matches_a_replicate_by_replicate_loop(grouped, level):
    rng = np.random.default_rng(3)
    n_traces = 14
    bb = rng.normal(0.0, 1.0, n_traces)
    scores = {
        "learned": rng.normal(1.0, 1.0, (4, n_traces)),
        "other": rng.normal(1.2, 1.0, (4, n_traces)),  # shares the seed draws of "learned"
        "three_seeds": rng.normal(0.5, 1.0, (3, n_traces)),
        "bb": bb,
        "optimal": bb + rng.uniform(1.0, 3.0, n_traces),
    }
    # Groups of unequal size, labelled out of order: numbering is by first appearance.
    groups = ["z", "z", "a", "m", "m", "m", "a", "q", "b", "b", "z", "c", "c", "d"] if grouped else None
    result = two_level_bootstrap(scores, groups, normalize=("bb", "optimal"), resamples=300, level=level, seed=11)
    expected = slow_bootstrap(scores, groups, 300, level, 11, normalize=("bb", "optimal"))
    for name, interval in expected["policies"].items():
        assert _interval(result.policies[name]) == pytest.approx(interval, rel=1e-10, abs=1e-12), name
    assert set(result.differences) == set(expected["differences"])
    for pair, interval in expected["differences"].items():
        assert _interval(result.differences[pair]) == pytest.approx(interval, rel=1e-10, abs=1e-12), pair
    for name, interval in expected["normalized"].items():
        assert _interval(result.normalized[name]) == pytest.approx(interval, rel=1e-10, abs=1e-12), name
    assert result.n_groups == (7 if grouped else n_traces) and result.n_traces == n_traces
    assert result.n_seeds == {"learned": 4, "other": 4, "three_seeds": 3, "bb": 1, "optimal": 1}


def test_point_estimates_are_the_plain_means():
    rng = np.random.default_rng(4)
    learned, bb = rng.normal(2.0, 1.0, (5, 30)), rng.normal(0.0, 1.0, 30)
    optimal = bb + 3.0
    result = two_level_bootstrap({"learned": learned, "bb": bb, "optimal": optimal}, normalize=("bb", "optimal"))
    assert result.policies["learned"].mean == pytest.approx(learned.mean())
    assert result.difference("learned", "bb").mean == pytest.approx(learned.mean() - bb.mean())
    assert result.normalized["learned"].mean == pytest.approx((learned.mean() - bb.mean()) / 3.0)


@pytest.mark.parametrize("n_values, seed", [(1, 0), (2, 5), (37, 0), (200, 9)])
def test_one_level_case_is_evaluates_bootstrap_ci(n_values, seed):
    values = np.random.default_rng(n_values).gamma(2.0, 1.5, n_values)
    result = two_level_bootstrap({"policy": values}, seed=seed)
    assert _interval(result.policies["policy"]) == pytest.approx(bootstrap_ci(values, seed=seed), rel=1e-12)


@pytest.mark.parametrize("n_values, level, seed", [(2, 0.95, 0), (9, 0.9, 3), (40, 0.95, 1)])
def test_bootstrap_ci_is_the_percentile_interval_of_resampled_means(n_values, level, seed):
    """``llmabr.train.evaluate.bootstrap_ci`` (the eval CLI's CIs) against a loop written from the textbook:
    draw n values with replacement, take the mean, repeat; the interval is the two tail quantiles."""
    values = np.random.default_rng(n_values).gamma(2.0, 1.5, n_values)
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(2000):
        picks = rng.integers(0, n_values, size=n_values)
        means.append(sum(values[i] for i in picks) / n_values)
    tail = (1 - level) / 2
    expected = (float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail)))
    assert bootstrap_ci(values, seed=seed, level=level) == pytest.approx(expected, rel=1e-12)
    assert bootstrap_ci([3.5]) == (3.5, 3.5)  # one value: no spread to resample


@pytest.mark.parametrize("level", [0.95, 0.9])
def test_bootstrap_ci_agrees_with_scipy_percentile_bootstrap(level):
    values = np.random.default_rng(5).lognormal(0.0, 0.8, 60)  # skewed, so a wrong tail shows
    ours = bootstrap_ci(values, resamples=20000, seed=1, level=level)
    theirs = scipy.stats.bootstrap((values,), np.mean, n_resamples=20000, method="percentile",
                                   confidence_level=level, rng=np.random.default_rng(2)).confidence_interval
    tolerance = 0.03 * (theirs.high - theirs.low)  # two independent Monte Carlo runs
    assert ours == (pytest.approx(theirs.low, abs=tolerance), pytest.approx(theirs.high, abs=tolerance))


@pytest.mark.parametrize("level", [0.95, 0.9])
def test_one_level_case_agrees_with_scipy_percentile_bootstrap(level):
    values = np.random.default_rng(8).lognormal(0.0, 0.8, 60)  # skewed, so a wrong tail shows
    ours = two_level_bootstrap({"policy": values}, resamples=20000, level=level, seed=1).policies["policy"]
    theirs = scipy.stats.bootstrap((values,), np.mean, n_resamples=20000, method="percentile",
                                   confidence_level=level, rng=np.random.default_rng(2)).confidence_interval
    # Two independent Monte Carlo runs: endpoints agree to ~1 % of the width (20000 resamples).
    tolerance = 0.03 * (theirs.high - theirs.low)
    assert ours.low == pytest.approx(theirs.low, abs=tolerance)
    assert ours.high == pytest.approx(theirs.high, abs=tolerance)


# -- coverage: the interval holds the true mean about as often as it claims ---------------------------

def _coverage(n_experiments, make_scores, interval_of, true_mean):
    hits = 0
    for experiment in range(n_experiments):
        low, high = interval_of(make_scores(np.random.default_rng(1000 + experiment)))
        hits += low <= true_mean <= high
    return hits / n_experiments


@pytest.mark.parametrize("structure", ["seed effects", "recording effects"])
def test_coverage_near_nominal_and_lost_when_a_level_is_ignored(structure):
    """Scores = 1 + seed effect + recording effect + noise; the true mean over new seeds and new
    recordings is 1. The two-level grouped interval covers it ~95 % of the time; an interval that
    ignores the level carrying the variance (seeds, or recordings) covers it far less often."""
    n_seeds, n_groups, per_group = 20, 30, 5
    groups = np.repeat(np.arange(n_groups), per_group)
    seed_sd, group_sd = (1.0, 0.3) if structure == "seed effects" else (0.1, 1.0)

    def make_scores(rng):
        return (1.0 + rng.normal(0, seed_sd, (n_seeds, 1)) + rng.normal(0, group_sd, n_groups)[groups]
                + rng.normal(0, 0.5, (n_seeds, n_groups * per_group)))

    def full(scores):
        return _interval(two_level_bootstrap({"p": scores}, groups, resamples=300, seed=0).policies["p"])

    def ignoring(scores):
        if structure == "seed effects":  # the seed-averaged scores, bootstrapped over traces only
            return _interval(two_level_bootstrap({"p": scores.mean(axis=0)}, groups, resamples=300).policies["p"])
        return _interval(two_level_bootstrap({"p": scores}, None, resamples=300).policies["p"])  # traces as iid

    # Binomial sd of a 93 % coverage over 250 experiments: 1.6 points. The percentile bootstrap
    # undercovers a little with 20 seeds or 30 recordings (it misses the t-quantile and the
    # (n-1)/n variance factor; measured ~0.93), much more with 3-5 seeds (module docstring).
    n_experiments = 250
    assert 0.88 <= _coverage(n_experiments, make_scores, full, 1.0) <= 0.99
    assert _coverage(n_experiments, make_scores, ignoring, 1.0) <= 0.75  # measured 0.35 (seeds), 0.63 (recordings)


# -- what widens and what narrows an interval --------------------------------------------------------

def test_grouping_widens_the_interval_when_a_recordings_traces_move_together():
    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(30), 4)
    correlated = rng.normal(0, 1.0, 30)[groups] + rng.normal(0, 0.1, 120)
    independent = rng.normal(0, 1.0, 120)
    scores = {"correlated": correlated, "independent": independent}
    grouped = two_level_bootstrap(scores, groups)
    ungrouped = two_level_bootstrap(scores)
    # sqrt(4 traces per group) = 2 when the four are copies; they nearly are.
    assert _width(grouped.policies["correlated"]) > 1.6 * _width(ungrouped.policies["correlated"])
    ratio = _width(grouped.policies["independent"]) / _width(ungrouped.policies["independent"])
    assert 0.75 < ratio < 1.33  # grouping iid traces changes little


def test_pairing_narrows_the_interval_of_a_difference():
    rng = np.random.default_rng(6)
    difficulty = rng.normal(0, 1.0, 60)  # shared by both policies: hard traces are hard for both
    scores = {"a": difficulty + rng.normal(0, 0.1, 60), "b": difficulty + 0.05 + rng.normal(0, 0.1, 60),
              "c": rng.normal(0, 1.0, 60), "d": rng.normal(0, 1.0, 60)}  # c, d: no shared difficulty
    result = two_level_bootstrap(scores)

    def unpaired_width(a, b):  # the width of a difference of independent intervals
        return np.hypot(_width(result.policies[a]), _width(result.policies[b]))

    assert _width(result.difference("a", "b")) < 0.15 * unpaired_width("a", "b")
    assert 0.8 < _width(result.difference("c", "d")) / unpaired_width("c", "d") < 1.25


def test_seed_variance_widens_the_interval():
    rng = np.random.default_rng(7)
    base = rng.normal(0, 1.0, 50)
    spread = base + np.array([-2.0, -1.0, 0.0, 1.0, 2.0])[:, None]  # seeds disagree a lot
    agree = np.tile(base, (5, 1))  # five seeds that agree exactly
    result = two_level_bootstrap({"spread": spread, "agree": agree, "one_seed": base})
    assert _width(result.policies["spread"]) > 3.0 * _width(result.policies["agree"])
    # Identical seed rows and a single held-fixed row see the same trace draws: the same interval.
    assert _interval(result.policies["agree"]) == pytest.approx(_interval(result.policies["one_seed"]), rel=1e-12)


# -- the normalized score ---------------------------------------------------------------------------

def _reference_pair(rng, n_traces=40):
    bb = rng.normal(0.5, 1.0, n_traces)
    return bb, bb + rng.uniform(0.5, 2.0, n_traces)


def test_normalized_endpoints_and_midpoint():
    rng = np.random.default_rng(9)
    bb, optimal = _reference_pair(rng)
    scores = {"bb": bb, "optimal": optimal, "half": (bb + optimal) / 2,
              "learned": optimal - rng.uniform(0.0, 0.5, (3, 40))}
    normalized = two_level_bootstrap(scores, normalize=("bb", "optimal")).normalized
    assert (normalized["bb"].mean, *_interval(normalized["bb"])) == (0.0, 0.0, 0.0)
    assert (normalized["optimal"].mean, *_interval(normalized["optimal"])) == (1.0, 1.0, 1.0)
    assert [normalized["half"].mean, *_interval(normalized["half"])] == pytest.approx([0.5, 0.5, 0.5])
    assert 0.0 < normalized["learned"].low < normalized["learned"].mean < normalized["learned"].high < 1.0


def test_normalized_is_a_ratio_of_means_so_a_trace_with_no_gap_is_harmless():
    bb = np.array([1.0, 2.0, 3.0, 4.0])
    optimal = np.array([1.0, 3.0, 5.0, 7.0])  # trace 0: BB is already optimal (per-trace gap 0)
    learned = np.array([1.5, 2.5, 4.0, 5.5])  # beats the optimum on trace 0: a per-trace ratio is inf
    result = two_level_bootstrap({"bb": bb, "optimal": optimal, "learned": learned}, normalize=("bb", "optimal"))
    estimate = result.normalized["learned"]
    assert estimate.mean == pytest.approx((learned.mean() - bb.mean()) / (optimal.mean() - bb.mean()))
    # A few resamples draw trace 0 four times (no gap at all); fewer than 2.5 %, so the interval stays finite.
    assert "resamples mean optimal is not above mean bb" in estimate.note
    assert np.isfinite(_interval(estimate)).all() and estimate.low < estimate.mean < estimate.high


@pytest.mark.parametrize("offset", [0.0, -0.5])
def test_normalized_refuses_an_optimum_not_above_bb(offset):
    bb = np.random.default_rng(10).normal(0, 1, 20)
    with pytest.raises(ValueError, match=r"normalized score is undefined.*mean optimal = .* is not above mean bb"):
        two_level_bootstrap({"bb": bb, "optimal": bb + offset}, normalize=("bb", "optimal"))


def test_normalized_interval_is_unbounded_with_a_reason_when_resamples_lose_the_gap():
    rng = np.random.default_rng(11)
    gap = rng.normal(0, 1.0, 20)
    gap += 0.01 - gap.mean()  # above BB on the set, not above it in many resamples
    bb = rng.normal(0, 1, 20)
    scores = {"bb": bb, "optimal": bb + gap, "above": bb + 0.005, "below": bb - 0.005, "level": bb.copy()}
    result = two_level_bootstrap(scores, normalize=("bb", "optimal"))
    above, below, level = (result.normalized[name] for name in ("above", "below", "level"))
    assert above.mean == pytest.approx(0.5) and below.mean == pytest.approx(-0.5)
    assert 0.0 < above.low < np.inf and above.high == np.inf  # unbounded on the numerator's side only
    assert below.low == -np.inf and -np.inf < below.high < 0.0
    assert (level.low, level.high) == (0.0, 0.0)  # level with the floor is 0 on any scale
    assert "resamples mean optimal is not above mean bb" in above.note and "conservative" in above.note
    assert (result.normalized["bb"].low, result.normalized["optimal"].high) == (0.0, 1.0)
    assert result.normalized["bb"].note == "" and result.policies["above"].note == ""


@pytest.mark.parametrize("normalize", [("bb", "nope"), ("bb", "bb")])
def test_normalize_must_name_two_policies(normalize):
    with pytest.raises(ValueError, match="must name two different policies"):
        two_level_bootstrap({"bb": [1.0, 2.0], "optimal": [3.0, 4.0]}, normalize=normalize)


# -- verdicts and report lines ----------------------------------------------------------------------

@pytest.mark.parametrize("low, high, expected", [
    (0.1, 0.5, "better"),
    (1e-12, 0.5, "better"),
    (-0.5, -0.1, "worse"),
    (-0.5, -1e-12, "worse"),
    (-0.1, 0.1, "no significant difference"),
    (0.0, 0.5, "no significant difference"),  # touching 0 is not excluding it
    (-0.5, 0.0, "no significant difference"),
    (0.0, 0.0, "no significant difference"),
])
def test_verdict_thresholds(low, high, expected):
    assert verdict(low, high) == expected


@pytest.mark.parametrize("low, high, message", [
    (float("nan"), 0.5, "not finite"), (0.1, float("inf"), "not finite"), (0.5, 0.1, "above its high end")])
def test_verdict_refuses_broken_intervals(low, high, message):
    with pytest.raises(ValueError, match=message):
        verdict(low, high)


def test_describe_comparison_lines():
    rng = np.random.default_rng(12)
    difficulty = rng.normal(0, 1, 50)
    result = two_level_bootstrap({"pensieve": difficulty + 0.3, "bb": difficulty + rng.normal(0, 0.05, 50),
                                  "twin": difficulty + 0.3 + rng.normal(0, 0.05, 50)})
    gain = result.differences[("pensieve", "bb")]
    assert describe_comparison("pensieve", "bb", result, " QoE/chunk") == (
        f"pensieve - bb: {gain.mean:+.4g} QoE/chunk (95 % CI {gain.low:+.4g} to {gain.high:+.4g}): "
        "pensieve is better than bb")
    assert 0.25 < gain.low < gain.mean < gain.high < 0.35
    assert describe_comparison("bb", "pensieve", result).endswith(": bb is worse than pensieve")
    flipped = result.difference("bb", "pensieve")
    assert _interval(flipped) == (-result.differences[("pensieve", "bb")].high,
                                  -result.differences[("pensieve", "bb")].low)
    assert describe_comparison("pensieve", "twin", result).endswith(
        ": no significant difference between pensieve and twin")
    with pytest.raises(KeyError, match="no difference between"):
        two_level_bootstrap({"a": [1.0, 2.0], "b": [1.0, 3.0], "c": [0.0, 1.0]},
                            pairs=[("a", "b")]).difference("a", "c")


# -- inputs -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("scores, kwargs, message", [
    ({}, {}, "no policies"),
    ({"a": np.ones((2, 5)), "b": np.ones(4)}, {}, "different numbers of traces"),
    ({"a": np.ones((2, 3, 4))}, {}, "expected \\[n_seeds, n_traces\\]"),
    ({"a": np.zeros((0, 4))}, {}, "expected \\[n_seeds, n_traces\\]"),
    ({"a": [1.0, float("nan"), 2.0]}, {}, r"scores\['a'\]\[0, 1\] is nan"),
    ({"a": [1.0, 2.0, 3.0]}, {"groups": ["x", "y"]}, "2 group labels for 3 trace columns"),
    ({"a": [1.0, 2.0]}, {"level": 1.0}, "level must lie strictly between 0 and 1"),
    ({"a": [1.0, 2.0]}, {"resamples": 0}, "resamples must be a positive integer"),
    ({"a": [1.0, 2.0], "b": [1.0, 2.0]}, {"pairs": [("a", "z")]}, "unknown: z"),
    ({"a": [1.0, 2.0], "b": [1.0, 2.0]}, {"pairs": [("a", "a")]}, "same policy twice"),
])
def test_bad_inputs_are_named(scores, kwargs, message):
    with pytest.raises(ValueError, match=message):
        two_level_bootstrap(scores, **kwargs)


def test_result_shape_and_determinism():
    rng = np.random.default_rng(13)
    scores = {name: rng.normal(0, 1, (3, 25)) for name in ("a", "b", "c")}
    first = two_level_bootstrap(scores, seed=4)
    assert isinstance(first, BootstrapResult) and list(first.differences) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert first == two_level_bootstrap(scores, seed=4)
    assert first.policies["a"] != two_level_bootstrap(scores, seed=5).policies["a"]
    assert first.resamples == 2000 and first.level == 0.95 and first.normalized == {}


@pytest.mark.benchmark
def test_fast_enough_for_every_report():
    """A benchmark (outside the default suite): CPU time, so a busy machine does not fail it."""
    rng = np.random.default_rng(14)
    bb = rng.normal(0, 1, 100)
    scores = {"a": rng.normal(1, 1, (5, 100)), "b": rng.normal(1, 1, (5, 100)), "bb": bb, "optimal": bb + 2}
    groups = np.repeat(np.arange(40), [3] * 20 + [2] * 20)
    started_cpu_s = time.process_time()
    two_level_bootstrap(scores, groups, normalize=("bb", "optimal"))
    assert time.process_time() - started_cpu_s < 1.0  # typically ~0.02 s
