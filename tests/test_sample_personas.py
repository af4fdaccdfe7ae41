"""The planted personas are single, well-separated modes: what clustering must recover.

A persona that is a mixture (half with a loan, half without; a few traders without a
wallet) splits in two under k-means and fails the per-persona bootstrap Jaccard gate; two
personas that overlap merge. These tests pin the properties that prevent both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from engine.enforce import GovernedFrames
from engine.features import build_features
from engine.sample import GROUND_TRUTH, SampleSummary
from engine.sample.declaration import sample_config
from engine.workspace import Workspace

SOURCES = ("crm", "bureau", "loans", "transactions", "app_events", "wallets")


def _truth(sample_workspace: Path) -> pl.DataFrame:
    return pl.read_parquet(sample_workspace / "data" / GROUND_TRUTH)


def _read(ws: Workspace, name: str) -> pl.DataFrame:
    return pl.read_parquet(ws.source_path(name))


def test_trader_share_and_wallets(sample_workspace: Path, sample_ws: Workspace) -> None:
    truth = _truth(sample_workspace)
    traders = truth.filter(pl.col("persona") == "high_net_worth_trader")
    assert 0.08 <= traders.height / truth.height <= 0.12
    holders = _read(sample_ws, "wallets")["customer_id"].unique()
    assert traders["customer_id"].is_in(holders.implode()).mean() >= 0.95  # type: ignore[operator]


def test_borrowers_always_hold_a_loan_of_their_product(
    sample_workspace: Path, sample_ws: Workspace
) -> None:
    truth = _truth(sample_workspace)
    loans = _read(sample_ws, "loans").join(truth, on="customer_id")
    minors = _read(sample_ws, "crm").filter(pl.col("employment_type") == "student")
    adults = truth.filter(~pl.col("customer_id").is_in(minors["customer_id"].implode()))
    borrowers = adults.filter(pl.col("persona") != "cautious_saver")
    holders = loans["customer_id"].unique().implode()
    # One mode per persona: no zero-loan satellite that k-means would split off.
    assert borrowers["customer_id"].is_in(holders).mean() >= 0.99  # type: ignore[operator]
    products = loans.group_by("persona").agg(
        (pl.col("product") == "working_capital").mean().alias("wc"),
        (pl.col("product") == "microbusiness").mean().alias("micro"),
    )
    share = {r["persona"]: r for r in products.iter_rows(named=True)}
    assert share["growth_microbusiness"]["wc"] >= 0.8
    assert share["seasonal_microbusiness"]["micro"] >= 0.99


def test_seasonal_trade_is_concentrated_and_growth_rises(
    sample_workspace: Path, sample_ws: Workspace, sample_summary: SampleSummary
) -> None:
    truth = _truth(sample_workspace)
    tx = (
        _read(sample_ws, "transactions")
        .filter(pl.col("ts") < pl.lit(sample_summary.as_of).cast(pl.Datetime("us")))
        .join(truth, on="customer_id")
    )
    monthly = tx.group_by("persona", "customer_id", pl.col("ts").dt.month().alias("m")).len()
    top3 = (
        monthly.group_by("persona", "customer_id")
        .agg((pl.col("len").top_k(3).sum() / pl.col("len").sum()).alias("top3"))
        .group_by("persona")
        .agg(pl.col("top3").median())
    )
    top = dict(top3.iter_rows())
    # A three-month season, against the growth businesses it used to be confused with
    # (flat activity puts about a quarter of a year in any three months).
    assert top["seasonal_microbusiness"] >= 0.6, top
    assert top["growth_microbusiness"] <= 0.45, top
    growth = tx.filter(pl.col("persona") == "growth_microbusiness")
    half = pl.lit(sample_summary.as_of).cast(pl.Datetime("us")) - pl.duration(days=182)
    late = growth.filter(pl.col("ts") >= half).height
    assert late >= 1.3 * (growth.height - late)  # activity keeps rising


def test_kmeans_on_features_recovers_each_persona_as_one_cluster(
    sample_workspace: Path, sample_ws: Workspace, sample_summary: SampleSummary
) -> None:
    frames = {s: _read(sample_ws, s) for s in SOURCES}
    governed = GovernedFrames(
        jurisdiction="ALL",
        purpose="credit_risk_segmentation",
        frames=frames,
        accounting={},
        plan_digest="0" * 64,
        subject_domain="raw",
    )
    features = build_features(governed, sample_summary.as_of, sample_config())
    joined = features.frame.join(_truth(sample_workspace), on="customer_id")
    x = joined.select(features.features).to_numpy()
    z = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
    persona = joined["persona"].to_numpy()
    # Several starts, as the bootstrap gate refits: a mixture persona lands in a different
    # local optimum from one start to the next; single modes give the same answer each time.
    for seed in (0, 1, 2):
        labels = KMeans(6, n_init=4, random_state=seed).fit_predict(z)
        assert adjusted_rand_score(persona, labels) >= 0.9, seed
        for name in np.unique(persona):
            mine = persona == name
            # Best Jaccard over clusters: a persona split in two or merged with another fails.
            best = max(
                (mine & (labels == k)).sum() / (mine | (labels == k)).sum() for k in range(6)
            )
            assert best >= 0.8, (seed, name, round(float(best), 3))
