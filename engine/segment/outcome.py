"""The declared outcome a predictive strategy learns: one 0/1 label per customer (or none).

    outcome_labels(features, governed, outcome) -> np.ndarray of float (1.0, 0.0, NaN)

`outcome` names either a column of the FeatureFrame (a declared feature with role "outcome")
or `source.column` in the governed frames (a boolean column; a customer's label is 1 when any
of their rows is true, 0 when all are false, unknown when they have no row). Nothing here
knows a source or column name: the workspace declares which one is the outcome.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from engine.enforce import GovernedFrames
from engine.errors import BadInputError
from engine.features import KEY, FeatureFrame


def outcome_labels(
    features: FeatureFrame, governed: GovernedFrames | None, outcome: str
) -> np.ndarray:
    """Labels aligned with `features.frame` rows; NaN where the outcome is not observed."""
    frame = features.frame
    if outcome in frame.columns:
        col = frame.get_column(outcome).cast(pl.Float64)
        return col.fill_null(float("nan")).to_numpy().astype(np.float64)
    source, _, column = outcome.partition(".")
    frames = governed.frames if governed is not None else {}
    if not column or source not in frames:
        raise BadInputError(
            f"predictive strategy: outcome '{outcome}' is neither a declared outcome feature "
            "nor a governed source column (did the policy drop it for this purpose?)"
        )
    src = frames[source]
    if column not in src.columns or KEY not in src.columns:
        raise BadInputError(
            f"predictive strategy: outcome column '{outcome}' is not available under this "
            "purpose (dropped by policy or not declared)"
        )
    per_customer = (
        src.lazy()
        .select(KEY, pl.col(column).cast(pl.Boolean).cast(pl.Float64).alias("_label"))
        .group_by(KEY)
        .agg(pl.col("_label").max())
        .collect()
    )
    joined = frame.select(KEY).join(per_customer, on=KEY, how="left", maintain_order="left")
    return joined.get_column("_label").fill_null(float("nan")).to_numpy().astype(np.float64)
