"""Pseudonymisation throughput: tokens (or values) per second per method on N values.

    .venv/bin/python bench/bench_pseudonym.py [--n 10000000] [--unique-share 1.0]

Prints one line per method. Figures, not assertions: speed is hardware-dependent.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import date

import polars as pl

from engine.pseudonym import Keyring, Pseudonymiser, generalise_expr, normalise_expr


def _frame(n: int, unique: int) -> pl.DataFrame:
    i = pl.int_range(0, n, eager=True) % unique
    return pl.DataFrame({"i": i}).select(
        customer_id=pl.format("CUST-{}", pl.col("i").cast(pl.String).str.zfill(9)),
        email=pl.format(" User.{}@Example.COM ", pl.col("i")),
        phone=pl.format("07{}", (pl.col("i") % 1_000_000_000).cast(pl.String).str.zfill(9)),
        national_id=pl.format("AB-{}-C", pl.col("i").cast(pl.String).str.zfill(6)),
        country=pl.lit("UK"),
        dob=pl.date(1950, 1, 1) + pl.duration(days=pl.col("i") % 25_000),
    )


def _time(label: str, n: int, fn: Callable[[], pl.DataFrame]) -> None:
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    print(f"{label:<44} {n / dt / 1e6:8.2f} M/s   {dt:7.2f} s   ({out.height:,} rows)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--unique-share", type=float, default=1.0)
    ap.add_argument("--phone-n", type=int, default=1_000_000, help="phone parsing is slow")
    args = ap.parse_args()
    n = args.n
    unique = max(1, int(n * args.unique_share))
    df = _frame(n, unique)
    p = Pseudonymiser(Keyring.generate())
    print(f"n={n:,} unique={unique:,} threads={pl.thread_pool_size()}")
    _time(
        "marketing HMAC customer_id",
        n,
        lambda: df.select(p.token_expr("customer_id", "marketing")),
    )
    _time(
        "marketing HMAC email (with normalisation)",
        n,
        lambda: df.select(p.token_expr("email", "marketing", "email")),
    )
    _time("kyc AES-SIV customer_id", n, lambda: df.select(p.token_expr("customer_id", "kyc")))
    _time("normalise email", n, lambda: df.select(normalise_expr("email", "email")))
    _time(
        "normalise national_id", n, lambda: df.select(normalise_expr("national_id", "national_id"))
    )
    small = df.head(args.phone_n)
    _time(
        f"normalise phone:country ({args.phone_n:,}, all unique)",
        small.height,
        lambda: small.select(normalise_expr("phone", "phone:country")),
    )
    rep = df.select(pl.col("phone").head(1000).repeat_by(n // 1000).explode(), pl.col("country"))
    _time(
        "normalise phone:country (1,000 distinct)",
        n,
        lambda: rep.select(normalise_expr("phone", "phone:country")),
    )
    _time(
        "generalise age_band",
        n,
        lambda: df.select(generalise_expr("dob", "age_band", {}, date(2026, 11, 23))),
    )


if __name__ == "__main__":
    main()
