"""Features: per-customer Polars features built only from governed frames.

Contract (owned here):
    build_features(governed: GovernedFrames, as_of: date) -> FeatureFrame

Every feature is computed from the governed frames (tokens as `customer_id`, dropped columns
absent). A feature whose inputs the policy removed is not computed at all and is recorded in
`FeatureFrame.unavailable` with the reason; the others degrade gracefully. Definitions and
neutral fill values are documented in docs/segmentation.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import polars as pl

from engine.enforce import GovernedFrames

KEY = "customer_id"
# Months of history the activity features look at (ending with the month of `as_of`).
WINDOW_MONTHS = 12
# A customer with no transaction at all is treated as this many days since the last one:
# "long ago" without letting one unbounded value dominate a standardised axis.
RECENCY_CAP_DAYS = 730
# Relative cash-flow volatility above this is clipped: a near-empty account can otherwise
# produce arbitrarily large ratios that would dominate clustering.
CASHFLOW_CV_CAP = 10.0
# Transactions at which the cash-flow shape features get half their raw value (see below).
SHRINK_TXNS = 12
# Value proxy weights (annual revenue-like quantities, documented in docs/segmentation.md).
INTERCHANGE_RATE = 0.002
CRYPTO_SPREAD_RATE = 0.001
# Fallbacks used only when no customer at all has a bureau record to take a median from.
NEUTRAL_CREDIT_SCORE = 650.0
NEUTRAL_UTILISATION = 0.3

# FICO-style bands: commonly understood by credit teams, and coarse enough to be descriptive.
CREDIT_BANDS: tuple[tuple[float, str], ...] = (
    (580.0, "poor"),
    (670.0, "fair"),
    (740.0, "good"),
    (800.0, "very_good"),
)
AGE_BANDS: tuple[tuple[int, str], ...] = (
    (25, "18-24"),
    (35, "25-34"),
    (45, "35-44"),
    (55, "45-54"),
    (65, "55-64"),
)
INCOME_BANDS: tuple[tuple[float, str], ...] = (
    (20_000.0, "<20k"),
    (40_000.0, "20-40k"),
    (75_000.0, "40-75k"),
    (150_000.0, "75-150k"),
)


def _cents(col: str | pl.Expr) -> pl.Expr:
    """A money column as integer cents: sums and means of it do not depend on the order in
    which a threaded aggregation adds them."""
    expr = pl.col(col) if isinstance(col, str) else col
    return (expr.cast(pl.Float64) * 100).round().cast(pl.Int64)


@dataclass(frozen=True)
class FeatureFrame:
    # One row per kept customer, sorted by `customer_id` (the token), numeric feature
    # columns, plus descriptive (non-clustered) columns listed in `descriptors`.
    frame: pl.DataFrame
    features: list[str]  # numeric columns used for clustering, in order
    descriptors: list[str]  # e.g. customer_type, employment_type, age_band: for profiles
    # has_* columns (0/1) marking customers whose feature values are neutral fills.
    indicators: list[str] = field(default_factory=list)
    # feature -> why it could not be computed (source or column absent under this purpose).
    unavailable: dict[str, str] = field(default_factory=dict)
    as_of: date | None = None


def _month_index(expr: pl.Expr) -> pl.Expr:
    return expr.dt.year().cast(pl.Int32) * 12 + expr.dt.month().cast(pl.Int32) - 1


def _banded(expr: pl.Expr, bands: tuple[tuple[float, str], ...], top: str) -> pl.Expr:
    out: pl.Expr = pl.lit(top)
    # Built from the highest threshold down so the lowest matching band wins.
    for upper, label in reversed(bands):
        out = pl.when(expr < upper).then(pl.lit(label)).otherwise(out)
    return pl.when(expr.is_null()).then(pl.lit(None, dtype=pl.String)).otherwise(out)


class _Builder:
    """Collects per-source aggregates and records what could not be computed."""

    def __init__(self, governed: GovernedFrames, as_of: date) -> None:
        self.frames = governed.frames
        self.as_of = as_of
        self.as_of_month = as_of.year * 12 + as_of.month - 1
        first = self.as_of_month - WINDOW_MONTHS + 1
        self.window_start = date(first // 12, first % 12 + 1, 1)
        self.window_end = as_of + timedelta(days=1)  # exclusive
        self.parts: list[pl.LazyFrame] = []
        self.features: list[str] = []
        self.indicators: list[str] = []
        self.unavailable: dict[str, str] = {}
        # column -> fill expression applied after the left joins
        self.fills: dict[str, pl.Expr] = {}
        # Hidden per-source value proxy terms (annual value), carried in the parts and summed
        # after the joins: no extra pass over any source.
        self.value_terms: list[str] = []

    def until_as_of(self, source: str, col: str) -> pl.Expr:
        # Plain comparisons against literals of the column's own type: no per-row date
        # extraction (3-10x cheaper than .dt.date() on tens of millions of timestamps).
        dtype = self.frames[source].schema[col]
        return pl.col(col) < pl.lit(self.window_end).cast(dtype)

    def in_window(self, source: str, col: str) -> pl.Expr:
        dtype = self.frames[source].schema[col]
        return (pl.col(col) >= pl.lit(self.window_start).cast(dtype)) & self.until_as_of(
            source, col
        )

    def cols(self, source: str) -> set[str]:
        frame = self.frames.get(source)
        return set(frame.columns) if frame is not None else set()

    def need(self, feature: str, source: str, columns: list[str]) -> bool:
        present = self.cols(source)
        if source not in self.frames:
            self.unavailable[feature] = f"source '{source}' not available for this purpose"
            return False
        missing = [c for c in [KEY, *columns] if c not in present]
        if missing:
            self.unavailable[feature] = (
                f"column(s) {', '.join(f'{source}.{c}' for c in missing)} not available"
            )
            return False
        return True

    def add(self, part: pl.LazyFrame, features: dict[str, pl.Expr], indicator: str) -> None:
        self.parts.append(part.with_columns(pl.lit(1, dtype=pl.Int8).alias(indicator)))
        self.features.extend(features)
        self.fills.update(features)
        self.fills[indicator] = pl.lit(0, dtype=pl.Int8)
        self.indicators.append(indicator)

    def transactions(self) -> None:
        """One group_by over the transactions, by customer only.

        The monthly cash-flow shape needs per-month sums; instead of grouping by (customer,
        month) (a two-column key with a string is row-encoded: ~10x the cost of the string
        key alone) each row's amount is routed into one of 12 month columns (null outside
        the window), summed per customer, and the 12 monthly values are combined
        horizontally. Recency, counts, gross, cash-flow shape and the value proxy's
        interchange term all come from that single pass.
        """
        names = ["recency_days", "frequency_log", "monetary_log", "cashflow_cv", "seasonality"]
        if not self.need("recency_days", "transactions", ["ts"]):
            for n in names[1:]:
                self.unavailable[n] = self.unavailable["recency_days"]
            return
        cols = self.cols("transactions")
        # The window is 12 consecutive months, so month-of-year identifies a month in it.
        month = pl.when(self.in_window("transactions", "ts")).then(pl.col("ts").dt.month())
        lf = (
            self.frames["transactions"]
            .lazy()
            .filter(self.until_as_of("transactions", "ts"))
            .with_columns(month.alias("_m"))
        )
        routed: list[pl.Expr] = []
        # Amounts are summed as integer cents: exact, so the result does not depend on how
        # the parallel group_by splits a customer's rows (float sums did, in the last bits,
        # which made persona files differ between identical runs). Converted back below.
        cents = _cents("amount")
        in_cents: list[str] = []
        aggs = [
            (pl.lit(self.as_of) - pl.col("ts").max().cast(pl.Date))
            .dt.total_days()
            .clip(0, RECENCY_CAP_DAYS)
            .cast(pl.Float64)
            .alias("recency_days"),
            pl.col("_m").count().alias("_n"),  # non-null: transactions in the window
        ]
        feats: dict[str, pl.Expr] = {
            "recency_days": pl.lit(float(RECENCY_CAP_DAYS)),
            "frequency_log": pl.lit(0.0),
        }
        finals = [(pl.col("_n") / WINDOW_MONTHS).log1p().alias("frequency_log")]
        hidden: list[str] = []
        if "amount" in cols:
            routed.append(pl.when(pl.col("_m").is_not_null()).then(cents).alias("_a"))
            aggs.append(pl.col("_a").sum().alias("_gross"))
            in_cents.append("_gross")
            finals += [
                (pl.col("_gross") / WINDOW_MONTHS).log1p().alias("monetary_log"),
                # Value proxy term: interchange on the window's transaction volume.
                (pl.col("_gross") * INTERCHANGE_RATE).alias("_v_transactions"),
            ]
            hidden.append("_v_transactions")
            feats["monetary_log"] = pl.lit(0.0)
        else:
            self.unavailable["monetary_log"] = "column(s) transactions.amount not available"
        if {"amount", "direction"} <= cols:
            is_credit = pl.col("direction") == "credit"
            credit = pl.when(is_credit).then(cents).otherwise(0)
            net = cents * pl.when(is_credit).then(1).otherwise(-1)
            months = range(1, WINDOW_MONTHS + 1)
            for i in months:
                in_month = pl.col("_m") == i
                routed += [
                    pl.when(in_month).then(credit).alias(f"_c{i}"),
                    pl.when(in_month).then(net).alias(f"_n{i}"),
                ]
                # A month without transactions sums to 0: zero flow, as defined.
                aggs += [pl.col(f"_c{i}").sum(), pl.col(f"_n{i}").sum()]
                in_cents += [f"_c{i}", f"_n{i}"]
            credits = [pl.col(f"_c{i}") for i in months]
            nets = [pl.col(f"_n{i}") for i in months]
            mean_net = pl.sum_horizontal(nets) / WINDOW_MONTHS
            std_net = (
                (pl.sum_horizontal([n**2 for n in nets]) / WINDOW_MONTHS - mean_net**2)
                .clip(0.0)
                .sqrt()
            )
            mean_credit = pl.sum_horizontal(credits) / WINDOW_MONTHS
            # With few transactions the monthly profile is mostly sampling noise (one large
            # payment looks "seasonal" and "volatile"): both ratios are shrunk towards their
            # neutral value by n / (n + SHRINK_TXNS), n = transactions in the window.
            weight = pl.col("_n") / (pl.col("_n") + SHRINK_TXNS)
            # Scale by mean monthly inflow, not by the mean net flow: balanced accounts
            # have a net mean near zero, where a textbook CV explodes.
            cv = (std_net / (mean_credit + 1.0)).clip(0.0, CASHFLOW_CV_CAP)
            peak = (
                pl.when(mean_credit > 0)
                .then(pl.max_horizontal(credits) / mean_credit)
                .otherwise(1.0)
            )
            finals += [
                (cv * weight).alias("cashflow_cv"),
                (1.0 + (peak - 1.0) * weight).alias("seasonality"),
            ]
            feats["cashflow_cv"] = pl.lit(0.0)
            feats["seasonality"] = pl.lit(1.0)
        else:
            for n in ("cashflow_cv", "seasonality"):
                self.unavailable[n] = "column(s) transactions.amount/direction not available"
        part = (
            lf.with_columns(routed)
            .group_by(KEY)
            .agg(aggs)
            .with_columns(pl.col(c).cast(pl.Float64) / 100.0 for c in in_cents)
            .with_columns(finals)
            .select(KEY, *[n for n in names if n in feats], *hidden)
        )
        self.add(part, {n: feats[n] for n in names if n in feats}, "has_transactions")
        self.value_terms += hidden

    def bureau(self) -> None:
        if "bureau" not in self.frames or KEY not in self.cols("bureau"):
            for n in ("credit_score", "utilisation", "delinquencies_log"):
                self.unavailable[n] = "source 'bureau' not available for this purpose"
            return
        cols = self.cols("bureau")
        lf = self.frames["bureau"].lazy()
        order = "report_date" if "report_date" in cols else None
        picks: dict[str, pl.Expr] = {}
        fills: dict[str, pl.Expr] = {}
        frame = self.frames["bureau"]
        if "credit_score" in cols:
            picks["credit_score"] = pl.col("credit_score").cast(pl.Float64)
            med = frame["credit_score"].cast(pl.Float64).median()
            fills["credit_score"] = pl.lit(
                float(med) if isinstance(med, int | float) else NEUTRAL_CREDIT_SCORE
            )
        else:
            self.unavailable["credit_score"] = "column(s) bureau.credit_score not available"
        if "utilisation" in cols:
            picks["utilisation"] = pl.col("utilisation").cast(pl.Float64)
            med = frame["utilisation"].cast(pl.Float64).median()
            fills["utilisation"] = pl.lit(
                float(med) if isinstance(med, int | float) else NEUTRAL_UTILISATION
            )
        else:
            self.unavailable["utilisation"] = "column(s) bureau.utilisation not available"
        if "delinquencies_24m" in cols:
            picks["delinquencies_log"] = pl.col("delinquencies_24m").cast(pl.Float64).log1p()
            fills["delinquencies_log"] = pl.lit(0.0)
        else:
            self.unavailable["delinquencies_log"] = (
                "column(s) bureau.delinquencies_24m not available"
            )
        if not picks:
            return
        # A customer with several reports: the latest one counts.
        agg = [(e.sort_by(order).last() if order else e.last()).alias(n) for n, e in picks.items()]
        part = lf.group_by(KEY).agg(agg)
        self.add(part, fills, "has_bureau")

    def loans(self) -> None:
        names = ("loan_amount_log", "loan_tenure_months", "loan_dpd_log")
        if not self.need("loan_amount_log", "loans", []):
            for n in names:
                self.unavailable[n] = self.unavailable["loan_amount_log"]
            return
        self.unavailable.pop("loan_amount_log", None)
        cols = self.cols("loans")
        aggs: list[pl.Expr] = []
        fills: dict[str, pl.Expr] = {}
        # Money in integer cents (exact sums: no order-dependent last bits, see
        # engine/segment/grouped.py); an Int64 mean sums exactly below 2**53.
        spec = {
            "loan_amount_log": ("amount", (_cents("amount").mean() / 100).log1p()),
            "loan_tenure_months": ("tenure_months", pl.col("tenure_months").mean()),
            "loan_dpd_log": ("days_past_due", pl.col("days_past_due").max().log1p()),
        }
        for name, (col, expr) in spec.items():
            if col in cols:
                aggs.append(expr.cast(pl.Float64).alias(name))
                fills[name] = pl.lit(0.0)
            else:
                self.unavailable[name] = f"column(s) loans.{col} not available"
        # Value proxy term: interest on non-defaulted loans plus fees paid.
        value: pl.Expr | None = None
        if {"amount", "rate"} <= cols:
            active = pl.col("status") != "defaulted" if "status" in cols else pl.lit(True)
            interest = _cents(pl.col("amount") * pl.col("rate"))
            value = pl.when(active).then(interest).otherwise(0).sum() / 100
        if "fees_paid" in cols:
            fees = _cents(pl.col("fees_paid").fill_null(0.0)).sum() / 100
            value = fees if value is None else value + fees
        terms = ["_v_loans"] if value is not None else []
        if value is not None:
            aggs.append(value.cast(pl.Float64).alias("_v_loans"))
            self.value_terms += terms
        if not aggs:
            return
        part = self.frames["loans"].lazy().group_by(KEY).agg(aggs)
        if fills:
            self.add(part, fills, "has_loan")
        else:  # only the value term: no loan feature, so no has_loan indicator either
            self.parts.append(part)

    def app_events(self) -> None:
        spec = {
            "logins_log": "logins",
            "sessions_log": "sessions",
            "features_used_log": "features_used",
            "support_contacts_log": "support_contacts",
        }
        if "app_events" not in self.frames or KEY not in self.cols("app_events"):
            for n in spec:
                self.unavailable[n] = "source 'app_events' not available for this purpose"
            return
        cols = self.cols("app_events")
        lf = self.frames["app_events"].lazy()
        if "month" in cols:
            lf = lf.filter(self.in_window("app_events", "month"))
        aggs: list[pl.Expr] = []
        fills: dict[str, pl.Expr] = {}
        for name, col in spec.items():
            if col in cols:
                # Monthly average over the whole window: a missing month is a month of zero.
                aggs.append(
                    (pl.col(col).cast(pl.Float64).sum() / WINDOW_MONTHS).log1p().alias(name)
                )
                fills[name] = pl.lit(0.0)
            else:
                self.unavailable[name] = f"column(s) app_events.{col} not available"
        if aggs:
            self.add(lf.group_by(KEY).agg(aggs), fills, "has_app")

    def wallets(self) -> None:
        spec = {
            "crypto_volume_log": ("trading_volume_90d", _cents("trading_volume_90d").sum() / 100),
            "crypto_assets_log": ("asset_count", pl.col("asset_count").sum()),
            "crypto_active_days": ("active_days_90d", pl.col("active_days_90d").max()),
        }
        if "wallets" not in self.frames or KEY not in self.cols("wallets"):
            for n in spec:
                self.unavailable[n] = "source 'wallets' not available for this purpose"
            return
        cols = self.cols("wallets")
        aggs: list[pl.Expr] = []
        fills: dict[str, pl.Expr] = {}
        for name, (col, expr) in spec.items():
            if col in cols:
                e = expr.cast(pl.Float64)
                aggs.append((e.log1p() if name.endswith("_log") else e).alias(name))
                fills[name] = pl.lit(0.0)
            else:
                self.unavailable[name] = f"column(s) wallets.{col} not available"
        if "trading_volume_90d" in cols:
            # Value proxy term: spread on the 90-day volume annualised (x4).
            volume = _cents("trading_volume_90d").sum() / 100
            aggs.append((volume * 4 * CRYPTO_SPREAD_RATE).alias("_v_wallets"))
            self.value_terms.append("_v_wallets")
        if aggs:
            self.add(self.frames["wallets"].lazy().group_by(KEY).agg(aggs), fills, "has_wallet")


def _descriptors(crm: pl.DataFrame, as_of: date) -> tuple[list[pl.Expr], list[str]]:
    cols = set(crm.columns)
    exprs: list[pl.Expr] = []
    names: list[str] = []
    for c in ("customer_type", "employment_type", "business_size"):
        if c in cols:
            exprs.append(pl.col(c).cast(pl.String))
            names.append(c)
    if "age_band" in cols:
        exprs.append(pl.col("age_band").cast(pl.String))
        names.append("age_band")
    elif "date_of_birth" in cols:
        dob = pl.col("date_of_birth")
        if crm.schema["date_of_birth"] in (pl.Date, pl.Datetime):
            # Only the band leaves this function: the date itself is a quasi-identifier.
            age = (pl.lit(as_of.year) - dob.dt.year()) - (
                (pl.lit(as_of.month * 100 + as_of.day)) < (dob.dt.month() * 100 + dob.dt.day())
            ).cast(pl.Int32)
            exprs.append(_banded(age, AGE_BANDS, "65+").alias("age_band"))
        else:  # already generalised by the policy
            exprs.append(dob.cast(pl.String).alias("age_band"))
        names.append("age_band")
    if "income_band" in cols:
        exprs.append(pl.col("income_band").cast(pl.String))
        names.append("income_band")
    elif "annual_income" in cols:
        inc = pl.col("annual_income")
        if crm.schema["annual_income"].is_numeric():
            exprs.append(_banded(inc, INCOME_BANDS, "150k+").alias("income_band"))
        else:
            exprs.append(inc.cast(pl.String).alias("income_band"))
        names.append("income_band")
    return exprs, names


def build_features(governed: GovernedFrames, as_of: date) -> FeatureFrame:
    """One row per kept crm customer, sorted by token; see docs/segmentation.md."""
    if "crm" not in governed.frames or KEY not in governed.frames["crm"].columns:
        from engine.errors import BadInputError

        raise BadInputError("features: governed frames have no crm source with customer_id")
    crm = governed.frames["crm"]
    b = _Builder(governed, as_of)
    b.transactions()
    b.bureau()
    b.loans()
    b.app_events()
    b.wallets()

    desc_exprs, descriptors = _descriptors(crm, as_of)
    base_cols: list[pl.Expr] = [pl.col(KEY), *desc_exprs]
    extra_features: list[str] = []
    if "signup_date" in crm.columns:
        months = (
            (pl.lit(as_of.year * 12 + as_of.month) - _month_index(pl.col("signup_date")) - 1)
            .clip(0)
            .cast(pl.Float64)
        )
        base_cols.append(months.alias("customer_tenure_months"))
        extra_features.append("customer_tenure_months")
        b.fills["customer_tenure_months"] = pl.lit(0.0)
    else:
        b.unavailable["customer_tenure_months"] = "column(s) crm.signup_date not available"

    lf = crm.lazy().select(base_cols).unique(subset=[KEY], keep="first")
    for part in b.parts:
        lf = lf.join(part, on=KEY, how="left")
    features = [*b.features, *extra_features]
    if b.value_terms:
        # Each term only where its source had rows for the customer; absent terms add 0.
        value = pl.sum_horizontal([pl.col(t).fill_null(0.0) for t in b.value_terms])
        lf = lf.with_columns(value.log1p().alias("value_proxy_log"))
        features.append("value_proxy_log")
        b.fills["value_proxy_log"] = pl.lit(0.0)
    else:
        b.unavailable["value_proxy_log"] = "no loan, transaction or wallet amounts available"

    # Bureau neutral fills are medians: a customer with no bureau record sits in the middle
    # of the score axis (and has_bureau=0 says so) instead of looking like a poor score.
    lf = lf.with_columns(
        [
            pl.col(c).fill_null(e).cast(pl.Float64 if c in features else pl.Int8).alias(c)
            for c, e in b.fills.items()
        ]
    )
    if "credit_score" in features:
        # Banded from the record, not the median fill: no record is its own band.
        lf = lf.with_columns(
            pl.when(pl.col("has_bureau") == 1)
            .then(_banded(pl.col("credit_score"), CREDIT_BANDS, "exceptional"))
            .otherwise(pl.lit("no_record"))
            .alias("credit_band")
        )
        descriptors.append("credit_band")
    frame = lf.select(KEY, *features, *b.indicators, *descriptors).sort(KEY).collect()
    return FeatureFrame(
        frame=frame,
        features=features,
        descriptors=descriptors,
        indicators=list(b.indicators),
        unavailable=dict(sorted(b.unavailable.items())),
        as_of=as_of,
    )
