# ruff: noqa: E501  (the TOML declarations are quoted as a user writes them, one line each)
"""Workspaces shaped unlike the sample, built in the tests (bring your own data).

- `credit_table`: one CSV table of loan applicants: integer ids, its own id and
  jurisdiction column names, a handful of numeric columns, a 0-1000 rating scale with its
  own bands, a boolean default flag as the outcome.
- `card_transactions`: a card-transactions Parquet table with its own column names and
  timestamps plus a small card-holders CSV table (the subjects).
- `new_jurisdiction`: the single table again, tagged with a jurisdiction the policy bundle
  does not ship.

Each is created with `pgov init`, its own pgov.toml and `pgov keys init`, as a user would.
The consent, erasure and date-of-birth columns are mapped to the privacy roles the bundle's
rules read (`role = ...`); their names are the workspace's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from typer.testing import CliRunner

from engine.cli import app

AS_OF = "2026-11-01"
runner = CliRunner()


def in_clear(values: Iterable[str], blob: str | bytes) -> set[str]:
    """The values that stand alone in `blob`. An integer id such as 100042 also turns up,
    by chance, as a digit run inside hexadecimal tokens, digests and file names (about one
    run in six for 300 ids against a vault segment), and as the decimals of a float whose
    value depends on the run's random keys (0.100042 in personas.json: about one run in
    12,000 for two ids against a version's JSON, which holds some 40 six-decimal floats).
    So a run with a hex digit on either side, a decimal point before it or a decimal point
    and digit after it is not counted: an id written in clear is delimited (quote, comma,
    colon, white space, length byte)."""
    text = blob.decode("latin-1") if isinstance(blob, bytes) else blob
    return {
        v
        for v in values
        if re.search(rf"(?<![0-9A-Fa-f.]){re.escape(v)}(?![0-9A-Fa-f]|\.[0-9])", text) is not None
    }


def pgov(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        trace = "".join(traceback.format_exception(result.exception))
        return result.exit_code, result.output + trace
    return result.exit_code, result.output


HEADER = """
name = "{name}"
jurisdictions = [{jurisdictions}]
subjects = "{subjects}"

[segmentation]
strategy = "kmeans"
k_min = 2
k_max = 4
sample_size = 2000
bootstrap_runs = 2
seed = 3

[actors.analyst]
roles = ["regional_analyst"]
home_region = "{region}"
jurisdictions = [{jurisdictions}]

[actors.officer]
roles = ["compliance_officer"]
home_region = "{region}"
jurisdictions = [{jurisdictions}]
"""

CONSENT_COLUMNS = """
date_of_birth = { type = "date", classification = "quasi_identifier", required = true, role = "date_of_birth" }
lawful_basis_marketing = { type = "str", classification = "consent", allowed = ["consent", "legitimate_interest", "none"], role = "lawful_basis_marketing" }
marketing_consent = { type = "bool", classification = "consent", role = "marketing_consent" }
consent_withdrawn = { type = "bool", classification = "consent", role = "consent_withdrawn" }
objection_direct_marketing = { type = "bool", classification = "consent", role = "objection_direct_marketing" }
erase_request = { type = "bool", classification = "consent", role = "erasure_requested" }
dnc_registered = { type = "bool", classification = "consent", role = "do_not_call" }
"""

CREDIT_SOURCE = (
    """
[sources.applicants]
path = "data/applicants.csv"
format = "csv"
key = ["applicant_no"]
jurisdiction_column = "region_code"
subject_column = "applicant_no"
[sources.applicants.columns]
applicant_no = { type = "int", classification = "direct_identifier", required = true }
region_code = { type = "str", classification = "technical", required = true }
monthly_income = { type = "float", classification = "financial", min = 0 }
debt_ratio = { type = "float", classification = "financial", min = 0 }
revolving_util = { type = "float", classification = "financial", min = 0 }
open_lines = { type = "int", classification = "financial", min = 0 }
late_90d = { type = "int", classification = "financial", min = 0 }
rating = { type = "int", classification = "financial", min = 0, max = 1000 }
employment = { type = "str", classification = "financial" }
defaulted = { type = "bool", classification = "outcome" }
"""
    + CONSENT_COLUMNS
)

CREDIT_FEATURES = """
[features.income_log]
source = "applicants"
column = "monthly_income"
transform = "log1p"
fill = "median"

[features.debt_ratio]
source = "applicants"
column = "debt_ratio"
transform = "clip"
clip = [0, 5]
fill = 0.0
risk = 1
describe = ["heavily indebted", "lightly indebted"]

[features.utilisation]
source = "applicants"
column = "revolving_util"
transform = "clip"
clip = [0, 1.5]
fill = 0.0
risk = 1

[features.lines]
source = "applicants"
column = "open_lines"
fill = 0.0

