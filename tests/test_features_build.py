"""build_features: one row per governed crm customer, graceful degradation, neutral fills."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import polars as pl
import pytest

from engine.enforce import GovernedFrames
from engine.errors import BadInputError
from engine.features import FeatureFrame, build_features
from engine.sample.declaration import sample_config
from engine.sample.governed import synthetic_governed

AS_OF = date(2026, 10, 31)


@pytest.fixture(scope="module")
def governed() -> GovernedFrames:
    g, _ = synthetic_governed(600, seed=3)
    return g


@pytest.fixture(scope="module")
def features(governed: GovernedFrames) -> FeatureFrame:
    return build_features(governed, AS_OF, sample_config())


def test_one_row_per_crm_customer_sorted_by_token(
    governed: GovernedFrames, features: FeatureFrame
) -> None:
    frame = features.frame
    assert frame.height == governed.frames["crm"].height
    assert frame["customer_id"].is_unique().all()
    assert frame["customer_id"].to_list() == sorted(governed.frames["crm"]["customer_id"])


def test_every_listed_feature_is_numeric_and_complete(features: FeatureFrame) -> None:
    assert "credit_score" in features.features and "crypto_volume_log" in features.features
    for f in features.features:
        assert features.frame.schema[f] == pl.Float64
        assert features.frame[f].null_count() == 0
        assert features.frame[f].is_finite().all()
    # The synthetic crm carries no business size or income: only those descriptors are absent.
    assert set(features.unavailable) == {"business_size", "income_band"}
    assert features.as_of == AS_OF


def test_customers_without_a_source_get_neutral_values_and_an_indicator(
    governed: GovernedFrames, features: FeatureFrame
) -> None:
    no_wallet = features.frame.filter(pl.col("has_wallets") == 0)
    assert no_wallet.height > 0
    assert (no_wallet["crypto_volume_log"] == 0.0).all()
    no_bureau = features.frame.filter(pl.col("has_bureau") == 0)
    assert no_bureau.height > 0  # the fixture leaves ~3% without a bureau record
    median = governed.frames["bureau"]["credit_score"].cast(pl.Float64).median()
    assert (no_bureau["credit_score"] == median).all()
    assert (no_bureau["credit_band"] == "no_record").all()


def test_descriptors_are_not_clustered(features: FeatureFrame) -> None:
    assert {"customer_type", "employment_type", "age_band", "credit_band"} <= set(
        features.descriptors
    )
    assert not set(features.descriptors) & set(features.features)


def test_dropped_source_and_columns_degrade_gracefully(governed: GovernedFrames) -> None:
    frames = dict(governed.frames)
    del frames["bureau"]  # e.g. a marketing purpose without bureau data
    frames["transactions"] = frames["transactions"].drop("direction")
    frames["wallets"] = frames["wallets"].drop("asset_count")
    ff = build_features(replace(governed, frames=frames), AS_OF, sample_config())
    for gone in ("credit_score", "utilisation", "cashflow_cv", "seasonality", "crypto_assets_log"):
        assert gone not in ff.features
        assert gone not in ff.frame.columns
        assert gone in ff.unavailable
    assert "bureau" in ff.unavailable["credit_score"]
    assert "credit_band" not in ff.descriptors
    assert {"recency_days", "monetary_log", "crypto_volume_log"} <= set(ff.features)
    assert ff.frame.height == governed.frames["crm"].height


def test_age_band_replaces_a_kept_date_of_birth(governed: GovernedFrames) -> None:
    crm = (
        governed.frames["crm"]
        .drop("age_band")
        .with_columns(date_of_birth=pl.lit(date(1990, 12, 1)), annual_income=pl.lit(52_000.0))
    )
    ff = build_features(
        replace(governed, frames={**governed.frames, "crm": crm}, column_actions={}),
        AS_OF,
        sample_config(),
    )
    assert "date_of_birth" not in ff.frame.columns and "annual_income" not in ff.frame.columns
    assert set(ff.frame["age_band"].unique()) == {"35-44"}  # 35 years old on AS_OF
    assert set(ff.frame["income_band"].unique()) == {"40-75k"}


def test_activity_after_as_of_is_ignored(governed: GovernedFrames) -> None:
    earlier = build_features(governed, date(2026, 6, 30), sample_config())
    later = build_features(governed, AS_OF, sample_config())
    assert earlier.frame["frequency_log"].sum() < later.frame["frequency_log"].sum()


def test_no_crm_is_bad_input(governed: GovernedFrames) -> None:
    frames = {k: v for k, v in governed.frames.items() if k != "crm"}
    with pytest.raises(BadInputError):
        build_features(replace(governed, frames=frames), AS_OF, sample_config())


def test_transaction_features_by_hand() -> None:
    """One customer with a known month, one with only pre-window activity (single pass)."""
    from datetime import datetime
    from math import log1p, sqrt

    crm = pl.DataFrame({"customer_id": ["a", "b", "c"]})
    tx = pl.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b", "a"],
            "ts": [
                datetime(2026, 10, 5),
                datetime(2026, 10, 20),
                datetime(2024, 1, 3),  # before the window: recency only
                datetime(2025, 6, 1),  # before the window
                datetime(2026, 11, 2),  # after as_of: ignored
            ],
            "amount": [100.0, 40.0, 50.0, 75.0, 999.0],
            "direction": ["credit", "debit", "credit", "credit", "credit"],
        }
    )
    governed = GovernedFrames(
        jurisdiction="EU-DE",
        purpose="marketing_segmentation",
        frames={"crm": crm, "transactions": tx},
        accounting={},
        plan_digest="0" * 64,
        subject_domain="kyc",
    )
    ff = build_features(governed, AS_OF, sample_config())
    rows = {r["customer_id"]: r for r in ff.frame.iter_rows(named=True)}
    a, b, c = rows["a"], rows["b"], rows["c"]
    w = 2 / (2 + 12)
    mean_net, mean_credit = 60 / 12, 100 / 12
    std_net = sqrt(60**2 / 12 - mean_net**2)
    assert a["recency_days"] == 11.0
    assert a["frequency_log"] == pytest.approx(log1p(2 / 12))
    assert a["monetary_log"] == pytest.approx(log1p(140 / 12))
    assert a["cashflow_cv"] == pytest.approx(std_net / (mean_credit + 1) * w)
    assert a["seasonality"] == pytest.approx(1 + (100 / mean_credit - 1) * w)
    assert a["value_proxy_log"] == pytest.approx(log1p(140 * 0.002))
    assert b["recency_days"] == 517.0 and b["has_transactions"] == 1
    assert (b["frequency_log"], b["cashflow_cv"], b["seasonality"]) == (0.0, 0.0, 1.0)
    assert b["value_proxy_log"] == 0.0
    assert c["recency_days"] == 730.0 and c["has_transactions"] == 0
