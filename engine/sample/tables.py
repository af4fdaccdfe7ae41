"""Clean source tables for the sample: one Polars frame per declared source.

Rows are built grouped by jurisdiction and numbered in that order, so every table comes out
sorted by (jurisdiction, key) by construction; child rows are generated with `np.repeat`
over the customer index. No per-row Python loops: every loop here runs over personas,
regions or columns.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from engine.sample import personas as P
from engine.sample.draws import (
    DAY_US,
    MONTH_US,
    RES,
    SEASONAL,
    US_REGION,
    Customers,
    categorical,
    cdf_table,
    days_before,
    draw,
    draw_codes,
    normal,
    serial_ids,
)
from engine.sample.geo import REGIONS
from engine.sample.people import _digits, _perm, identities


def customers(
    rng: np.random.Generator, n_customers: int, as_of: date
) -> tuple[pl.DataFrame, Customers]:
    shares = np.array([r.share for r in REGIONS])
    region = np.sort(rng.choice(len(REGIONS), size=n_customers, p=shares))
    idnum = _perm(np.arange(n_customers), 7_919_993, 123_457, 10**9)
    order = np.lexsort((idnum, region))  # sorted by id within each region block
    idnum, number = idnum[order], order.astype(np.int64)
    starts = np.searchsorted(region, np.arange(len(REGIONS)))
    rank = np.arange(n_customers) - starts[region]
    persona = rng.choice(len(P.PERSONAS), size=n_customers, p=P.SHARES)
    # Every persona in every jurisdiction: the first rows of each region cycle through them.
    persona = np.where(rank < len(P.PERSONAS), rank % len(P.PERSONAS), persona)
    minor = (persona == 4) & (rng.random(n_customers) < 0.04) & (rank >= len(P.PERSONAS))
    age_mean = np.array([45.0, 42.0, 29.0, 52.0, 50.0, 35.0])
    age = np.clip(age_mean[persona] + 10 * rng.standard_normal(n_customers), 18, 90)
    age = np.where(minor, rng.uniform(13.05, 17.9, n_customers), age)
    dob_days = (age * 365.25).astype(np.int64)
    birth_year = as_of.year - age.astype(np.int64)
    max_back = np.minimum(3650, ((age - 13) * 365).astype(np.int64))
    signup_back = rng.integers(30, np.maximum(max_back, 31))
    old = (~minor) & (rng.random(n_customers) < 0.03)  # retention: inactive for 7+ years
    last_back = np.where(
        old, rng.integers(2630, 3400, n_customers), rng.integers(0, 200, n_customers)
    )
    signup_back = np.where(old, np.maximum(signup_back, last_back + 30), signup_back)

    ids = pl.select(pl.concat_str(pl.lit("CUS"), pl.lit(_digits(idnum, 9))))["literal"]
    jur = pl.Series([r.jurisdiction for r in REGIONS]).gather(region)
    country = pl.Series([r.country for r in REGIONS]).gather(region)
    people = identities(number, region, birth_year, rng)
    emp = categorical(rng, persona, [p.employment for p in P.PERSONAS])
    emp = pl.select(pl.when(pl.lit(minor)).then(pl.lit("student")).otherwise(pl.lit(emp)))[
        "literal"
    ]
    occupation = categorical(
        rng,
        persona,
        [
            {"shop owner": 1, "tour operator": 1, "farmer": 1, "cafe owner": 1},
            {"software founder": 1, "logistics owner": 1, "clinic owner": 1, "builder": 1},
            {"courier": 1, "ride-hail driver": 1, "delivery rider": 1, "freelance designer": 1},
            {"investment banker": 1, "surgeon": 1, "company director": 1, "trader": 1},
            {"teacher": 1, "civil servant": 1, "pensioner": 1, "accountant": 1},
            {"retail assistant": 1, "call-centre agent": 1, "warehouse operative": 1, "cleaner": 1},
        ],
    )
    smb = np.isin(persona, [0, 1])
    sector = categorical(
        rng,
        persona,
        [
            {"tourism": 1, "agriculture": 1, "hospitality": 1},
            {"software": 1, "logistics": 1, "healthcare": 1, "construction": 1},
            {"none": 1},
            {"none": 1},
            {"none": 1},
            {"none": 1},
        ],
    )
    size = categorical(
        rng,
        persona,
        [{"micro": 0.8, "small": 0.2}, {"micro": 0.3, "small": 0.55, "medium": 0.15}]
        + [{"micro": 1.0}] * 4,
    )
    income = np.round(np.exp(normal(rng, P.table("income_mu"), np.full(6, 0.35), persona)), 2)
    basis = rng.choice(3, size=n_customers, p=[0.55, 0.3, 0.15])
    consent = (basis == 0) & (rng.random(n_customers) < 0.85)
    withdrawn = (basis == 0) & ~consent & (rng.random(n_customers) < 0.4)
    consent_unknown = rng.random(n_customers) < 0.02
    consent_back = rng.uniform(0, 1, n_customers) * signup_back
    consent_at = np.datetime64(as_of, "us") - (consent_back * DAY_US).astype("timedelta64[us]")
    us = US_REGION[region]
    ca = region == [r.jurisdiction for r in REGIONS].index("US-CA")
    u = rng.random((6, n_customers))
    religion = categorical(
        rng,
        np.zeros(n_customers, dtype=np.int64),
        [{"christian": 4, "muslim": 2, "jewish": 1, "hindu": 1, "buddhist": 1, "none": 3}],
    )
    health = categorical(
        rng,
        np.zeros(n_customers, dtype=np.int64),
        [{"diabetes": 1, "pregnancy": 1, "disability support": 1, "long-term illness": 1}],
    )
    crm = pl.DataFrame(
        {
            "customer_id": ids,
            "jurisdiction": jur,
            "full_name": people["full_name"],
            "email": people["email"],
            "phone": people["phone"],
            "date_of_birth": days_before(as_of, dob_days + rng.integers(0, 180, n_customers)),
            "national_id": people["national_id"],
            "address": people["address"],
            "postcode": people["postcode"],
            "country": country,
            "precise_geolocation": people["precise_geolocation"],
            "customer_type": pl.Series(["retail", "smb"]).gather(smb.astype(np.int64)),
            "employment_type": emp,
            "occupation": occupation,
            "business_sector": sector.set(pl.Series(~smb), None) if (~smb).any() else sector,
            "business_size": size.set(pl.Series(~smb), None) if (~smb).any() else size,
            "annual_income": pl.Series(np.where(minor, np.nan, income)).fill_nan(None),
            "signup_date": days_before(as_of, signup_back),
            "last_activity_date": days_before(as_of, last_back),
            "lawful_basis_marketing": pl.Series(["consent", "legitimate_interest", "none"]).gather(
                basis
            ),
            "marketing_consent": pl.Series(consent).set(pl.Series(consent_unknown), None),
            "marketing_consent_at": pl.Series(consent_at).set(
                pl.Series(~(consent | withdrawn)), None
            ),
            "consent_withdrawn": pl.Series(withdrawn),
            "objection_direct_marketing": pl.Series(u[0] < 0.04),
            "ccpa_do_not_sell_share": pl.Series(u[1] < np.where(ca, 0.12, 0.05)).set(
                pl.Series(~us), None
            ),
            "gpc_signal": pl.Series(u[2] < np.where(ca, 0.18, np.where(us, 0.06, 0.01))),
            "limit_sensitive_pi": pl.Series(u[3] < np.where(ca, 0.07, 0.03)).set(
                pl.Series(~us), None
            ),
            "do_not_call": pl.Series(u[4] < 0.08),
            "religion": religion.set(pl.Series(u[5] >= 0.08), None),
            "health_note": health.set(pl.Series((u[5] < 0.08) | (u[5] >= 0.11)), None),
        }
    )
    cust = Customers(ids, jur, region, persona, minor, np.zeros(n_customers))
    return crm, cust


def bureau(rng: np.random.Generator, c: Customers, as_of: date) -> pl.DataFrame:
    idx = np.flatnonzero(~c.minor)
    p = c.persona[idx]
    score = np.clip(
        np.round(normal(rng, P.table("score")[:, 0], P.table("score")[:, 1], p)), 300, 850
    )
    c.score[idx] = score
    util = np.clip(
        normal(rng, P.table("utilisation")[:, 0], P.table("utilisation")[:, 1], p), 0, 1.6
    )
    return pl.DataFrame(
        {
            "customer_id": c.ids.gather(idx),
            "jurisdiction": c.jurisdiction.gather(idx),
            "credit_score": score.astype(np.int64),
            "delinquencies_24m": np.minimum(rng.poisson(P.table("delinquency_rate")[p]), 100),
            "utilisation": np.round(util, 3),
            "inquiries_6m": rng.poisson(np.where(p == 5, 4.0, np.where(p == 2, 2.5, 0.6))),
            "report_date": days_before(as_of, rng.integers(1, 60, len(idx))),
        }
    )


def loans(rng: np.random.Generator, c: Customers, as_of: date) -> pl.DataFrame:
    at_least = P.table("loan_min").astype(np.int64)[c.persona]
    counts = np.where(c.minor, 0, at_least + rng.poisson(P.table("loan_rate")[c.persona]))
    idx = np.repeat(np.arange(len(c.persona)), counts)
    p = c.persona[idx]
    k = len(idx)
    product = categorical(rng, p, [x.loan_products for x in P.PERSONAS])
    lo = np.array([x.tenure[0] for x in P.PERSONAS])
    hi = np.array([x.tenure[1] for x in P.PERSONAS])
    tenure = rng.integers(lo[p], hi[p] + 1)
    status = categorical(
        rng,
        (p == 5).astype(np.int64),
        [
            {"active": 0.7, "closed": 0.3},
            {"active": 0.68, "closed": 0.2, "defaulted": 0.09, "written_off": 0.03},
        ],
    )
    closed = (status == "closed").to_numpy()
    dpd = np.where(rng.random(k) < P.table("dpd_share")[p], 1 + rng.exponential(45, k), 0)
    dpd = np.where(closed, 0, np.minimum(dpd, 3650)).astype(np.int64)
    amount = np.round(np.exp(normal(rng, P.table("loan_mu"), np.full(6, 0.4), p)), 2)
    return pl.DataFrame(
        {
            "loan_id": serial_ids("LN", k, 10),
            "customer_id": c.ids.gather(idx),
            "jurisdiction": c.jurisdiction.gather(idx),
            "product": product,
            "amount": amount,
            "tenure_months": tenure,
            "rate": np.round(
                np.clip(0.03 + (850 - c.score[idx]) / 2500 + rng.normal(0, 0.01, k), 0.01, 0.6), 4
            ),
            "status": status,
            "days_past_due": dpd,
            "default_flag": status.is_in(["defaulted", "written_off"]),
            "fees_paid": np.round(amount * rng.uniform(0, 0.03, k), 2),
            "originated_at": days_before(
                as_of, rng.integers(15, np.minimum(tenure * 30, 1800) + 16)
            ),
        }
    )


def transactions(
    rng: np.random.Generator, c: Customers, as_of: date, first_id: int = 1
) -> pl.DataFrame:
    n = len(c.persona)
    noise = np.exp(rng.normal(0, 0.15, n))
    counts = rng.poisson(P.table("txn_rate")[c.persona] * noise * np.where(c.minor, 0.5, 1.0))
    idx = np.repeat(np.arange(n), counts)
    p = c.persona[idx]
    t = len(idx)
    weights = P.table("month_weights")  # (personas, 12): relative activity per month
    cdf = np.cumsum(weights, axis=1) / weights.sum(axis=1, keepdims=True)
    month = draw(rng, cdf_table(cdf), p).astype(np.int64)
    # In-season (or later-in-the-year, for growth) tickets are larger as well as more frequent.
    follows = P.table("amount_follows_month")[:, None]
    factor = ((weights / weights.mean(axis=1, keepdims=True)) ** follows).ravel()
    z = rng.standard_normal(t, dtype=np.float32)
    amount = np.exp(P.table("txn_mu")[p] + P.table("txn_sigma")[p] * z) * factor[p * 12 + month]
    phase = rng.integers(0, 12, n)  # seasonal businesses peak in different months
    month = np.where(p == SEASONAL, (month + phase[idx]) % 12, month)
    # Integer microseconds: a month's start plus a uniform offset within it.
    offset = month * MONTH_US + rng.integers(0, MONTH_US, t)
    ts = np.datetime64(as_of, "us") - np.timedelta64(365, "D") + offset.astype("timedelta64[us]")
    share = np.round(P.table("credit_share") * RES).astype(np.int64)
    credit = rng.integers(0, RES, t, dtype=np.uint16) < share[p]
    merchants, merchant = draw_codes(
        rng,
        p,
        [
            {"wholesale": 3, "sales_payout": 3, "fuel": 1, "utilities": 1},
            {"wholesale": 2, "sales_payout": 3, "software": 2, "logistics": 2},
            {"marketplace_payout": 4, "groceries": 2, "fuel": 2, "restaurants": 2},
            {"crypto_exchange": 4, "brokerage": 3, "travel": 1, "luxury": 1},
            {"groceries": 3, "utilities": 2, "payroll": 1},
            {"groceries": 2, "cash_withdrawal": 2, "payday_lender": 1, "utilities": 1},
        ],
    )
    channels, channel = draw_codes(
        rng,
        p,
        [
            {"transfer": 4, "card": 3, "cash": 2},
            {"transfer": 5, "card": 3, "direct_debit": 1},
            {"card": 5, "transfer": 3, "cash": 2},
            {"crypto": 5, "transfer": 4, "card": 1},
            {"direct_debit": 3, "card": 3, "transfer": 2},
            {"card": 4, "cash": 4, "direct_debit": 1},
        ],
    )
    # Numbers and codes first; the string columns are made in one select, where Polars
    # builds them in parallel (five gathers of tens of millions of short strings).
    codes = pl.DataFrame(
        {
            "_i": idx.astype(np.uint32 if n < 2**32 else np.int64),
            "ts": pl.Series(ts),
            "amount": amount,
            "_d": credit.astype(np.uint8),
            "_m": merchant,
            "_c": channel,
        }
    )
    return codes.select(
        # 12-digit numeric ids (leading 5): fixed width keeps string order = row order;
        # already 12 digits, so a plain cast (no padding, prefix or slice) makes them.
        txn_id=(pl.int_range(first_id, first_id + t, dtype=pl.Int64) + 5 * 10**11).cast(pl.String),
        customer_id=pl.lit(c.ids).gather("_i"),
        jurisdiction=pl.lit(c.jurisdiction).gather("_i"),
        ts="ts",
        amount=pl.col("amount").round(2),
        direction=pl.lit(pl.Series(["debit", "credit"])).gather("_d"),
        merchant_category=pl.lit(pl.Series(merchants)).gather("_m"),
        channel=pl.lit(pl.Series(channels)).gather("_c"),
    )


def app_events(
    rng: np.random.Generator, c: Customers, as_of: date, months: int = 6, first_id: int = 1
) -> pl.DataFrame:
    users = np.flatnonzero(rng.random(len(c.persona)) < 0.95)
    idx = np.repeat(users, months)
    p = c.persona[idx]
    k = len(idx)
    first = np.datetime64(as_of, "M") - np.arange(months, 0, -1)
    month = np.tile(first.astype("datetime64[D]"), len(users))
    level = np.repeat(np.exp(rng.normal(0, 0.2, len(users))), months)
    logins = rng.poisson(P.table("logins")[p] * level)
    return pl.DataFrame(
        {
            "event_id": serial_ids("EV", k, 11, first_id),
            "customer_id": c.ids.gather(idx),
            "jurisdiction": c.jurisdiction.gather(idx),
            "month": pl.Series(month),
            "logins": logins,
            "sessions": logins + rng.poisson(logins * 0.6),
            "features_used": rng.poisson(2 + logins / 8),
            "support_contacts": rng.poisson(P.table("support")[p]),
        }
    )


def wallets(rng: np.random.Generator, c: Customers) -> pl.DataFrame:
    has = rng.random(len(c.persona)) < P.table("wallet_share")[c.persona]
    counts = np.where(has, 1 + rng.poisson(P.table("extra_wallets")[c.persona]), 0)
    idx = np.repeat(np.arange(len(has)), counts)
    p = c.persona[idx]
    k = len(idx)
    return pl.DataFrame(
        {
            "wallet_id": serial_ids("WL", k, 10),
            "customer_id": c.ids.gather(idx),
            "jurisdiction": c.jurisdiction.gather(idx),
            "trading_volume_90d": np.round(
                np.exp(normal(rng, P.table("crypto_mu"), P.table("crypto_sigma"), p)), 2
            ),
            "asset_count": np.minimum(1 + rng.poisson(P.table("assets")[p]), 10_000),
            "active_days_90d": np.minimum(rng.poisson(np.where(p == 3, 60, 8)), 90),
        }
    )


def screening(rng: np.random.Generator, c: Customers, as_of: date) -> pl.DataFrame:
    n = len(c.persona)
    pep = rng.random(n) < np.where(c.persona == 3, 0.04, 0.0075)
    sanctions = rng.random(n) < 0.002
    return pl.DataFrame(
        {
            "customer_id": c.ids,
            "jurisdiction": c.jurisdiction,
            "pep": pep,
            "sanctions_hit": sanctions,
            "adverse_media": rng.random(n) < np.where(pep | sanctions, 0.3, 0.008),
            "screened_at": days_before(as_of, rng.integers(1, 365, n)),
        }
    )


def surveys(rng: np.random.Generator, c: Customers) -> pl.DataFrame:
    idx = np.flatnonzero(rng.random(len(c.persona)) < 0.3)
    p = c.persona[idx]
    lit_mean = np.array([3.2, 3.8, 2.6, 4.3, 3.6, 2.1])
    return pl.DataFrame(
        {
            "customer_id": c.ids.gather(idx),
            "jurisdiction": c.jurisdiction.gather(idx),
            "attitude_to_debt": categorical(
                rng,
                p,
                [
                    {"neutral": 2, "comfortable": 1},
                    {"comfortable": 3, "neutral": 1},
                    {"comfortable": 2, "neutral": 1},
                    {"comfortable": 1, "neutral": 1},
                    {"averse": 4, "neutral": 1},
                    {"neutral": 1, "comfortable": 1, "averse": 1},
                ],
            ),
            "financial_literacy": np.clip(
                np.round(lit_mean[p] + rng.normal(0, 0.7, len(p))), 1, 5
            ).astype(np.int64),
            "risk_tolerance": categorical(
                rng,
                p,
                [
                    {"medium": 2, "low": 1},
                    {"high": 2, "medium": 1},
                    {"medium": 1, "high": 1},
                    {"high": 4, "medium": 1},
                    {"low": 4, "medium": 1},
                    {"low": 1, "medium": 1},
                ],
            ),
        }
    )


def privacy_requests(rng: np.random.Generator, c: Customers, as_of: date) -> pl.DataFrame:
    idx = np.flatnonzero(rng.random(len(c.persona)) < 0.02)
    us = US_REGION[c.region[idx]].astype(np.int64)
    return pl.DataFrame(
        {
            "request_id": serial_ids("PR", len(idx), 9),
            "customer_id": c.ids.gather(idx),
            "jurisdiction": c.jurisdiction.gather(idx),
            "request_type": categorical(
                rng,
                us,
                [
                    {"erasure": 0.4, "access": 0.45, "opt_out": 0.15},
                    {"deletion": 0.4, "opt_out": 0.45, "access": 0.15},
                ],
            ),
            "requested_at": days_before(as_of, rng.integers(1, 365, len(idx))),
        }
    )


def outcomes(rng: np.random.Generator, c: Customers, as_of: date) -> pl.DataFrame:
    n = len(c.persona)
    return pl.DataFrame(
        {
            "customer_id": c.ids,
            "jurisdiction": c.jurisdiction,
            "converted": rng.random(n) < P.table("convert")[c.persona],
            "defaulted": (rng.random(n) < P.table("default")[c.persona]) & ~c.minor,
            "observed_at": days_before(as_of, rng.integers(1, 90, n)),
        }
    )
