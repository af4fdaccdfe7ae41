"""The predictive strategy: calibrated risk bands from a supervised model of a declared outcome.

    fit_candidates(x, y, columns, spec, seed) -> PredictiveFit
    segment_predictive(features, spec, k_min, seed, governed) -> Segmentation

Clustering treats a risk question as a shape question; this strategy answers it directly.
Two candidates (scaled logistic regression, histogram gradient boosting with the declared
monotone constraints) are compared by stratified K-fold cross-validated ROC AUC on a
deterministic sample of labelled customers (fixed seeds, stable order); the winner's
out-of-fold scores are calibrated (cross-fitted isotonic or Platt) and cut into risk bands
(declared cut points or quantiles). Band 0 is the safest; persona ids follow risk order.
Optionally each band is crossed with a small behavioural k-means. The model card
(engine.segment.modelcard) goes into the version and is signed with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score, cohen_kappa_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from engine.config import PredictiveSpec, SegmentationSpec
from engine.enforce import GovernedFrames
from engine.errors import BadInputError
from engine.features import KEY, FeatureFrame
from engine.segment.bands import (
    band_cuts,
    band_names,
    bands_of,
    bands_with_merges,
    cross_behaviour,
    merge_small_bands,
)
from engine.segment.calibration import Calibrator, cross_fitted_calibration
from engine.segment.model import GateResult, Segmentation
from engine.segment.outcome import outcome_labels
from engine.segment.stability import jaccard_per_cluster
from engine.segment.strategies import feature_matrix, sample_indices, threads_for


@dataclass
class PredictiveFit:
    columns: list[str]
    chosen: str
    cv_auc: dict[str, float]
    fold_auc: dict[str, list[float]]
    params: dict[str, dict[str, Any]]
    folds: np.ndarray  # fold id of each fitting row
    y: np.ndarray  # label of each fitting row
    oof_raw: np.ndarray  # chosen model's out-of-fold probability per fitting row
    oof: np.ndarray  # the same, calibrated (cross-fitted)
    model: Any  # chosen candidate refitted on every fitting row
    calibrator: Calibrator
    coefficients: dict[str, float] = field(default_factory=dict)
    oofs: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    estimators: dict[str, Any] = field(default_factory=dict, repr=False)

    def ranked(self) -> list[str]:
        """Candidates by out-of-fold AUC, best first; ties go to the earlier (simpler) one."""
        order = list(self.estimators)
        return sorted(order, key=lambda n: (-self.cv_auc[n], order.index(n)))

    def select(self, name: str, x: np.ndarray, spec: PredictiveSpec) -> PredictiveFit:
        """Make `name` the chosen model: refit it on every fitting row and calibrate."""
        with threads_for(len(x)):
            model = clone(self.estimators[name]).fit(x, self.y)
        calibrated, calibrator = cross_fitted_calibration(
            self.oofs[name], self.y, self.folds, spec.calibration
        )
        coefficients: dict[str, float] = {}
        if name == "logistic_regression":
            coefs = model.steps[-1][1].coef_[0]
            coefficients = {c: round(float(v), 6) for c, v in zip(self.columns, coefs, strict=True)}
        return replace(
            self,
            chosen=name,
            model=model,
            oof_raw=self.oofs[name],
            oof=calibrated,
            calibrator=calibrator,
            coefficients=coefficients,
        )

    def score(self, x: np.ndarray) -> np.ndarray:
        with threads_for(len(x)):
            raw = np.asarray(self.model.predict_proba(x)[:, 1], dtype=np.float64)
        return self.calibrator(raw)


def candidates(columns: list[str], spec: PredictiveSpec, seed: int) -> dict[str, Any]:
    """Unfitted candidates; the logistic one first (it wins ties: the simpler model)."""
    logistic = make_pipeline(
        SimpleImputer(strategy="median"),
        StandardScaler(),
        LogisticRegression(C=1.0, max_iter=2000),
    )
    boosting = HistGradientBoostingClassifier(
        # Shallow, slow and heavily regularised: risk bands must survive a bootstrap refit,
        # and deeper boosting on a few thousand labels mostly fits noise.
        learning_rate=0.05,
        max_iter=150,
        max_leaf_nodes=8,
        min_samples_leaf=100,
        l2_regularization=5.0,
        # Early stopping would hold out a random split; fixed iterations keep the fit a
        # function of the data and the seed alone.
        early_stopping=False,
        monotonic_cst=[int(spec.monotone.get(c, 0)) for c in columns],
        random_state=seed,
    )
    return {"logistic_regression": logistic, "hist_gradient_boosting": boosting}


def _params(name: str, est: Any) -> dict[str, Any]:
    inner = est.steps[-1][1] if isinstance(est, Pipeline) else est
    keep = (
        ("C", "max_iter", "solver")
        if name == "logistic_regression"
        else (
            "learning_rate",
            "max_iter",
            "max_leaf_nodes",
            "min_samples_leaf",
            "l2_regularization",
            "monotonic_cst",
            "random_state",
        )
    )
    p = inner.get_params()
    return {k: p[k] for k in keep if k in p}


def fit_candidates(
    x: np.ndarray, y: np.ndarray, columns: list[str], spec: PredictiveSpec, seed: int
) -> PredictiveFit:
    """Cross-validate both candidates; the fit starts on the better by out-of-fold AUC
    (`select` switches to another candidate)."""
    events = int(y.sum())
    if events < spec.cv_folds or len(y) - events < spec.cv_folds:
        raise BadInputError(
            f"predictive strategy: {events} positive and {len(y) - events} negative labelled "
            f"customers; {spec.cv_folds}-fold cross-validation needs at least "
            f"{spec.cv_folds} of each"
        )
    folds = np.empty(len(y), dtype=np.int64)
    skf = StratifiedKFold(n_splits=spec.cv_folds, shuffle=True, random_state=seed)
    for f, (_, test) in enumerate(skf.split(x, y)):
        folds[test] = f
    cands = candidates(columns, spec, seed)
    oofs: dict[str, np.ndarray] = {}
    cv_auc: dict[str, float] = {}
    fold_auc: dict[str, list[float]] = {}
    with threads_for(len(x)):
        for name, est in cands.items():
            oof = np.empty(len(y), dtype=np.float64)
            per: list[float] = []
            for f in range(spec.cv_folds):
                test = folds == f
                model = clone(est).fit(x[~test], y[~test])
                oof[test] = model.predict_proba(x[test])[:, 1]
                per.append(round(float(roc_auc_score(y[test], oof[test])), 6))
            oofs[name], fold_auc[name] = oof, per
            cv_auc[name] = round(float(roc_auc_score(y, oof)), 6)
    fit = PredictiveFit(
        columns=columns,
        chosen="",
        cv_auc=cv_auc,
        fold_auc=fold_auc,
        params={n: _params(n, e) for n, e in cands.items()},
        folds=folds,
        y=y,
        oof_raw=np.empty(0),
        oof=np.empty(0),
        model=None,
        calibrator=lambda s: s,
        oofs=oofs,
        estimators=cands,
    )
    return fit.select(fit.ranked()[0], x, spec)


def _band_gates(
    labels: np.ndarray, y: np.ndarray, k: int, merges: int, auc: float, min_auc: float
) -> list[GateResult]:
    from engine.segment.calibration import wilson_interval

    counts = np.bincount(labels)
    smallest = int(counts.min()) if len(counts) else 0
    gates = [
        GateResult(
            "min_size",
            smallest >= k and len(counts) >= 2,
            float(smallest),
            float(k),
            f"{len(counts)} persona(s); {merges} small band(s) merged into a neighbour",
        ),
        GateResult(
            "oof_auc", auc >= min_auc, round(auc, 6), min_auc, "out-of-fold ROC AUC of the model"
        ),
    ]
    known = ~np.isnan(y)
    lab, yy = labels[known], y[known]
    rates: list[tuple[int, int]] = [
        (int(yy[lab == b].sum()), int((lab == b).sum())) for b in range(len(counts))
    ]
    # A band "inverts" when its rate is below the band before it by more than sampling noise:
    # the safer band's rate lies above the riskier band's Wilson upper bound.
    inversions = [
        b
        for b in range(1, len(rates))
        if rates[b][1]
        and rates[b - 1][1]
        and rates[b - 1][0] / rates[b - 1][1] > wilson_interval(*rates[b])[1]
    ]
    shown = ", ".join(f"{e / n:.4f}" if n else "-" for e, n in rates)
    gates.append(
        GateResult(
            "monotone_rates",
            not inversions,
            float(len(inversions)),
            0.0,
            f"outcome rate by risk band (safest first): {shown}",
        )
    )
    return gates


def _stability(
    fit: PredictiveFit,
    x: np.ndarray,
    y: np.ndarray,
    reference: np.ndarray,
    spec: SegmentationSpec,
    seed: int,
) -> tuple[list[GateResult], dict[int, float]]:
    """Bootstrap refits of the chosen model; each refit's scores on the fitting sample are cut
    at the reference bands' cumulative shares, then compared with the reference bands."""
    runs, threshold = spec.bootstrap_runs, spec.stability_threshold
    shares = np.cumsum(np.bincount(reference))[:-1] / len(reference)
    if len(shares):
        # The reference is the full model's own banding at the same shares: refits are
        # compared with the model they perturb, not with the out-of-fold scores (which
        # already carry fold-to-fold noise).
        with threads_for(len(x)):
            own = fit.model.predict_proba(x)[:, 1]
        reference = bands_of(own, np.quantile(own, shares))
    rng = np.random.default_rng(seed)
    base = candidates(fit.columns, _pspec(spec), seed)[fit.chosen]
    aris: list[float] = []
    kappas: list[float] = []
    jaccards: list[np.ndarray] = []
    for b in range(runs):
        boot = np.sort(rng.integers(0, len(y), size=len(y)))
        if len(np.unique(y[boot])) < 2:
            continue
        with threads_for(len(boot)):
            model = clone(base).set_params(**_seed_param(fit.chosen, seed + 1 + b))
            raw = model.fit(x[boot], y[boot]).predict_proba(x)[:, 1]
        refit = bands_of(raw, np.quantile(raw, shares)) if len(shares) else np.zeros(len(raw))
        aris.append(float(adjusted_rand_score(reference, refit)))
        kappas.append(float(cohen_kappa_score(reference, refit, weights="quadratic")))
        jaccards.append(jaccard_per_cluster(reference, refit))
    if not aris:
        return [GateResult("stability", False, 0.0, threshold, "no bootstrap refits")], {}
    kappa, ari = float(np.mean(kappas)), float(np.mean(aris))
    per = np.mean(np.vstack(jaccards), axis=0)
    per_persona = {int(i): round(float(j), 6) for i, j in enumerate(per)}
    # Bands are ordered cuts of one score: a refit that moves a customer to the next band
    # is a partial disagreement, not a different cluster. Quadratic-weighted kappa is the
    # agreement statistic for ordinal ratings; adjusted Rand and per-band Jaccard (which
    # treat a one-band move like a jump across the scale) are recorded beside it.
    return [
        GateResult(
            "stability",
            kappa >= threshold,
            round(kappa, 6),
            threshold,
            f"mean quadratic-weighted kappa of risk bands over {len(kappas)} bootstrap refits "
            f"(adjusted Rand {ari:.3f}, smallest per-band Jaccard {float(per.min()):.3f})",
        )
    ], per_persona


