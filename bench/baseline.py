"""The plain, ungoverned notebook pipeline: the bar a governed refresh is measured against.

What a data scientist would write over the sample's files without personagov: a Polars scan
of each source with the jurisdiction filter pushed down, per-customer aggregates of
transactions, bureau, loans, app events and wallets joined onto the customers, KMeans with
k = 6 fitted on a 50k sample and assigned to every customer. No contracts, no quarantine,
no consent, no pseudonyms, no model selection, no gates, no signing, no audit.

This knows the sample's source and column names on purpose: it is a benchmark baseline, not
engine code. `run_baseline(data_dir, jurisdiction)` returns (customers, labels, seconds).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.cluster import KMeans

K = 6
SAMPLE = 50_000
SEED = 7


def _scan(data: Path, name: str, jurisdiction: str) -> pl.LazyFrame:
    return pl.scan_parquet(data / f"{name}.parquet").filter(pl.col("jurisdiction") == jurisdiction)


def baseline_features(data: Path, jurisdiction: str) -> pl.DataFrame:
    """One row per customer of the jurisdiction, numeric features, nulls filled with 0."""
    crm = _scan(data, "crm", jurisdiction).select(
        "customer_id",
        pl.col("annual_income").fill_null(0.0),
        (pl.lit(2026) - pl.col("date_of_birth").dt.year()).alias("age"),
    )
    tx = (
        _scan(data, "transactions", jurisdiction)
        .group_by("customer_id")
        .agg(
            pl.len().alias("tx_count"),
            pl.col("amount").sum().alias("tx_amount"),
            (pl.col("direction") == "credit").mean().alias("tx_credit_share"),
            (pl.col("channel") == "crypto").mean().alias("tx_crypto_share"),
            pl.col("ts").max().alias("tx_last"),
        )
        .with_columns(pl.col("tx_last").dt.epoch("d").alias("tx_last"))
    )
    bureau = _scan(data, "bureau", jurisdiction).select(
        "customer_id", "credit_score", "utilisation", "delinquencies_24m"
    )
    loans = (
        _scan(data, "loans", jurisdiction)
        .group_by("customer_id")
        .agg(
            pl.len().alias("loan_count"),
            pl.col("amount").sum().alias("loan_amount"),
            pl.col("days_past_due").max().alias("loan_dpd_max"),
        )
    )
    app = (
        _scan(data, "app_events", jurisdiction)
        .group_by("customer_id")
        .agg(pl.col("logins").sum(), pl.col("sessions").sum(), pl.col("features_used").mean())
    )
    wallets = (
        _scan(data, "wallets", jurisdiction)
        .group_by("customer_id")
        .agg(pl.col("trading_volume_90d").sum(), pl.col("asset_count").sum())
    )
    frame = crm
    for other in (tx, bureau, loans, app, wallets):
        frame = frame.join(other, on="customer_id", how="left")
    return frame.fill_null(0).fill_nan(0).sort("customer_id").collect()


def fit_assign(frame: pl.DataFrame) -> np.ndarray:
    x = frame.drop("customer_id").to_numpy().astype(np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    z = (x - mean) / np.where(std > 1e-12, std, 1.0)
    rng = np.random.default_rng(SEED)
    idx = rng.choice(len(z), size=min(SAMPLE, len(z)), replace=False)
    model = KMeans(n_clusters=K, n_init=8, random_state=SEED).fit(z[idx])
    return np.asarray(model.predict(z))


def run_baseline(data: Path, jurisdiction: str) -> tuple[int, np.ndarray, dict[str, float]]:
    t = time.perf_counter()
    frame = baseline_features(data, jurisdiction)
    t_feat = time.perf_counter() - t
    t = time.perf_counter()
    labels = fit_assign(frame)
    t_fit = time.perf_counter() - t
    return frame.height, labels, {"features": t_feat, "kmeans": t_fit}
