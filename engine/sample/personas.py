"""The six planted personas and the behaviour that sets each apart.

Means are far apart on the features segmentation uses (transaction count and amount, cash-
flow volatility, seasonality, credit score, utilisation, delinquency, loans, app use,
crypto), with moderate noise, so k-means on per-customer features recovers the personas.

Each persona is one mode, not a mixture: a feature that is zero for some members and large
for the others (no loan vs a 20-year mortgage, no wallet vs an active trading wallet) splits
a persona in two under clustering. So a borrower persona always holds at least `loan_min`
loans, the traders nearly all hold a wallet, and the two microbusinesses differ by product
(working capital vs microbusiness loans), activity and a real month-of-year season.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Persona:
    name: str
    share: float
    customer_type: str  # "smb" or "retail"
    employment: dict[str, float]
    txn_rate: float  # transactions per customer over the 12 months
    txn_mu: float  # log-amount mean
    txn_sigma: float  # log-amount sd (cash-flow volatility)
    credit_share: float  # share of transactions that are credits
    month_weights: tuple[float, ...]  # relative activity per month of the window
    # Amounts scale with (month weight / mean weight) ** this: in-season tickets are larger.
    amount_follows_month: float
    score: tuple[float, float]  # credit score mean, sd
    utilisation: tuple[float, float]
    delinquency_rate: float
    loan_min: int  # loans every (adult) member holds
    loan_rate: float  # mean further loans per customer (Poisson)
    loan_products: dict[str, float]
    loan_mu: float  # log loan amount mean
    tenure: tuple[int, int]  # months, low-high
    dpd_share: float  # share of loans past due
    logins: float  # per month
    support: float  # per month
    wallet_share: float
    extra_wallets: float  # mean further wallets of a wallet holder (Poisson)
    crypto_mu: float  # log 90-day trading volume
    crypto_sigma: float
    assets: float  # mean asset count
    income_mu: float
    convert: float
    default: float


_FLAT = (1.0,) * 12
# A three-month season (tourism, harvest, holidays) carrying about 80 % of the year's trade.
_SEASON = (0.15, 0.15, 0.2, 0.4, 1.5, 6.0, 8.0, 6.0, 0.8, 0.2, 0.15, 0.15)
# Steady growth: activity roughly doubles over the year.
_GROWTH = tuple(0.65 + 0.065 * m for m in range(12))

PERSONAS: tuple[Persona, ...] = (
    Persona(
        name="seasonal_microbusiness",
        share=0.12,
        customer_type="smb",
        employment={"self_employed": 0.5, "business_owner": 0.5},
        txn_rate=24,
        txn_mu=7.2,
        txn_sigma=0.5,
        credit_share=0.55,
        month_weights=_SEASON,
        amount_follows_month=0.35,
        score=(690, 25),
        utilisation=(0.35, 0.06),
        delinquency_rate=0.3,
        loan_min=1,
        loan_rate=0.2,
        loan_products={"microbusiness": 1.0},
        loan_mu=10.0,
        tenure=(24, 48),
        dpd_share=0.05,
        logins=8,
        support=0.5,
        wallet_share=0.02,
        extra_wallets=0.0,
        crypto_mu=6.0,
        crypto_sigma=0.6,
        assets=1,
        income_mu=10.8,
        convert=0.06,
        default=0.03,
    ),
    Persona(
        name="growth_microbusiness",
        share=0.12,
        customer_type="smb",
        employment={"business_owner": 0.8, "self_employed": 0.2},
        txn_rate=46,
        txn_mu=7.9,
        txn_sigma=0.4,
        credit_share=0.5,
        month_weights=_GROWTH,
        amount_follows_month=0.5,
        score=(735, 20),
        utilisation=(0.55, 0.06),
        delinquency_rate=0.2,
        loan_min=1,
        loan_rate=1.2,
        loan_products={"working_capital": 0.9, "microbusiness": 0.1},
        loan_mu=11.6,
        tenure=(12, 36),
        dpd_share=0.03,
        logins=30,
        support=2.0,
        wallet_share=0.05,
        extra_wallets=0.0,
        crypto_mu=7.0,
        crypto_sigma=0.6,
        assets=2,
        income_mu=11.5,
        convert=0.12,
        default=0.02,
    ),
    Persona(
        name="gig_worker_borrower",
        share=0.20,
        customer_type="retail",
        employment={"gig": 0.85, "self_employed": 0.15},
        txn_rate=36,
        txn_mu=4.0,
        txn_sigma=1.1,
        credit_share=0.6,
        month_weights=_FLAT,
        amount_follows_month=0.0,
        score=(615, 25),
        utilisation=(0.65, 0.07),
        delinquency_rate=1.0,
        loan_min=1,
        loan_rate=3.0,
        loan_products={"bnpl": 0.6, "personal": 0.4},
        loan_mu=6.3,
        tenure=(3, 12),
        dpd_share=0.12,
        logins=60,
        support=2.5,
        wallet_share=0.1,
        extra_wallets=0.0,
        crypto_mu=6.5,
        crypto_sigma=0.6,
        assets=2,
        income_mu=10.0,
        convert=0.10,
        default=0.08,
    ),
    Persona(
        name="high_net_worth_trader",
        share=0.10,
        customer_type="retail",
        employment={"salaried": 0.4, "business_owner": 0.4, "self_employed": 0.2},
        txn_rate=18,
        txn_mu=9.3,
        txn_sigma=0.6,
        credit_share=0.5,
        month_weights=_FLAT,
        amount_follows_month=0.0,
        score=(790, 20),
        utilisation=(0.15, 0.05),
        delinquency_rate=0.05,
        loan_min=1,
        loan_rate=0.3,
        loan_products={"mortgage": 0.8, "credit_card": 0.2},
        loan_mu=13.0,
        tenure=(180, 300),
        dpd_share=0.01,
        logins=30,
        support=0.5,
        wallet_share=0.99,
        extra_wallets=0.5,
        crypto_mu=12.5,
        crypto_sigma=0.4,
        assets=25,
        income_mu=12.4,
        convert=0.20,
        default=0.01,
    ),
    Persona(
        name="cautious_saver",
        share=0.23,
        customer_type="retail",
        employment={"salaried": 0.6, "retired": 0.4},
        txn_rate=8,
        txn_mu=5.6,
        txn_sigma=0.25,
        credit_share=0.5,
        month_weights=_FLAT,
        amount_follows_month=0.0,
        score=(805, 15),
        utilisation=(0.05, 0.03),
        delinquency_rate=0.02,
        loan_min=0,
        loan_rate=0.0,
        loan_products={"personal": 1.0},
        loan_mu=8.0,
        tenure=(12, 24),
        dpd_share=0.0,
        logins=4,
        support=0.1,
        wallet_share=0.02,
        extra_wallets=0.0,
        crypto_mu=5.5,
        crypto_sigma=0.6,
        assets=1,
        income_mu=10.6,
        convert=0.04,
        default=0.005,
    ),
    Persona(
        name="financially_stretched_borrower",
        share=0.23,
        customer_type="retail",
        employment={"salaried": 0.6, "gig": 0.25, "student": 0.15},
        txn_rate=18,
        txn_mu=4.9,
        txn_sigma=0.5,
        credit_share=0.45,
        month_weights=_FLAT,
        amount_follows_month=0.0,
        score=(530, 25),
        utilisation=(1.05, 0.08),
        delinquency_rate=4.0,
        loan_min=1,
        loan_rate=1.0,
        loan_products={"personal": 0.5, "credit_card": 0.5},
        loan_mu=8.5,
        tenure=(12, 60),
        dpd_share=0.6,
        logins=15,
        support=6.0,
        wallet_share=0.03,
        extra_wallets=0.0,
        crypto_mu=5.5,
        crypto_sigma=0.6,
        assets=1,
        income_mu=9.9,
        convert=0.05,
        default=0.25,
    ),
)
NAMES: tuple[str, ...] = tuple(p.name for p in PERSONAS)
SHARES: np.ndarray = np.array([p.share for p in PERSONAS])
assert abs(SHARES.sum() - 1.0) < 1e-9


def table(attr: str) -> np.ndarray:
    """One persona attribute as an array indexed by persona number."""
    return np.array([getattr(p, attr) for p in PERSONAS], dtype=np.float64)
