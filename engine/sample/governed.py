"""Synthetic governed frames with planted personas, for tests and benchmarks.

Shaped like `enforce` output: `customer_id` is an opaque token in every source, direct
identifiers are absent. Generated with numpy/Polars column operations (no per-row Python).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from engine.enforce import GovernedFrames

# Planted groups: (name, share). Parameters per group are indexed in the same order.
GROUPS: tuple[str, ...] = (
    "salaried saver",
    "volatile microbusiness",
    "crypto trader",
    "stressed borrower",
)


def _tokens(n: int, rng: np.random.Generator) -> pl.Series:
    # Random permutation so that token order carries no information about the group.
    perm = rng.permutation(n)
    return ("tk" + pl.Series(perm, dtype=pl.Int64).cast(pl.String).str.zfill(9)).alias(
        "customer_id"
    )


def synthetic_governed(
    n_customers: int,
    *,
    seed: int = 0,
    as_of: date = date(2026, 10, 31),
    txns_per_customer: int = 24,
    app_months: int = 12,
    noise: bool = False,
    purpose: str = "credit_risk_segmentation",
) -> tuple[GovernedFrames, pl.DataFrame]:
    """Governed frames for `n_customers` plus the truth table (customer_id, group).

    noise=True draws every customer from one population: no structure to find.
    """
    rng = np.random.default_rng(seed)
    n = n_customers
    tokens = _tokens(n, rng)
    group = np.zeros(n, dtype=np.int64) if noise else rng.integers(0, len(GROUPS), size=n)

    def per_group(values: tuple[float, ...]) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)[group]

    smb = per_group((0.05, 0.9, 0.1, 0.1)) > rng.random(n)
    employment = np.where(
        smb,
        "business_owner",
        np.asarray(["salaried", "self_employed", "gig", "gig"])[group],
    )
    crm = pl.DataFrame(
        {
            "customer_id": tokens,
            "customer_type": np.where(smb, "smb", "retail"),
            "employment_type": employment,
            "signup_date": pl.Series(
                np.datetime64(as_of - timedelta(days=30), "D")
                - rng.integers(0, 3000, size=n).astype("timedelta64[D]")
            ),
            "age_band": np.asarray(["25-34", "45-54", "25-34", "35-44"])[group],
        }
    ).with_columns(pl.col("signup_date").cast(pl.Date), jurisdiction=pl.lit("EU-DE"))

    score_mu = per_group((770.0, 660.0, 710.0, 560.0))
    score = np.clip(rng.normal(score_mu, 30.0), 300, 850).round().astype(np.int64)
    util = np.clip(rng.normal(per_group((0.15, 0.5, 0.3, 0.9)), 0.08), 0.0, 2.0)
    delinq = rng.poisson(per_group((0.05, 0.5, 0.2, 3.0)))
    bureau = (
        pl.DataFrame(
            {
                "customer_id": tokens,
                "credit_score": score,
                "utilisation": util,
                "delinquencies_24m": delinq,
            }
        )
        .with_columns(report_date=pl.lit(as_of))
        .filter(pl.Series(rng.random(n) < 0.97))
    )  # a few customers have no bureau record

    # Transactions: a per-customer monthly scale; volatile groups get a noisy, seasonal one.
    m = txns_per_customer
    cust = np.repeat(np.arange(n), m)
    month = rng.integers(0, 12, size=n * m)
    vol = per_group((0.1, 1.2, 0.5, 0.3))[cust]
    season = np.where(
        (group[cust] == 1) & np.isin(month, (10, 11)), 4.0, 1.0
    )  # year-end peak for businesses
    base = per_group((300.0, 2000.0, 800.0, 150.0))[cust]
    amount = base * season * rng.lognormal(0.0, vol)
    credit_p = per_group((0.5, 0.5, 0.5, 0.4))[cust]
    direction = np.where(rng.random(n * m) < credit_p, "credit", "debit")
    month_start = np.datetime64(datetime(as_of.year, as_of.month, 1), "D")
    day = rng.integers(0, 28, size=n * m)
    ts = (month_start.astype("datetime64[M]") - (11 - month).astype("timedelta64[M]")).astype(
        "datetime64[D]"
    ) + day.astype("timedelta64[D]")
    # Dormant-ish stressed borrowers: drop their recent activity.
    keep = ~((group[cust] == 3) & (month >= 9) & (rng.random(n * m) < 0.8))
    transactions = pl.DataFrame(
        {
            "customer_id": tokens.gather(cust[keep]),
            "ts": pl.Series(ts[keep].astype("datetime64[us]")),
            "amount": amount[keep].round(2),
            "direction": direction[keep],
        }
    ).with_columns(pl.col("ts").clip(upper_bound=datetime(as_of.year, as_of.month, as_of.day)))

    has_loan = rng.random(n) < per_group((0.3, 0.9, 0.2, 0.95))
    lc = np.flatnonzero(has_loan)
    loans = pl.DataFrame(
        {
            "customer_id": tokens.gather(lc),
            "amount": rng.lognormal(np.log(per_group((8000.0, 40000.0, 5000.0, 1500.0))[lc]), 0.4),
            "tenure_months": per_group((36.0, 48.0, 12.0, 6.0))[lc].astype(np.int64),
            "rate": per_group((0.05, 0.09, 0.1, 0.25))[lc],
            "status": np.where(
                rng.random(lc.size) < per_group((0.01, 0.05, 0.03, 0.25))[lc],
                "defaulted",
                "active",
            ),
            "days_past_due": rng.poisson(per_group((0.2, 3.0, 1.0, 40.0))[lc]),
            "fees_paid": per_group((50.0, 400.0, 30.0, 120.0))[lc],
        }
    ).with_columns(default_flag=pl.col("status") == "defaulted")

    months = app_months
    ac = np.repeat(np.arange(n), months)
    am = np.tile(np.arange(months), n)
    app_events = pl.DataFrame(
        {
            "customer_id": tokens.gather(ac),
            "month": pl.Series(
                (
                    month_start.astype("datetime64[M]") - (months - 1 - am).astype("timedelta64[M]")
                ).astype("datetime64[D]")
            ).cast(pl.Date),
            "logins": rng.poisson(per_group((8.0, 15.0, 60.0, 4.0))[ac]),
            "sessions": rng.poisson(per_group((10.0, 20.0, 90.0, 5.0))[ac]),
            "features_used": rng.poisson(per_group((3.0, 6.0, 9.0, 2.0))[ac]),
            "support_contacts": rng.poisson(per_group((0.1, 0.4, 0.2, 1.5))[ac]),
        }
    )

    has_wallet = rng.random(n) < per_group((0.05, 0.05, 0.98, 0.05))
    wc = np.flatnonzero(has_wallet)
    wallets = pl.DataFrame(
        {
            "customer_id": tokens.gather(wc),
            "trading_volume_90d": rng.lognormal(
                np.log(per_group((200.0, 500.0, 60000.0, 100.0))[wc]), 0.6
            ),
            "asset_count": rng.poisson(per_group((1.0, 1.0, 12.0, 1.0))[wc]),
            "active_days_90d": np.clip(rng.poisson(per_group((3.0, 3.0, 60.0, 2.0))[wc]), 0, 90),
        }
    )
    outcomes = pl.DataFrame(
        {
            "customer_id": tokens,
            "converted": rng.random(n) < per_group((0.2, 0.35, 0.5, 0.1)),
            "defaulted": rng.random(n) < per_group((0.01, 0.06, 0.03, 0.3)),
        }
    )
    frames = {
        "crm": crm,
        "bureau": bureau,
        "transactions": transactions,
        "loans": loans,
        "app_events": app_events,
        "wallets": wallets,
        "outcomes": outcomes,
    }
    governed = GovernedFrames(
        jurisdiction="EU-DE",
        purpose=purpose,
        frames=frames,
        accounting={},
        plan_digest="0" * 64,
        subject_domain="kyc",
        # As a plan would have it: the date of birth reached the frames as an age band.
        column_actions={
            "crm.date_of_birth": {
                "action": "generalise",
                "input": "date_of_birth",
                "output": "age_band",
                "reason": "generalisation",
            }
        },
    )
    truth = pl.DataFrame({"customer_id": tokens, "group": group}).sort("customer_id")
    return governed, truth
