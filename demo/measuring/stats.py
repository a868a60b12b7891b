"""Intervals and paired tests, so that a figure says how far the sample lets it be trusted.

Every interval is 95% and comes from scipy: Wilson for a proportion (accuracy, agreement, masked-token
accuracy), a seeded bootstrap over examples for everything else (macro-F1, retention, a difference of
two models on the same rows, a speedup over interleaved timing pairs), and an exact McNemar test
(a binomial test on the rows where exactly one of two models is right) for "is one model ahead?".
An estimate that cannot be computed says so ("undefined") with the reason, instead of a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from demo.measuring.scoring import macro_f1_over

CONFIDENCE = 0.95  # every interval the project reports
RESAMPLES = 2000  # bootstrap resamples: enough for stable 95% percentiles, a fraction of a second on 2 cores
LIVE_RESAMPLES = 500  # the page's scorecard, redrawn after every request: ~25 ms at 500 requests, not ~100
SEED = 0  # resamples are seeded: the same data gives the same interval on every run and machine


@dataclass(frozen=True)
class Estimate:
    """A figure with its 95% interval and the sample it rests on; value None means undefined (see why)."""

    value: float | None
    low: float | None
    high: float | None
    n: int
    method: str
    why_undefined: str | None = None

    @classmethod
    def undefined(cls, n: int, why: str, method: str = "") -> Estimate:
        return cls(None, None, None, n, method, why)

    @property
    def defined(self) -> bool:
        return self.value is not None

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def text(self, digits: int = 4, scale: float = 1.0, unit: str = "") -> str:
        """"0.8420 [0.8180, 0.8650]"; "undefined (why)" where there is no value."""
        if not self.defined:
            return f"undefined ({self.why_undefined})"
        fmt = f"{{:.{digits}f}}{unit}"
        value = fmt.format(self.value * scale)
        if self.low is None or self.high is None:
            return value
        return f"{value} [{fmt.format(self.low * scale)}, {fmt.format(self.high * scale)}]"

    def verdict(self, threshold: float) -> str:
        """Against a claim "at least threshold": met (the whole interval clears it), not met (the whole
        interval is below it), not yet known (it straddles, or the figure is undefined)."""
        if not self.defined or self.low is None or self.high is None:
            return "not yet known"
        if self.low >= threshold:
            return "met"
        if self.high < threshold:
            return "not met"
        return "not yet known"


def proportion(successes: int, n: int) -> Estimate:
    """A share of n trials (accuracy, agreement): Wilson's interval, which behaves at 0 and 1 and for small n."""
    from scipy.stats import binomtest

    if n <= 0:
        return Estimate.undefined(0, "no examples", "wilson")
    ci = binomtest(int(successes), int(n)).proportion_ci(CONFIDENCE, method="wilson")
    return Estimate(successes / n, float(ci.low), float(ci.high), n, "wilson")


def bootstrap(statistic: Callable[..., float], *samples: Sequence, what: str = "",
              resamples: int = RESAMPLES) -> Estimate:
    """The statistic of paired samples (the same rows, one array per model), with a seeded percentile
    bootstrap over rows. statistic(*arrays) -> float; an undefined value (NaN, inf) is said, not drawn."""
    from scipy.stats import bootstrap as scipy_bootstrap

    arrays = [np.asarray(s, dtype=float) for s in samples]
    n = len(arrays[0]) if arrays else 0
    if n == 0:
        return Estimate.undefined(0, "no examples", "bootstrap")
    value = statistic(*arrays)
    if not math.isfinite(value):
        return Estimate.undefined(n, what or "the statistic is undefined on this sample", "bootstrap")
    if n < 2:  # one pair (one batch, one request): a value, no interval
        return Estimate(float(value), None, None, n, "bootstrap")
    if all(np.all(a == a[0]) for a in arrays):
        return Estimate(float(value), float(value), float(value), n, "bootstrap")  # nothing varies to resample

    def finite(*resampled, axis=-1):
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.asarray(statistic(*resampled, axis=axis), dtype=float)
        return np.where(np.isfinite(out), out, np.nan)

    result = scipy_bootstrap(tuple(arrays), finite, paired=True, vectorized=True, n_resamples=resamples,
                             confidence_level=CONFIDENCE, method="percentile", batch=200,
                             rng=np.random.default_rng(SEED))
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):  # some resamples had no defined value
        return Estimate(float(value), None, None, n, "bootstrap")
    return Estimate(float(value), low, high, n, "bootstrap")


def _ratio_of_means(numerator, denominator, axis=-1):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.mean(numerator, axis=axis) / np.mean(denominator, axis=axis)


