"""KYC facts: one row per customer (kyc-domain token) holding everything a rule may name.

Built only from governed frames, the FeatureFrame and the Segmentation, joined on
`customer_id`. Two rules shape it:

- Missing screening is not "clear". A customer with no screening row, or whose pep or
  sanctions flag is null, gets `screened = False` (flags stay null); the ruleset turns that
  into a reason code and a floor, never into a low tier.
- A fact that cannot be built (its source was withheld by policy) is absent, so a rule
  naming it fails to compile and the refresh is refused, rather than silently not matching.
"""

from __future__ import annotations

from datetime import date

import polars as pl
import structlog

from engine.enforce import GovernedFrames
from engine.errors import BadInputError
from engine.features import FeatureFrame
from engine.segment.model import Segmentation

log = structlog.get_logger(__name__)

KEY = "customer_id"
# CRM columns that describe the customer for risk purposes (EBA GL 2021/02 customer and
# geography factors). Whatever the plan kept of these is passed through unchanged.
CRM_FACTS: tuple[str, ...] = (
    "jurisdiction",
    "country",
    "customer_type",
    "employment_type",
    "occupation",
    "business_sector",
    "business_size",
    "annual_income",
)
SCREENING_FACTS: tuple[str, ...] = ("pep", "sanctions_hit", "adverse_media")


def build_facts(
    features: FeatureFrame,
    governed: GovernedFrames,
    segmentation: Segmentation,
    as_of: date,
) -> pl.DataFrame:
    """The facts frame the ruleset's conditions are compiled against, sorted by token."""
    crm = governed.frames.get("crm")
    if crm is None or KEY not in crm.columns:
        raise BadInputError("kyc: governed frames hold no crm customers; nothing to tier")
    base = _crm_facts(crm, governed.jurisdiction, as_of)
    parts = [
        _screening_facts(governed.frames.get("screening")),
        _wallet_facts(governed.frames.get("wallets")),
        _transaction_facts(governed.frames.get("transactions")),
    ]
    facts = base.lazy()
    for part in parts:
        if part is not None:
            facts = facts.join(part, on=KEY, how="left")
    facts = _fill_absence(facts, parts)
    features_lf = _feature_facts(features, taken=set(facts.collect_schema().names()))
    if features_lf is not None:
        facts = facts.join(features_lf, on=KEY, how="left")
    assignments = segmentation.assignments.select(
        [c for c in (KEY, "persona_id", "persona_name") if c in segmentation.assignments.columns]
    )
    if assignments.width > 1:
        facts = facts.join(assignments.lazy().unique(KEY, keep="first"), on=KEY, how="left")
    return facts.sort(KEY).collect()


def _crm_facts(crm: pl.DataFrame, jurisdiction: str, as_of: date) -> pl.DataFrame:
    cols = [c for c in CRM_FACTS if c in crm.columns]
    exprs: list[pl.Expr] = [pl.col(KEY), *(pl.col(c) for c in cols)]
    if "jurisdiction" not in cols:
        exprs.append(pl.lit(jurisdiction).alias("jurisdiction"))
    if "signup_date" in crm.columns and crm.schema["signup_date"] == pl.Date:
        exprs.append(
            (pl.lit(as_of) - pl.col("signup_date"))
            .dt.total_days()
            .cast(pl.Int64)
            .alias("tenure_days")
        )
    # One row per customer even if the source held duplicates (contract should prevent it).
    return crm.select(exprs).unique(KEY, keep="first", maintain_order=False)


def _screening_facts(screening: pl.DataFrame | None) -> pl.LazyFrame | None:
    if screening is None:
        log.warning("kyc_facts_no_screening_source", effect="every customer unscreened")
        return pl.LazyFrame(
            schema={KEY: pl.String, **{c: pl.Boolean for c in SCREENING_FACTS}}
        ).with_columns(pl.lit(True).alias("_screened"))
    present = [c for c in SCREENING_FACTS if c in screening.columns]
    agg: list[pl.Expr] = [pl.col(c).cast(pl.Boolean).any(ignore_nulls=True) for c in present]
    agg += [pl.lit(None, pl.Boolean).alias(c) for c in SCREENING_FACTS if c not in present]
    if "screened_at" in screening.columns and screening.schema["screened_at"] == pl.Date:
        agg.append(pl.col("screened_at").max())
    # any() over only-null values is False in Polars; a customer whose flag is null on every
    # row was not screened for that flag, so restore the null.
    nulls = [pl.col(c).is_not_null().any().alias(f"_has_{c}") for c in present]
    lf = screening.lazy().group_by(KEY).agg([*agg, *nulls])
    lf = lf.with_columns(
        [pl.when(pl.col(f"_has_{c}")).then(pl.col(c)).otherwise(None).alias(c) for c in present]
    ).drop([f"_has_{c}" for c in present])
    return lf.with_columns(pl.lit(True).alias("_screened"))


