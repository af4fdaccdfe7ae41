"""Statistics of a two-arm experiment on a binary outcome (scipy does the distributions).

- `sample_size_per_arm`: customers per arm to detect an absolute lift `mde` over `baseline`
  with a two-sided test at `alpha` and the given power (normal approximation, unpooled
  alternative variance: Fleiss, Statistical Methods for Rates and Proportions, 3rd ed. 4.2).
- `compare`: lift, its Wald 95 % interval, and the p-value of the right test: the
  two-proportion z test when every expected cell count is at least 5, else Fisher's exact
  test (the usual rule for the chi-square/z approximation).
- `holm` and `benjamini_hochberg`: adjusted p-values across personas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scipy.stats import fisher_exact, norm

MIN_EXPECTED = 5


def sample_size_per_arm(baseline: float, mde: float, alpha: float, power: float) -> int:
    p1, p2 = baseline, min(1.0, baseline + mde)
    if mde <= 0 or not 0 < p1 < 1:
        raise ValueError("baseline must lie in (0, 1) and the effect must be positive")
    pbar = (p1 + p2) / 2
    za, zb = norm.ppf(1 - alpha / 2), norm.ppf(power)
    n = (
        za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    ) ** 2 / (p2 - p1) ** 2
    return math.ceil(n)


@dataclass(frozen=True)
class Comparison:
    n_control: int
    x_control: int
    n_treatment: int
    x_treatment: int
    rate_control: float
    rate_treatment: float
    lift: float  # absolute: treatment rate - control rate
    ci_low: float
    ci_high: float
    p_value: float
    test: str  # "two_proportion_z" | "fisher_exact" | "none"

    def to_json(self) -> dict[str, Any]:
        r = lambda v: round(float(v), 6)  # noqa: E731
        return {
            "n_control": self.n_control,
            "conversions_control": self.x_control,
            "n_treatment": self.n_treatment,
            "conversions_treatment": self.x_treatment,
            "rate_control": r(self.rate_control),
            "rate_treatment": r(self.rate_treatment),
            "lift": r(self.lift),
            "ci_95": [r(self.ci_low), r(self.ci_high)],
            "p_value": r(self.p_value),
            "test": self.test,
        }


def compare(x_c: int, n_c: int, x_t: int, n_t: int, confidence: float = 0.95) -> Comparison:
    if n_c == 0 or n_t == 0:
        return Comparison(n_c, x_c, n_t, x_t, 0.0, 0.0, 0.0, -1.0, 1.0, 1.0, "none")
    pc, pt = x_c / n_c, x_t / n_t
    lift = pt - pc
    z = norm.ppf(1 - (1 - confidence) / 2)
    se = math.sqrt(pc * (1 - pc) / n_c + pt * (1 - pt) / n_t)
    lo, hi = lift - z * se, lift + z * se
    pooled = (x_c + x_t) / (n_c + n_t)
    expected = [n * q for n in (n_c, n_t) for q in (pooled, 1 - pooled)]
    if min(expected) >= MIN_EXPECTED:
        se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
        p = 2 * float(norm.sf(abs(lift) / se0)) if se0 > 0 else 1.0
        test = "two_proportion_z"
    else:
        table = [[x_t, n_t - x_t], [x_c, n_c - x_c]]
        p = float(fisher_exact(table, alternative="two-sided").pvalue)
        test = "fisher_exact"
    return Comparison(n_c, x_c, n_t, x_t, pc, pt, lift, lo, hi, min(1.0, p), test)


def holm(p: list[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values (same order as given)."""
    m = len(p)
    order = sorted(range(m), key=lambda i: (p[i], i))
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def benjamini_hochberg(p: list[float]) -> list[float]:
    """Benjamini-Hochberg step-up adjusted p-values (false discovery rate)."""
    m = len(p)
    order = sorted(range(m), key=lambda i: (p[i], i))
    out = [0.0] * m
    running = 1.0
    for rank in range(m - 1, -1, -1):
        i = order[rank]
        running = min(running, p[i] * m / (rank + 1))
        out[i] = min(1.0, running)
    return out


def adjust(p: list[float], method: str) -> list[float]:
    if method == "holm":
        return holm(p)
    if method == "bh":
        return benjamini_hochberg(p)
    raise ValueError(f"unknown correction '{method}' (holm or bh)")
