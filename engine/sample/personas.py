"""The six planted personas and the behaviour that sets each apart.

Means are far apart on the features segmentation uses (transaction count and amount, cash-
flow volatility, seasonality, credit score, utilisation, delinquency, loans, app use,
crypto), with moderate noise, so k-means on per-customer features recovers the personas.
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
    score: tuple[float, float]  # credit score mean, sd
    utilisation: tuple[float, float]
    delinquency_rate: float
    loan_rate: float  # loans per customer
    loan_products: dict[str, float]
    loan_mu: float  # log loan amount mean
    tenure: tuple[int, int]  # months, low-high
    dpd_share: float  # share of loans past due
    logins: float  # per month
    support: float  # per month
    wallet_share: float
    crypto_mu: float  # log 90-day trading volume
    assets: float  # mean asset count
    income_mu: float
    convert: float
    default: float


_FLAT = (1.0,) * 12
_SEASON = (0.2, 0.2, 0.3, 0.6, 2.5, 5.0, 6.0, 5.0, 1.2, 0.3, 0.2, 0.2)
_GROWTH = tuple(0.3 + 0.25 * m for m in range(12))

PERSONAS: tuple[Persona, ...] = (
    Persona(
        "seasonal_microbusiness",
        0.12,
        "smb",
        {"self_employed": 0.5, "business_owner": 0.5},
        26,
        7.2,
        0.5,
        0.55,
        _SEASON,
        (690, 25),
        (0.35, 0.06),
        0.3,
        1.0,
        {"microbusiness": 1.0},
        10.0,
        (24, 48),
        0.05,
        12,
        0.8,
        0.02,
        6.0,
        1,
        10.8,
        0.06,
        0.03,
    ),
    Persona(
        "growth_microbusiness",
        0.12,
        "smb",
        {"business_owner": 0.8, "self_employed": 0.2},
        40,
        7.9,
        0.4,
        0.5,
        _GROWTH,
        (735, 20),
        (0.55, 0.06),
        0.2,
        2.2,
        {"working_capital": 0.7, "microbusiness": 0.3},
        11.3,
        (12, 36),
        0.03,
        35,
        2.0,
        0.05,
        7.0,
        2,
        11.5,
        0.12,
        0.02,
    ),
    Persona(
        "gig_worker_borrower",
        0.20,
        "retail",
        {"gig": 0.85, "self_employed": 0.15},
        44,
        4.0,
        1.1,
        0.6,
        _FLAT,
        (615, 25),
        (0.65, 0.07),
        1.0,
        4.0,
        {"bnpl": 0.6, "personal": 0.4},
        6.3,
        (3, 12),
        0.12,
        60,
        2.5,
        0.15,
        6.5,
        2,
        10.0,
        0.10,
        0.08,
    ),
    Persona(
        "high_net_worth_trader",
        0.08,
        "retail",
        {"salaried": 0.4, "business_owner": 0.4, "self_employed": 0.2},
        20,
        9.3,
        0.6,
        0.5,
        _FLAT,
        (790, 20),
        (0.15, 0.05),
        0.05,
        0.6,
        {"mortgage": 0.7, "credit_card": 0.3},
        13.0,
        (120, 360),
        0.01,
        30,
        0.5,
        0.92,
        12.5,
        25,
        12.4,
        0.20,
        0.01,
    ),
    Persona(
        "cautious_saver",
        0.25,
        "retail",
        {"salaried": 0.6, "retired": 0.4},
        8,
        5.6,
        0.25,
        0.5,
        _FLAT,
        (805, 15),
        (0.05, 0.03),
        0.02,
        0.0,
        {"personal": 1.0},
        8.0,
        (12, 24),
        0.0,
        4,
        0.1,
        0.02,
        5.5,
        1,
        10.6,
        0.04,
        0.005,
    ),
    Persona(
        "financially_stretched_borrower",
        0.23,
        "retail",
        {"salaried": 0.6, "gig": 0.25, "student": 0.15},
        22,
        4.9,
        0.5,
        0.45,
        _FLAT,
        (530, 25),
        (1.05, 0.08),
        4.0,
        2.0,
        {"personal": 0.5, "credit_card": 0.5},
        8.5,
        (12, 60),
        0.6,
        15,
        6.0,
        0.03,
        5.5,
        1,
        9.9,
        0.05,
        0.25,
    ),
)
NAMES: tuple[str, ...] = tuple(p.name for p in PERSONAS)
SHARES: np.ndarray = np.array([p.share for p in PERSONAS])
assert abs(SHARES.sum() - 1.0) < 1e-9


def table(attr: str) -> np.ndarray:
    """One persona attribute as an array indexed by persona number."""
    return np.array([getattr(p, attr) for p in PERSONAS], dtype=np.float64)
