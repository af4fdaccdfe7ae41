"""pgov.toml's [segmentation] table: the strategy, its model-selection gates, the
supervised (predictive) strategy, value KPIs and per-purpose overrides.

Split from engine/config.py (which re-exports every name) so each module owns one noun.
"""

from __future__ import annotations

import itertools
from typing import Literal

from pydantic import Field, model_validator

from engine.conditions import Condition
from engine.destinations import _Strict


class PredictiveSpec(_Strict):
    """The supervised strategy: risk bands from a calibrated model of a declared outcome."""

    # The declared outcome: a feature with role "outcome", or "source.column" of a boolean
    # column in the governed frames (a customer's label is 1 if any of their rows is true).
    outcome: str
    # Calibrated-probability cut points (ascending, in (0, 1)); empty = band_quantiles.
    band_cuts: list[float] = Field(default_factory=list)
    # Quantiles of the calibrated score that separate the risk bands (ascending, in (0, 1)).
    band_quantiles: list[float] = Field(default_factory=lambda: [0.4, 0.7, 0.85])
    cv_folds: int = Field(default=5, ge=2, le=20)
    # Gate: the chosen model's out-of-fold ROC AUC must reach this.
    min_auc: float = Field(default=0.6, ge=0.5, le=1.0)
    calibration: Literal["isotonic", "sigmoid"] = "isotonic"
    # 0: personas are the risk bands; n > 1: each band is crossed with an n-cluster k-means of
    # the behavioural features (cells below k are merged back into their band's largest cell).
    behaviour_clusters: int = Field(default=0, ge=0, le=6)
    # feature -> +1 (a higher value means a higher outcome rate) or -1: monotone constraints
    # for the gradient-boosting candidate and a sign check for the logistic one.
    monotone: dict[str, Literal[-1, 1]] = Field(default_factory=dict)
    # Features never given to the model (e.g. ones that encode the outcome itself).
    exclude_features: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cuts(self) -> PredictiveSpec:
        for name in ("band_cuts", "band_quantiles"):
            cuts = getattr(self, name)
            if any(b <= a for a, b in itertools.pairwise(cuts)):
                raise ValueError(f"{name} must be strictly ascending")
            if any(not 0.0 < q < 1.0 for q in cuts):
                raise ValueError(f"{name} must lie strictly between 0 and 1")
        if not self.band_cuts and not self.band_quantiles:
            raise ValueError("declare band_cuts or band_quantiles (at least two bands)")
        return self


class ValueSpec(_Strict):
    """Customer lifetime value from a declared loan-like source, in integer cents.

    Per row: interest (amount x annual rate x tenure / 12) + fees - loss (amount x
    loss_given_default when `loss_when` holds); per customer: the sum. Columns are named by
    the workspace: nothing in the engine knows the sample's names.
    """

    source: str
    amount: str
    rate: str | None = None
    tenure_months: str | None = None
    fees: str | None = None
    loss_when: Condition | None = None
    loss_given_default: float = Field(default=0.6, ge=0.0, le=1.0)
    # Optional applications: a source with one row per application and a boolean column
    # saying whether it was approved -> application and approval rates per persona.
    applications_source: str | None = None
    approved_column: str | None = None


class PurposeSegmentation(_Strict):
    """Per-purpose override of the strategy (e.g. predictive for credit risk only)."""

    strategy: Literal["kmeans", "gmm", "rules", "predictive"]
    predictive: PredictiveSpec | None = None


class SegmentationSpec(_Strict):
    strategy: Literal["kmeans", "gmm", "rules", "predictive"] = "kmeans"
    k: int | None = Field(default=None, ge=2)
    k_min: int = Field(default=4, ge=2)
    k_max: int = Field(default=8, ge=2)
    sample_size: int = Field(default=50_000, ge=100)
    bootstrap_runs: int = Field(default=5, ge=1)
    stability_threshold: float = Field(default=0.75, ge=0.0, le=1.0)
    min_silhouette: float = Field(default=0.1, ge=-1.0, le=1.0)
    seed: int = 7
    # KMeans restarts per fit (more: steadier centroids, proportionally slower fits).
    n_init: int = Field(default=8, ge=1, le=100)
    # rules strategy: credit-score cut points (ascending; FICO-style 580 / 670 by default)
    # and value-proxy quantiles learnt on the sample (ascending, inside (0, 1)).
    score_thresholds: list[float] = Field(default_factory=lambda: [580.0, 670.0])
    # rules strategy: the declared cluster features it bands (score) and brackets (value).
    score_feature: str | None = None
    value_feature: str | None = None
    value_quantiles: list[float] = Field(default_factory=lambda: [1 / 3, 2 / 3])
    predictive: PredictiveSpec | None = None
    # Value KPIs (CLTV distribution, application/approval rates) per persona, if declared.
    value: ValueSpec | None = None
    # purpose -> strategy override: [segmentation.purposes.credit_risk_segmentation]
    purposes: dict[str, PurposeSegmentation] = Field(default_factory=dict)

    def for_purpose(self, purpose: str) -> SegmentationSpec:
        """The spec a refresh of `purpose` uses: the purpose's override, if declared."""
        over = self.purposes.get(purpose)
        if over is None:
            return self
        return self.model_copy(
            update={
                "strategy": over.strategy,
                "predictive": over.predictive or self.predictive,
                "purposes": {},
            }
        )

    @model_validator(mode="after")
    def _ordered(self) -> SegmentationSpec:
        if self.k_min > self.k_max:
            raise ValueError(f"k_min ({self.k_min}) must not exceed k_max ({self.k_max})")
        for name in ("score_thresholds", "value_quantiles"):
            cuts = getattr(self, name)
            if any(b <= a for a, b in itertools.pairwise(cuts)):
                raise ValueError(f"{name} must be strictly ascending")
        if any(not 0.0 < q < 1.0 for q in self.value_quantiles):
            raise ValueError("value_quantiles must lie strictly between 0 and 1")
        if self.strategy == "predictive" and self.predictive is None:
            raise ValueError("strategy 'predictive' needs a [segmentation.predictive] table")
        for purpose, over in self.purposes.items():
            if over.strategy == "predictive" and (over.predictive or self.predictive) is None:
                raise ValueError(
                    f"purposes.{purpose}: strategy 'predictive' needs a predictive table "
                    "(its outcome)"
                )
        return self
