"""The model card of a predictive version: what was fitted, how well, and per persona rates.

Written as `model_card.json` in the version directory, so the signed statement covers it.
Everything in it is an aggregate (no token, no row): features, parameters, seed, candidate
cross-validated AUCs, Brier scores, a reliability table, the risk-band cut points and each
persona's observed outcome rate with a Wilson 95 % interval.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import roc_auc_score

from engine.config import PredictiveSpec
from engine.segment.calibration import brier, reliability_table, wilson_interval

if TYPE_CHECKING:
    from engine.segment.predictive import PredictiveFit

FORMAT = "pgov.model_card/1"


def _r(x: float) -> float:
    return round(float(x), 6)


def persona_rates(
    labels: np.ndarray, y: np.ndarray, scores: np.ndarray, names: list[str]
) -> list[dict[str, Any]]:
    known = ~np.isnan(y)
    out: list[dict[str, Any]] = []
    for pid, name in enumerate(names):
        members = labels == pid
        lab = members & known
        n, events = int(lab.sum()), int(y[lab].sum())
        lo, hi = wilson_interval(events, n)
        out.append(
            {
                "persona_id": pid,
                "name": name,
                "customers": int(members.sum()),
                "labelled": n,
                "events": events,
                "rate": _r(events / n) if n else None,
                "wilson_95": [_r(lo), _r(hi)],
                "mean_score": _r(float(np.mean(scores[members]))) if members.any() else None,
            }
        )
    return out


def persona_auc(labels: np.ndarray, y: np.ndarray, rates: list[dict[str, Any]]) -> float:
    """ROC AUC of the persona's observed rate used as every member's score: how well the
    personas themselves separate the outcome (the figure the issue compares)."""
    known = ~np.isnan(y)
    table = np.array([r["rate"] if r["rate"] is not None else 0.0 for r in rates])
    yy = y[known]
    if len(np.unique(yy)) < 2:
        return 0.5
    return _r(roc_auc_score(yy, table[labels[known]]))


def model_card(
    fit: PredictiveFit,
    spec: PredictiveSpec,
    y_all: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    persona_band: np.ndarray,
    names: list[str],
    cuts: np.ndarray,
    seed: int,
) -> dict[str, Any]:
    fit_y = y_all[~np.isnan(y_all)]
    rates = persona_rates(labels, y_all, scores, names)
    p_auc = persona_auc(labels, y_all, rates)
    best = max(fit.cv_auc.values())
    band_rates = _band_rates(labels, persona_band, y_all)
    safest, riskiest = band_rates[0], band_rates[-1]
    ratio = _r(riskiest / safest) if safest > 0 else None
    sign_checks = {
        f: {"declared": d, "coefficient": fit.coefficients.get(f)}
        for f, d in sorted(spec.monotone.items())
        if f in fit.coefficients
    }
    ys = fit.y
    return {
        "format": FORMAT,
        "outcome": spec.outcome,
        "features": list(fit.columns),
        "excluded_features": sorted(spec.exclude_features),
        "monotone": dict(sorted(spec.monotone.items())),
        "seed": seed,
        "cv_folds": spec.cv_folds,
        "fitting_rows": len(fit.oof),
        "fitting_events": int(ys.sum()),
        "labelled_customers": len(fit_y),
        "base_rate": _r(float(fit_y.mean())) if len(fit_y) else None,
        "candidates": {
            name: {
                "cv_auc": fit.cv_auc[name],
                "fold_auc": fit.fold_auc[name],
                "parameters": fit.params[name],
            }
            for name in sorted(fit.cv_auc)
        },
        "chosen": fit.chosen,
        "oof_auc": fit.cv_auc[fit.chosen],
        "best_single_model_auc": _r(best),
        "calibration": spec.calibration,
        "calibrated_oof_auc": _r(roc_auc_score(ys, fit.oof)) if len(np.unique(ys)) > 1 else None,
        "brier_raw": _r(brier(fit.oof_raw, ys)),
        "brier_calibrated": _r(brier(fit.oof, ys)),
        "reliability": [row.to_json() for row in reliability_table(fit.oof, ys)],
        "band_cuts": [_r(c) for c in cuts],
        "band_rates": [_r(r) for r in band_rates],
        "risk_ratio": ratio,
        "persona_auc": p_auc,
        "persona_auc_gap": _r(best - p_auc),
        "logistic_sign_checks": sign_checks,
        "personas": rates,
    }


def _band_rates(labels: np.ndarray, persona_band: np.ndarray, y: np.ndarray) -> list[float]:
    known = ~np.isnan(y)
    band = persona_band[labels]
    out: list[float] = []
    for b in range(int(persona_band.max()) + 1):
        sel = known & (band == b)
        out.append(float(y[sel].mean()) if sel.any() else 0.0)
    return out
