"""Gaussian mixture: fitted on a deterministic sample, then `predict` on every row.

k is fixed or chosen in [k_min, k_max] by lowest BIC among stable candidates
(engine.segment.base); the stability checks run on the selection rows of the sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Self

import numpy as np
from sklearn.mixture import GaussianMixture

from engine.segment.base import BaseStrategy, repeat_rows, scale_columns, selection_rows
from engine.segment.threads import threads_for


@dataclass
class GaussianMixtureStrategy(BaseStrategy):
    """Gaussian mixture on a deterministic sample, then `predict` on every row.

    k is chosen in [k_min, k_max] by BIC on the sample unless fixed.
    """

    name: str = "gmm"
    k: int | None = None
    k_min: int = 4
    k_max: int = 8
    covariance_type: str = "full"
    # Zero-inflated features (no loan, no wallet) make covariances singular without it.
    reg_covar: float = 1e-3
    model_: GaussianMixture | None = field(default=None, repr=False)
    k_: int = 0
    scores_: dict[int, float] = field(default_factory=dict)

    def fit_matrix(self, x: np.ndarray, weights: np.ndarray | None = None) -> Self:
        # No sample weights in GaussianMixture: fit the resample's repeated rows.
        xs = repeat_rows(*self._sample(x, weights))
        self.mean_, self.scale_ = scale_columns(xs)
        z = self.transform(xs)
        models: dict[int, GaussianMixture] = {}
        self.scores_ = {}
        ks = self._k_range(self.k, self.k_min, self.k_max, len(z))
        for k in ks:
            with threads_for(len(z)):
                model = GaussianMixture(
                    n_components=k,
                    covariance_type=self.covariance_type,
                    reg_covar=self.reg_covar,
                    random_state=self.seed,
                    max_iter=200,
                ).fit(z)
                bic = float(model.bic(z))
            self.scores_[k] = bic
            models[k] = model
        order = sorted(ks, key=lambda k: (self.scores_[k], k))  # lowest BIC first
        labels: dict[int, np.ndarray] = {}
        # Stability is checked on the selection rows, as the gates check it.
        rows = selection_rows(len(z), self.seed) if len(order) > 1 else np.arange(len(z))
        if len(order) > 1 and self.stability_runs > 0:
            with threads_for(len(z)):
                for k in order[: self.stability_candidates]:
                    labels[k] = np.asarray(models[k].predict(z[rows]), dtype=np.int64)
        self.k_ = self._choose(order, labels, xs[rows])
        self.model_ = models[self.k_]
        return self

    def predict_matrix(self, x: np.ndarray) -> np.ndarray:
        if self.model_ is None:
            raise RuntimeError("GaussianMixtureStrategy is not fitted")
        with threads_for(len(x)):
            return np.asarray(self.model_.predict(self.transform(x)), dtype=np.int64)

    def refit_clone(self, seed: int) -> GaussianMixtureStrategy:
        return self._clone_at(self.k_, seed)

    def _clone_at(self, k: int, seed: int) -> GaussianMixtureStrategy:
        return replace(
            self,
            seed=seed,
            k=k,
            stability_runs=0,
            model_=None,
            mean_=None,
            scale_=None,
            scores_={},
            stability_={},
            boot_labels_=[],
        )

    def params(self) -> dict[str, Any]:
        return {
            "strategy": self.name,
            "k": self.k_,
            "k_fixed": self.k,
            "k_range": [self.k_min, self.k_max],
            "bic": {str(k): round(v, 3) for k, v in sorted(self.scores_.items())},
            **self._selection_params(),
            "covariance_type": self.covariance_type,
            "reg_covar": self.reg_covar,
            "sample_size": self.sample_size,
            "seed": self.seed,
        }
