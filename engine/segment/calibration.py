"""Calibration of out-of-fold scores, and the honest statistics a model card reports.

- `cross_fitted_calibration`: each fold's scores are calibrated by a map (isotonic or
  sigmoid/Platt) fitted on the other folds' out-of-fold scores, so the calibrated scores the
  card measures never saw their own labels; the map fitted on all out-of-fold scores is
  returned for scoring customers outside the fitting sample.
- `wilson_interval`: the Wilson score interval for a binomial rate (sound at 0 and 1 events,
  unlike the normal approximation).
- `reliability_table`: predicted vs observed rate per score bin.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

Calibrator = Callable[[np.ndarray], np.ndarray]


def _fit_map(scores: np.ndarray, y: np.ndarray, method: str) -> Calibrator:
    if len(np.unique(y)) < 2:
        rate = float(y.mean()) if len(y) else 0.0
        return lambda s: np.full(len(s), rate)
    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, y)
        return lambda s: np.asarray(iso.predict(s), dtype=np.float64)
    # Platt scaling on the logit of the score: monotone, two parameters.
    logit = _logit(scores).reshape(-1, 1)
    lr = LogisticRegression(C=1e6, solver="lbfgs").fit(logit, y)
    return lambda s: np.asarray(lr.predict_proba(_logit(s).reshape(-1, 1))[:, 1])


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(q / (1 - q)))


def cross_fitted_calibration(
    oof: np.ndarray, y: np.ndarray, folds: np.ndarray, method: str
) -> tuple[np.ndarray, Calibrator]:
    """(calibrated out-of-fold scores, the map fitted on all of them)."""
    out = np.empty_like(oof)
    for f in np.unique(folds):
        test = folds == f
        out[test] = _fit_map(oof[~test], y[~test], method)(oof[test])
    return out, _fit_map(oof, y, method)


def brier(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2)) if len(y) else 0.0


def wilson_interval(events: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    if n <= 0:
        return 0.0, 1.0
    z = float(norm.ppf(1 - (1 - confidence) / 2))
    p = events / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class ReliabilityRow:
    bin: int
    lower: float
    upper: float
    n: int
    mean_predicted: float
    observed_rate: float

    def to_json(self) -> dict[str, Any]:
        return {
            "bin": self.bin,
            "lower": round(self.lower, 6),
            "upper": round(self.upper, 6),
            "n": self.n,
            "mean_predicted": round(self.mean_predicted, 6),
            "observed_rate": round(self.observed_rate, 6),
        }


def reliability_table(p: np.ndarray, y: np.ndarray, bins: int = 10) -> list[ReliabilityRow]:
    """Equal-count bins of the calibrated score (fixed order: sorted score, stable sort)."""
    if len(p) == 0:
        return []
    order = np.argsort(p, kind="stable")
    rows: list[ReliabilityRow] = []
    for b, idx in enumerate(np.array_split(order, min(bins, len(p)))):
        if len(idx) == 0:
            continue
        rows.append(
            ReliabilityRow(
                bin=b,
                lower=float(p[idx].min()),
                upper=float(p[idx].max()),
                n=len(idx),
                mean_predicted=float(np.mean(p[idx])),
                observed_rate=float(np.mean(y[idx])),
            )
        )
    return rows