def _wallet_facts(wallets: pl.DataFrame | None) -> pl.LazyFrame | None:
    if wallets is None:
        return None
    vol = (
        ((pl.col("trading_volume_90d").fill_null(0.0) * 100).round().cast(pl.Int64).sum() / 100)
        if "trading_volume_90d" in wallets.columns
        else pl.lit(None, pl.Float64)
    )
    return (
        wallets.lazy()
        .group_by(KEY)
        .agg(pl.len().alias("wallet_count"), vol.alias("wallet_volume_90d"))
        .with_columns(pl.lit(True).alias("has_crypto_wallet"))
    )


def _transaction_facts(txns: pl.DataFrame | None) -> pl.LazyFrame | None:
    if txns is None or "amount" not in txns.columns:
        return None
    amount = pl.col("amount").cast(pl.Float64).fill_null(0.0)
    # Sums in integer cents: exact, so a parallel group_by cannot change the last bits of a
    # customer's total (and with it a share near a rule threshold) between identical runs.
    cents = (amount * 100).round().cast(pl.Int64)
    channel = pl.col("channel") if "channel" in txns.columns else pl.lit(None, pl.String)
    total = cents.sum() / 100.0
    return (
        txns.lazy()
        .group_by(KEY)
        .agg(
            pl.len().alias("txn_count"),
            total.alias("txn_total_amount"),
            amount.max().alias("max_txn_amount"),
            (cents.filter(channel == "cash").sum() / 100.0).alias("_cash"),
            (cents.filter(channel == "crypto").sum() / 100.0).alias("_crypto"),
        )
        .with_columns(
            pl.when(pl.col("txn_total_amount") > 0)
            .then(pl.col("_cash") / pl.col("txn_total_amount"))
            .otherwise(0.0)
            .alias("cash_share"),
            pl.when(pl.col("txn_total_amount") > 0)
            .then(pl.col("_crypto") / pl.col("txn_total_amount"))
            .otherwise(0.0)
            .alias("crypto_share"),
        )
        .drop("_cash", "_crypto")
    )


def _fill_absence(lf: pl.LazyFrame, parts: list[pl.LazyFrame | None]) -> pl.LazyFrame:
    """A customer absent from a source the plan kept: no wallet is a fact (zero), no
    screening row is "unscreened" (never "clear")."""
    names = set(lf.collect_schema().names())
    fills: list[pl.Expr] = []
    if "_screened" in names:
        # A screening row whose pep or sanctions flag is null did not screen this customer
        # for it: unscreened, the same as no row.
        fills.append(
            (
                pl.col("_screened").fill_null(False)
                & pl.col("pep").is_not_null()
                & pl.col("sanctions_hit").is_not_null()
            ).alias("screened")
        )
    if "has_crypto_wallet" in names:
        fills += [
            pl.col("has_crypto_wallet").fill_null(False),
            pl.col("wallet_count").fill_null(0),
            pl.col("wallet_volume_90d").fill_null(0.0),
        ]
    if "txn_count" in names:
        fills += [
            pl.col(c).fill_null(0.0 if c != "txn_count" else 0)
            for c in (
                "txn_count",
                "txn_total_amount",
                "max_txn_amount",
                "cash_share",
                "crypto_share",
            )
        ]
    out = lf.with_columns(fills) if fills else lf
    return out.drop("_screened") if "_screened" in names else out


def _feature_facts(features: FeatureFrame, taken: set[str]) -> pl.LazyFrame | None:
    frame = features.frame
    if KEY not in frame.columns:
        return None
    cols = [c for c in frame.columns if c != KEY and c not in taken]
    if not cols:
        return None
    return frame.lazy().select(KEY, *cols).unique(KEY, keep="first")
