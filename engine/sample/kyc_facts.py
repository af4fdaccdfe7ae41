"""Synthetic KYC facts for benchmarks and tests: no real person behind any row.

Vectorised (numpy + Polars); tokens look like kyc-domain tokens but are made up.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

COUNTRIES = ["DE", "FR", "ES", "IT", "NL", "GB", "US", "SG", "BR", "NG", "IR", "VN"]
COUNTRY_P = [0.3, 0.15, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.02, 0.01, 0.02]
SECTORS = ["retail", "it_services", "construction", "money_services", "gambling", "real_estate"]
EMPLOYMENT = ["salaried", "gig", "self_employed", "business_owner", "retired", "student"]
PERSONAS = ["steady salaried saver", "high-value low-risk trader", "high-volume crypto trader"]


def _cat(
    rng: np.random.Generator, values: list[str], n: int, p: list[float] | None = None
) -> pl.Series:
    idx = rng.choice(len(values), size=n, p=p)
    return pl.Series(values).gather(idx)


def synthetic_facts(n: int, seed: int = 7, jurisdiction: str = "EU-DE") -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    has_wallet = rng.random(n) < 0.2
    persona_idx = rng.integers(0, len(PERSONAS), n)
    frame = pl.DataFrame(
        {
            "_i": np.arange(n),
            "country": _cat(rng, COUNTRIES, n, COUNTRY_P),
            "customer_type": _cat(rng, ["retail", "smb"], n, [0.85, 0.15]),
            "employment_type": _cat(rng, EMPLOYMENT, n),
            "_sector": _cat(rng, SECTORS, n),
            "tenure_days": rng.integers(0, 3650, n),
            "screened": rng.random(n) > 0.01,
            "_pep": rng.random(n) < 0.01,
            "_sanctions": rng.random(n) < 0.001,
            "_adverse": rng.random(n) < 0.02,
            "has_crypto_wallet": has_wallet,
            "wallet_count": has_wallet.astype(np.int64),
            "wallet_volume_90d": np.where(has_wallet, rng.lognormal(9, 2, n), 0.0),
            "txn_count": rng.integers(0, 500, n),
            "txn_total_amount": rng.lognormal(10, 1.5, n),
            "max_txn_amount": rng.lognormal(7, 1.5, n),
            "cash_share": rng.beta(1, 5, n),
            "crypto_share": np.where(has_wallet, rng.beta(2, 5, n), 0.0),
            "persona_id": persona_idx,
            "persona_name": pl.Series(PERSONAS).gather(persona_idx),
        }
    )
    unscreened_null = {
        name: pl.when(pl.col("screened")).then(pl.col(src)).otherwise(None).alias(name)
        for name, src in (
            ("pep", "_pep"),
            ("sanctions_hit", "_sanctions"),
            ("adverse_media", "_adverse"),
        )
    }
    return frame.select(
        pl.format("kyc1.{}", pl.col("_i").cast(pl.String).str.zfill(10)).alias("customer_id"),
        pl.lit(jurisdiction).alias("jurisdiction"),
        "country",
        "customer_type",
        "employment_type",
        pl.when(pl.col("customer_type") == "smb").then(pl.col("_sector")).alias("business_sector"),
        "tenure_days",
        "screened",
        *unscreened_null.values(),
        "has_crypto_wallet",
        "wallet_count",
        "wallet_volume_90d",
        "txn_count",
        "txn_total_amount",
        "max_txn_amount",
        "cash_share",
        "crypto_share",
        "persona_id",
        "persona_name",
    )


FACT_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.String(),
    "jurisdiction": pl.String(),
    "country": pl.String(),
    "customer_type": pl.String(),
    "employment_type": pl.String(),
    "business_sector": pl.String(),
    "tenure_days": pl.Int64(),
    "screened": pl.Boolean(),
    "pep": pl.Boolean(),
    "sanctions_hit": pl.Boolean(),
    "adverse_media": pl.Boolean(),
    "has_crypto_wallet": pl.Boolean(),
    "wallet_count": pl.Int64(),
    "wallet_volume_90d": pl.Float64(),
    "txn_count": pl.Int64(),
    "txn_total_amount": pl.Float64(),
    "max_txn_amount": pl.Float64(),
    "cash_share": pl.Float64(),
    "crypto_share": pl.Float64(),
    "persona_id": pl.Int64(),
    "persona_name": pl.String(),
}

# A screened, established, low-activity retail customer: matches no factor and no floor.
LOW_RISK: dict[str, object] = {
    "jurisdiction": "EU-DE",
    "country": "DE",
    "customer_type": "retail",
    "employment_type": "salaried",
    "business_sector": None,
    "tenure_days": 2000,
    "screened": True,
    "pep": False,
    "sanctions_hit": False,
    "adverse_media": False,
    "has_crypto_wallet": False,
    "wallet_count": 0,
    "wallet_volume_90d": 0.0,
    "txn_count": 10,
    "txn_total_amount": 5000.0,
    "max_txn_amount": 900.0,
    "cash_share": 0.05,
    "crypto_share": 0.0,
    "persona_id": 0,
    "persona_name": "steady salaried saver",
}


def facts_from_rows(rows: Mapping[str, Mapping[str, object]]) -> pl.DataFrame:
    """A facts frame from {token: {fact: value}}, every unnamed fact at its low-risk value."""
    records = [{**LOW_RISK, **changes, "customer_id": token} for token, changes in rows.items()]
    return pl.DataFrame(records, schema=FACT_SCHEMA).sort("customer_id")