def _seed_param(chosen: str, seed: int) -> dict[str, Any]:
    return {"random_state": seed} if chosen == "hist_gradient_boosting" else {}


def _pspec(spec: SegmentationSpec) -> PredictiveSpec:
    if spec.predictive is None:
        raise BadInputError("strategy 'predictive' needs a [segmentation.predictive] table")
    return spec.predictive


def segment_predictive(
    features: FeatureFrame,
    spec: SegmentationSpec,
    k_min: int,
    seed: int,
    governed: GovernedFrames | None = None,
) -> Segmentation:
    from engine.segment.modelcard import model_card
    from engine.segment.profiles import build_profiles

    pspec = _pspec(spec)
    excluded = {*pspec.exclude_features, pspec.outcome}
    columns = [c for c in features.features if c not in excluded]
    if not columns:
        raise BadInputError("predictive strategy: no features left after exclusions")
    x = feature_matrix(features, columns)
    y_all = outcome_labels(features, governed, pspec.outcome)
    labelled = np.flatnonzero(~np.isnan(y_all))
    fit_rows = labelled[sample_indices(len(labelled), spec.sample_size, seed)]
    xs, ys = x[fit_rows], y_all[fit_rows]
    fit = fit_candidates(xs, ys, columns, pspec, seed)
    # As for k-means' k: the best candidate by AUC whose bands survive bootstrap refits; if
    # none does, the most stable one (and the stability gate says so).
    tried: dict[str, float] = {}
    best: tuple[float, PredictiveFit, list[GateResult], dict[int, float]] | None = None
    for name in fit.ranked():
        cand = fit.select(name, xs, pspec)
        ref = bands_with_merges(cand.oof, pspec, k_min)
        stab, per_band = _stability(cand, xs, ys, ref, spec, seed)
        tried[name] = stab[0].value
        if best is None or stab[0].value > best[0]:
            best = (stab[0].value, cand, stab, per_band)
        if all(g.passed for g in stab):
            best = (stab[0].value, cand, stab, per_band)
            break
    assert best is not None
    _, fit, stab, per_band = best
    choice = (
        "best out-of-fold AUC with stable bands"
        if all(g.passed for g in stab)
        else "no candidate stable: the most stable one"
    )

    scores = fit.score(x)
    scores[fit_rows] = fit.oof  # fitting rows keep their honest, out-of-fold scores
    cuts = band_cuts(pspec, fit.oof)
    bands, merges = merge_small_bands(bands_of(scores, cuts), k_min)
    n_bands = int(bands.max()) + 1
    labels, persona_band = bands, np.arange(n_bands)
    if pspec.behaviour_clusters > 1:
        labels, persona_band = cross_behaviour(
            bands, x, pspec.behaviour_clusters, k_min, spec.sample_size, seed
        )
    gates = _band_gates(labels, y_all, k_min, merges, fit.cv_auc[fit.chosen], pspec.min_auc)
    gates += stab
    per_persona = {int(p): per_band.get(int(b), 0.0) for p, b in enumerate(persona_band)}

    profiles, suppressed, pop = build_profiles(features, labels, k_min, governed, per_persona)
    names = band_names([p.name for p in profiles], persona_band, n_bands)
    profiles = [replace(p, name=n) for p, n in zip(profiles, names, strict=True)]
    card = model_card(fit, pspec, y_all, scores, labels, persona_band, names, cuts, seed)
    assignments = (
        pl.DataFrame({KEY: features.frame[KEY], "persona_id": pl.Series(labels, dtype=pl.Int64)})
        .join(
            pl.DataFrame(
                {"persona_id": list(range(len(names))), "persona_name": names},
                schema={"persona_id": pl.Int64, "persona_name": pl.String},
            ),
            on="persona_id",
            how="left",
        )
        .sort(KEY)
    )
    params = {
        "strategy": "predictive",
        "outcome": pspec.outcome,
        "model": fit.chosen,
        "model_choice": choice,
        "candidate_stability": {k: round(v, 6) for k, v in sorted(tried.items())},
        "cv_auc": fit.cv_auc,
        "cv_folds": pspec.cv_folds,
        "calibration": pspec.calibration,
        "band_cuts": [round(float(c), 6) for c in cuts],
        "behaviour_clusters": pspec.behaviour_clusters,
        "fitting_rows": len(fit_rows),
        "labelled_customers": len(labelled),
        "seed": seed,
        "sample_size": spec.sample_size,
        "k_anonymity": k_min,
        "bootstrap_runs": spec.bootstrap_runs,
        "stability_threshold": spec.stability_threshold,
        "features": columns,
        "excluded_features": sorted(excluded),
        "unavailable_features": dict(features.unavailable),
        "merged_small_bands": merges,
        "as_of": features.as_of.isoformat() if features.as_of else None,
        "persona_auc": card["persona_auc"],
        "risk_ratio": card["risk_ratio"],
    }
    return Segmentation(
        strategy="predictive",
        params=params,
        assignments=assignments,
        personas=profiles,
        gates=gates,
        suppressed=suppressed,
        population=pop.as_dict(),
        artifacts={"model_card.json": card},
    )