def ratio(numerator_hits: Sequence, denominator_hits: Sequence, what: str = "the ratio") -> Estimate:
    """mean(numerator) / mean(denominator) over the same rows, e.g. retention = student accuracy / teacher
    accuracy (paired bootstrap); undefined where the denominator is 0."""
    if len(denominator_hits) and not np.any(np.asarray(denominator_hits, dtype=float)):
        return Estimate.undefined(len(denominator_hits), f"{what} divides by zero (the reference scored 0)",
                                  "bootstrap")
    return bootstrap(_ratio_of_means, numerator_hits, denominator_hits, what=what)


def speedup(teacher_ms: Sequence[float], student_ms: Sequence[float]) -> Estimate:
    """Total teacher time / total student time over interleaved timing pairs (batches, requests), with a
    paired bootstrap over the pairs: a slow moment of the machine hits both sides of its pair."""
    return ratio(teacher_ms, student_ms, what="the speedup")


def _median_ratio(teacher, student, axis=-1):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.median(teacher, axis=axis) / np.median(student, axis=axis)


def median_speedup(teacher_ms: Sequence[float], student_ms: Sequence[float],
                   resamples: int = RESAMPLES) -> Estimate:
    """p50 teacher time / p50 student time over paired requests (the latency chart's figure), with a
    paired bootstrap over the requests."""
    return bootstrap(_median_ratio, teacher_ms, student_ms, what="the speedup", resamples=resamples)


def macro_f1_estimate(predictions: Sequence[int], labels: Sequence[int]) -> Estimate:
    """Macro-F1 (as scoring.macro_f1) with a bootstrap over examples."""
    return bootstrap(macro_f1_over, predictions, labels, what="macro-F1")


@dataclass(frozen=True)
class PairedComparison:
    """Two models on the same rows: A's lead in points with its paired interval, the discordant rows
    (A right and B wrong, the reverse) and the exact McNemar p-value on them."""

    a: str
    b: str
    n: int
    difference: Estimate  # accuracy of A minus accuracy of B
    a_only: int
    b_only: int
    p_value: float | None  # None: no row where they differ

    def sentence(self) -> str:
        """What it means, in words a stakeholder can quote."""
        if not self.difference.defined:
            return f"{self.a} and {self.b}: {self.difference.text()}"
        points = self.difference.text(digits=1, scale=100)
        if self.p_value is None:
            return f"{self.a} and {self.b} are right and wrong on the same rows: no row where they differ"
        p = f"p = {self.p_value:.3g}"
        if self.p_value is not None and self.p_value < 1 - CONFIDENCE:
            ahead, behind = (self.a, self.b) if self.difference.value > 0 else (self.b, self.a)
            lead = abs(self.difference.value) * 100
            low, high = sorted(abs(x) * 100 for x in (self.difference.low, self.difference.high))
            return (f"{ahead} is ahead of {behind} by {lead:.1f} points [{low:.1f}, {high:.1f}], {p} "
                    f"({self.a_only} rows only {self.a} gets right, {self.b_only} only {self.b})")
        return (f"no detectable difference between {self.a} and {self.b} by the exact McNemar test ({p}; "
                f"{self.a} minus {self.b}: {points} points, bootstrap interval) on the "
                f"{self.a_only + self.b_only} rows where they differ ({self.a_only} only {self.a} gets right, "
                f"{self.b_only} only {self.b})")

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "n": self.n, "difference": self.difference.to_dict(),
                "a_right_b_wrong": self.a_only, "b_right_a_wrong": self.b_only,
                "mcnemar_p": self.p_value, "sentence": self.sentence()}


def mcnemar_p(a_only: int, b_only: int) -> float | None:
    """Exact McNemar: under "no difference" each discordant row is a fair coin (scipy's binomtest)."""
    from scipy.stats import binomtest

    discordant = a_only + b_only
    return float(binomtest(a_only, discordant, 0.5).pvalue) if discordant else None


def paired_comparison(a_correct: Sequence[bool], b_correct: Sequence[bool], a: str = "A",
                      b: str = "B") -> PairedComparison:
    """A and B scored on the same rows (True where right)."""
    x, y = np.asarray(a_correct, dtype=bool), np.asarray(b_correct, dtype=bool)
    a_only, b_only = int(np.sum(x & ~y)), int(np.sum(~x & y))
    diff = bootstrap(lambda p, q, axis=-1: np.mean(p, axis=axis) - np.mean(q, axis=axis), x, y,
                     what="the difference")
    return PairedComparison(a, b, len(x), diff, a_only, b_only, mcnemar_p(a_only, b_only))