[features.income_per_line]
source = "applicants"
columns = ["monthly_income", "open_lines"]
transform = "ratio"
fill = 0.0

[features.late_log]
source = "applicants"
column = "late_90d"
log1p = true
fill = 0.0
risk = 1
adjective = ["often-late", "punctual"]

[features.rating]
source = "applicants"
column = "rating"
fill = "median"
risk = -1
describe = ["high rating", "low rating"]

# This lender's rating runs 0-1000: its own bands, not a FICO scale.
[features.rating_band]
role = "descriptor"
source = "applicants"
column = "rating"
transform = "band"
bands = [300, 600, 800]
labels = ["weak", "moderate", "strong", "excellent"]

[features.employment]
role = "descriptor"
source = "applicants"
column = "employment"
nouns = { student = "student", retired = "retiree" }

[features.default_rate]
role = "outcome"
kind = "boolean"
source = "applicants"
column = "defaulted"
purposes = ["credit_risk_segmentation", "marketing_segmentation"]

[features.monthly_income]
role = "kpi"
kind = "money"
source = "applicants"
column = "monthly_income"
"""


def _people(n: int, seed: int) -> tuple[np.random.Generator, np.ndarray, dict[str, list]]:
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 3, size=n)
    start = date(1950, 1, 1)
    dob = [start + timedelta(days=int(d)) for d in rng.integers(0, 50 * 365, size=n)]
    consent = {
        "date_of_birth": dob,
        "lawful_basis_marketing": rng.choice(["consent", "legitimate_interest"], size=n).tolist(),
        "marketing_consent": (rng.random(n) < 0.9).tolist(),
        "consent_withdrawn": (rng.random(n) < 0.02).tolist(),
        "objection_direct_marketing": (rng.random(n) < 0.02).tolist(),
        "erase_request": (rng.random(n) < 0.01).tolist(),
        "dnc_registered": (rng.random(n) < 0.1).tolist(),
    }
    return rng, group, consent


def credit_frame(n: int, seed: int, jurisdiction: str) -> pl.DataFrame:
    rng, group, consent = _people(n, seed)
    pick = lambda *v: np.asarray(v, dtype=float)[group]  # noqa: E731
    income = np.round(rng.lognormal(np.log(pick(2500, 6000, 12000)), 0.25), 2)
    rating = np.clip(rng.normal(pick(350, 650, 880), 60), 0, 1000).round().astype(int)
    frame = pl.DataFrame(
        {
            "applicant_no": np.arange(100_001, 100_001 + n),
            "region_code": [jurisdiction] * n,
            "monthly_income": income,
            "debt_ratio": np.round(np.abs(rng.normal(pick(1.2, 0.5, 0.2), 0.15)), 4),
            "revolving_util": np.round(np.clip(rng.normal(pick(0.9, 0.45, 0.1), 0.1), 0, 2), 4),
            "open_lines": rng.poisson(pick(2, 6, 10)),
            "late_90d": rng.poisson(pick(2.0, 0.3, 0.02)),
            "rating": rating,
            "employment": np.asarray(["student", "salaried", "salaried"])[group],
            "defaulted": rng.random(n) < pick(0.25, 0.06, 0.01),
            **consent,
        }
    )
    return frame


def _write_workspace(root: Path, toml: str) -> None:
    code, out = pgov("init", str(root))
    assert code == 0, out
    (root / "pgov.toml").write_text(toml, encoding="utf-8")
    code, out = pgov("keys", "init", "-w", str(root))
    assert code == 0, out


def credit_table(root: Path, n: int = 1500, jurisdiction: str = "UK", region: str = "UK") -> Path:
    header = HEADER.format(
        name="lender", jurisdictions=f'"{jurisdiction}"', subjects="applicants", region=region
    )
    _write_workspace(root, header + CREDIT_SOURCE + CREDIT_FEATURES)
    credit_frame(n, 5, jurisdiction).write_csv(root / "data" / "applicants.csv")
    return root


CARD_SOURCES = (
    """
[sources.holders]
path = "data/holders.csv"
format = "csv"
key = ["holder_id"]
jurisdiction_column = "country_tag"
subject_column = "holder_id"
[sources.holders.columns]
holder_id = { type = "int", classification = "direct_identifier", required = true }
country_tag = { type = "str", classification = "technical", required = true }
tier = { type = "str", classification = "financial", allowed = ["basic", "gold", "platinum"] }
churned = { type = "bool", classification = "outcome" }
"""
    + CONSENT_COLUMNS
    + """
