"""The intervals and paired tests, each checked against an independent computation on fixed data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from demo.measuring import stats
from demo.measuring.scoring import macro_f1

Z95 = 1.959963984540054  # the normal quantile of 0.975


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    """Wilson's score interval, written out from its formula."""
    p = k / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return centre - half, centre + half


@pytest.mark.parametrize(("k", "n"), [(7, 12), (760, 872), (0, 30), (30, 30), (1, 1)])
def test_a_proportion_has_wilsons_interval(k, n):
    e = stats.proportion(k, n)
    low, high = wilson_by_hand(k, n)
    assert e.value == pytest.approx(k / n) and e.n == n and e.method == "wilson"
    assert e.low == pytest.approx(low, abs=1e-9) and e.high == pytest.approx(high, abs=1e-9)


def brute_force_bootstrap(statistic, *arrays, resamples: int = 4000, seed: int = 1) -> tuple[float, float]:
    """Rows drawn with replacement, the statistic on each resample, the 2.5th and 97.5th percentiles."""
    rng = np.random.default_rng(seed)
    n = len(arrays[0])
    values = []
    for _ in range(resamples):
        rows = rng.integers(0, n, n)
        values.append(statistic(*(np.asarray(a)[rows] for a in arrays)))
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


@pytest.fixture(scope="module")
def pair_hits():
    rng = np.random.default_rng(7)
    teacher = rng.random(400) < 0.85
    student = np.where(rng.random(400) < 0.9, teacher, ~teacher)
    return teacher, student


def drifting_timings():
    rng = np.random.default_rng(3)
    drift = rng.random(40) * 5  # the machine's speed moves both sides of a pair
    return 20 + drift + rng.random(40), 10 + drift / 2 + rng.random(40)


@pytest.mark.parametrize(("estimate", "by_hand", "samples", "tolerance"), [
    (lambda s, t: stats.ratio(s, t), lambda s, t: s.mean() / t.mean(), "pair_hits", 0.01),  # retention
    (lambda t, s: stats.speedup(t, s), lambda t, s: t.sum() / s.sum(), "timings", 0.02),  # speedup over pairs
], ids=["retention", "speedup"])
def test_a_ratio_is_a_paired_bootstrap_of_it(estimate, by_hand, samples, tolerance, pair_hits):
    a, b = (pair_hits[1], pair_hits[0]) if samples == "pair_hits" else drifting_timings()
    e = estimate(a, b)
    low, high = brute_force_bootstrap(by_hand, a, b)
    assert e.value == pytest.approx(by_hand(np.asarray(a, float), np.asarray(b, float)))
    assert e.low == pytest.approx(low, abs=tolerance) and e.high == pytest.approx(high, abs=tolerance)


def test_macro_f1_is_scorings_and_its_interval_a_bootstrap_of_it():
    rng = np.random.default_rng(5)
    gold = rng.integers(0, 4, 300)
    pred = np.where(rng.random(300) < 0.7, gold, rng.integers(0, 4, 300))
    e = stats.macro_f1_estimate(pred, gold)
    assert e.value == pytest.approx(macro_f1(pred.tolist(), gold.tolist()))
    low, high = brute_force_bootstrap(lambda p, g: macro_f1(p.tolist(), g.tolist()), pred, gold, resamples=1500)
    assert e.low == pytest.approx(low, abs=0.015) and e.high == pytest.approx(high, abs=0.015)


def test_a_paired_comparison_is_mcnemars_exact_test_on_the_discordant_rows(pair_hits):
    teacher, student = pair_hits
    c = stats.paired_comparison(student, teacher, "student", "teacher")
    b_count, c_count = int(np.sum(student & ~teacher)), int(np.sum(~student & teacher))
    assert (c.a_only, c.b_only) == (b_count, c_count)
    assert c.p_value == pytest.approx(binomtest(b_count, b_count + c_count, 0.5).pvalue)
    assert c.difference.value == pytest.approx(student.mean() - teacher.mean())
    low, high = brute_force_bootstrap(lambda s, t: s.mean() - t.mean(), student, teacher)
    assert c.difference.low == pytest.approx(low, abs=0.01) and c.difference.high == pytest.approx(high, abs=0.01)
    assert "teacher is ahead of student by" in c.sentence() and "p = " in c.sentence()


def test_no_detectable_difference_is_said_so():
    same = np.array([True, False] * 50)
    nearly = same.copy()
    nearly[[0, 3]] = ~nearly[[0, 3]]  # one row each way
    c = stats.paired_comparison(nearly, same, "A", "B")
    assert c.p_value == pytest.approx(1.0) and c.sentence().startswith("no detectable difference between A and B")
    twin = stats.paired_comparison(same, same, "A", "B")
    assert twin.p_value is None and "no row where they differ" in twin.sentence()


def test_intervals_are_seeded():
    rng = np.random.default_rng(11)
    a, b = rng.random(200) < 0.8, rng.random(200) < 0.75
    assert stats.ratio(a, b) == stats.ratio(a, b)


@pytest.mark.parametrize(("estimate", "why"), [
    (lambda: stats.ratio([1, 0, 1], [0, 0, 0]), "divides by zero"),
    (lambda: stats.proportion(0, 0), "no examples"),
    (lambda: stats.speedup([], []), "no examples"),
])
def test_an_undefined_figure_says_why_instead_of_a_number(estimate, why):
    e = estimate()
    assert e.value is None and why in e.text() and e.text().startswith("undefined")
    assert e.verdict(0.97) == "not yet known"


@pytest.mark.parametrize(("low", "high", "verdict"), [(0.98, 0.99, "met"), (0.90, 0.96, "not met"),
                                                       (0.95, 0.99, "not yet known")])
def test_a_claim_is_met_only_when_the_whole_interval_clears_it(low, high, verdict):
    assert stats.Estimate(0.97, low, high, 100, "test").verdict(0.97) == verdict


def test_one_timing_pair_gives_a_value_and_no_interval():
    e = stats.speedup([20.0], [10.0])
    assert e.value == pytest.approx(2.0) and e.low is None and e.high is None
    assert e.text(2) == "2.00" and e.verdict(1.6) == "not yet known"  # one batch decides nothing
