"""Rule-based segmentation: a declared score banded by fixed cut points x a declared value
feature bracketed by quantiles learnt on the sample."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np

from engine.errors import BadInputError
from engine.features import FeatureFrame
from engine.segment.base import BaseStrategy, repeat_rows, scale_columns


@dataclass
class RuleBased(BaseStrategy):
    """Risk band by credit score x value bracket by value proxy.

    Score thresholds are fixed (FICO-style cut points); value brackets are quantiles of
    the value proxy learnt at fit on the sample. When a column is unavailable under the
    purpose, that axis collapses to a single band.
    """

    name: str = "rules"
    # Declared feature names ([segmentation] score_feature / value_feature in pgov.toml).
    score_column: str = ""
    value_column: str = ""
    # Below 580: high risk; 580-669: medium; 670 and above: low.
    score_thresholds: tuple[float, ...] = (580.0, 670.0)
    value_quantiles: tuple[float, ...] = (1 / 3, 2 / 3)
    used_: list[str] = field(default_factory=list)
    value_cuts_: np.ndarray | None = field(default=None, repr=False)

    def columns(self, features: FeatureFrame) -> list[str]:
        cols = [c for c in (self.score_column, self.value_column) if c and c in features.features]
        if not cols:
            raise BadInputError(
                "rules strategy: expected segmentation.score_feature "
                f"('{self.score_column}') or segmentation.value_feature "
                f"('{self.value_column}') among the available features; found: "
                f"{', '.join(features.features) or 'none'}"
            )
        self.used_ = cols
        return cols

    def fit_matrix(self, x: np.ndarray, weights: np.ndarray | None = None) -> Self:
        s = repeat_rows(*self._sample(x, weights))
        self.mean_, self.scale_ = scale_columns(s)
        self.value_cuts_ = None
        if self.value_column in self.used_:
            col = s[:, self.used_.index(self.value_column)]
            self.value_cuts_ = np.quantile(col, self.value_quantiles)
        return self

    def predict_matrix(self, x: np.ndarray) -> np.ndarray:
        if self.mean_ is None:
            raise RuntimeError("RuleBased is not fitted")
        n_value = len(self.value_quantiles) + 1
        risk = np.zeros(len(x), dtype=np.int64)
        if self.score_column in self.used_:
            score = x[:, self.used_.index(self.score_column)]
            # 0 = low risk (high score) ... so band order follows the score descending.
            risk = len(self.score_thresholds) - np.searchsorted(
                np.asarray(self.score_thresholds), score, side="right"
            )
        value = np.zeros(len(x), dtype=np.int64)
        if self.value_cuts_ is not None:
            value = np.searchsorted(
                self.value_cuts_, x[:, self.used_.index(self.value_column)], side="right"
            )
        return (risk * n_value + value).astype(np.int64)

    def refit_clone(self, seed: int) -> RuleBased:
        return RuleBased(
            sample_size=self.sample_size,
            seed=seed,
            score_column=self.score_column,
            value_column=self.value_column,
            score_thresholds=self.score_thresholds,
            value_quantiles=self.value_quantiles,
            used_=list(self.used_),
        )

    def params(self) -> dict[str, Any]:
        return {
            "strategy": self.name,
            "columns": list(self.used_),
            "score_thresholds": list(self.score_thresholds),
            "value_quantiles": [round(q, 6) for q in self.value_quantiles],
            "value_cuts": [round(float(c), 6) for c in self.value_cuts_]
            if self.value_cuts_ is not None
            else [],
            "sample_size": self.sample_size,
            "seed": self.seed,
        }