[sources.card_txns]
path = "data/card_txns.parquet"
key = ["txn_ref"]
jurisdiction_column = "country_tag"
subject_column = "card_holder"
record_date_column = "booked_at"
[sources.card_txns.columns]
txn_ref = { type = "str", classification = "technical", required = true }
card_holder = { type = "int", classification = "direct_identifier", required = true, references = "holders.holder_id" }
country_tag = { type = "str", classification = "technical", required = true }
booked_at = { type = "datetime", classification = "behavioural", required = true, not_future = true }
amount_eur = { type = "float", classification = "financial", required = true, min = 0 }
mcc = { type = "str", classification = "behavioural" }
is_refund = { type = "bool", classification = "behavioural" }
"""
)

CARD_FEATURES = """
[features.txns_per_month]
source = "card_txns"
transform = "count"
time_column = "booked_at"
window_months = 12
per_month = true
log1p = true
fill = 0.0
adjective = ["frequent", "occasional"]

[features.spend_log]
source = "card_txns"
column = "amount_eur"
kind = "money"
transform = "sum"
time_column = "booked_at"
window_months = 12
log1p = true
fill = 0.0
adjective = ["big-spending", "small-spending"]
headline = true

[features.ticket_cv]
source = "card_txns"
column = "amount_eur"
transform = "cv"
time_column = "booked_at"
window_months = 12
fill = 0.0

[features.days_since_last]
source = "card_txns"
transform = "recency_days"
time_column = "booked_at"
clip = [0, 400]
fill = 400.0

[features.active_months]
source = "card_txns"
transform = "active_months"
time_column = "booked_at"
window_months = 12
fill = 0.0

[features.refund_share]
source = "card_txns"
transform = "share"
where = { field = "is_refund", op = "eq", value = true }
time_column = "booked_at"
window_months = 12
fill = 0.0

[features.travel_share]
source = "card_txns"
column = "amount_eur"
kind = "money"
transform = "share"
where = { field = "mcc", op = "in", value = ["4511", "7011"] }
fill = 0.0
noun = "traveller"

[features.largest_ticket]
source = "card_txns"
column = "amount_eur"
transform = "max"
log1p = true
fill = 0.0

[features.spend_shape]
source = "card_txns"
column = "amount_eur"
kind = "money"
transform = "monthly_peak"
time_column = "booked_at"
window_months = 12
shrink = 6
fill = 1.0

[features.tier]
role = "descriptor"
source = "holders"
column = "tier"

[features.churn_rate]
role = "outcome"
kind = "boolean"
source = "holders"
column = "churned"
purposes = ["credit_risk_segmentation", "marketing_segmentation"]

[features.spend_12m]
role = "kpi"
kind = "money"
source = "card_txns"
column = "amount_eur"
transform = "sum"
time_column = "booked_at"
window_months = 12
"""


def card_transactions(root: Path, holders: int = 600, seed: int = 9) -> Path:
    header = HEADER.format(name="cards", jurisdictions='"SG"', subjects="holders", region="SG")
    _write_workspace(root, header + CARD_SOURCES + CARD_FEATURES)
    rng, group, consent = _people(holders, seed)
    ids = np.arange(7000, 7000 + holders)
    pl.DataFrame(
        {
            "holder_id": ids,
            "country_tag": ["SG"] * holders,
            "tier": np.asarray(["basic", "gold", "platinum"])[group],
            "churned": (rng.random(holders) < np.asarray([0.3, 0.1, 0.05])[group]).tolist(),
            **consent,
        }
    ).write_csv(root / "data" / "holders.csv")
    per = np.asarray([4, 15, 40])[group]
    counts = rng.poisson(per)
    owner = np.repeat(ids, counts)
    g = np.repeat(group, counts)
    m = len(owner)
    end = datetime(2026, 10, 31, 12)
    booked = [end - timedelta(minutes=int(x)) for x in rng.integers(0, 500 * 24 * 60, size=m)]
    amount = np.round(rng.lognormal(np.log(np.asarray([20.0, 60.0, 250.0])[g]), 0.6), 2)
    mcc = np.where(
        rng.random(m) < np.asarray([0.02, 0.05, 0.4])[g],
        rng.choice(["4511", "7011"], size=m),
        rng.choice(["5411", "5812", "5999"], size=m),
    )
    pl.DataFrame(
        {
            "txn_ref": [f"T{i:07d}" for i in range(m)],
            "card_holder": owner,
            "country_tag": ["SG"] * m,
            "booked_at": booked,
            "amount_eur": amount,
            "mcc": mcc,
            "is_refund": (rng.random(m) < np.asarray([0.1, 0.02, 0.01])[g]).tolist(),
        }
    ).write_parquet(root / "data" / "card_txns.parquet")
    return root


def new_jurisdiction(root: Path) -> Path:
    """The single-table lender in a jurisdiction the bundle does not ship (CA-ON)."""
    return credit_table(root, n=900, jurisdiction="CA-ON", region="CA")
