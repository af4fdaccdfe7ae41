"""Pseudonymisation throughput: tokens (or values) per second per method on N values.

    .venv/bin/python bench/bench_pseudonym.py [--n 10000000] [--unique-share 1.0]
        [--refresh-customers 200000] [--vault-only] [--repeats 3] [--first-repeats N]
        [--enforce-ws DIR]

`--vault-only` runs just the kyc token vault figures: N values tokenised and filed three
ways (first refresh: every value new; second: every value known; 5 % new), median of
`--repeats` runs, then, with `--enforce-ws` (e.g. /work/bigdata/ws1m, read only: its config
and key are copied to a temporary workspace whose sources point at its files), the EU-DE
kyc_aml enforce stage (sources excluded) with the vault (first and steady refresh) and with
AES-SIV tokens, as before the vault.

Prints one line per method: wall-clock rate, and CPU rate (values per CPU-second summed over
threads, which stays meaningful when other work shares the machine), then the share of one
refresh's wall time spent pseudonymising (enforcement with real keys minus enforcement with
an identity pseudonymiser, over the whole refresh). Figures, not assertions.
"""

from __future__ import annotations

# First, before Polars: importing the engine sets the allocator every `pgov` process has
# (engine/allocator.py); Polars imported first would leave its own defaults in force.
import engine  # noqa: F401

# isort: split

import argparse
import time
from collections.abc import Callable
from datetime import date

import polars as pl

from engine.logs import configure_logging
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


def _select(df: pl.DataFrame, expr: pl.Expr) -> pl.DataFrame:
    """Lazy + streaming, as a refresh runs: morsels spread over every core (an eager select
    over one chunk would hash on one thread)."""
    return df.lazy().select(expr).collect(engine="streaming")


def _time(label: str, n: int, fn: Callable[[], pl.DataFrame]) -> None:
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"{label:<46} {n / dt / 1e6:7.2f} M/s wall  {n / cpu / 1e6:7.2f} M/cpu-s"
        f"  {dt:7.2f} s  ({out.height:,} rows)"
    )


class _Identity:
    """Stand-in pseudonymiser: same plan, no cryptography (to isolate its cost)."""

    def token_expr(self, column: str, domain: str, normaliser: str | None = None) -> pl.Expr:
        return pl.col(column).cast(pl.String)


def _refresh_share(customers: int) -> None:
    import tempfile
    from pathlib import Path

    from engine.config import Purpose
    from engine.enforce import enforce
    from engine.policy.decide import decide, engine_for
    from engine.pseudonym.lifecycle import init_keys
    from engine.refresh import run_refresh
    from engine.request import RefreshRequest
    from engine.sample import generate
    from engine.sample.workspace import init_workspace
    from engine.sources import load_sources
    from engine.workspace import Workspace

    as_of = date(2026, 11, 1)
    root = Path(tempfile.mkdtemp(prefix="pgov-bench-"))
    init_workspace(root, "parquet")
    ws = Workspace.open(root)
    init_keys(ws)
    generate(customers, 7, ws.data_dir, "parquet", as_of=as_of)
    for purpose, actor in [(Purpose.MARKETING, "analyst-eu"), (Purpose.KYC_AML, "kyc-ops")]:
        req = RefreshRequest(actor=actor, jurisdiction="EU-DE", purpose=purpose, as_of=as_of)
        t0 = time.perf_counter()
        try:
            res = run_refresh(ws, req)
        except Exception as exc:  # a bench reports, it does not stop
            print(f"refresh {purpose.value}: {type(exc).__name__}")
            continue
        total = time.perf_counter() - t0
        sources = load_sources(ws, req.jurisdiction, as_of)
        plan = decide(ws, req, engine_for(ws))
        t1 = time.perf_counter()
        enforce(sources, plan, Pseudonymiser(Keyring.load(ws)), as_of)
        real = time.perf_counter() - t1
        t2 = time.perf_counter()
        enforce(sources, plan, _Identity(), as_of)
        ident = time.perf_counter() - t2
        rows = sum(a.input_rows for a in res.accounting.values())
        print(
            f"refresh EU-DE {purpose.value:<26} {total:7.2f} s, {rows:,} source rows; "
            f"pseudonymising ~{max(real - ident, 0):.2f} s = "
            f"{100 * max(real - ident, 0) / total:.1f}% of the refresh"
        )


# Calling codes of the countries the sample's jurisdictions name.
_CALLING = {"BR": "55", "DE": "49", "ES": "34", "FR": "33", "GB": "44", "IT": "39", "NL": "31",
            "SG": "65", "US": "1"}  # fmt: skip


def _international_phones(n: int) -> pl.DataFrame:
    """n distinct international numbers of every covered country, some with spaces or
    dashes, lengths from too short to too long (what the vectorised fast path takes)."""
    regions = sorted(_CALLING)
    i = pl.int_range(n, eager=True)
    region = (i % len(regions)).replace_strict(list(range(len(regions))), regions)
    cc = region.replace_strict(_CALLING)
    length = 6 + (i * 7919 % 8)
    # National numbers start 2-9 (a leading 0 or 1 is a trunk prefix: libphonenumber's).
    lead = (2 + i % 8).cast(pl.String)
    digits = lead + (i * 2654435761 % 10**14).cast(pl.String).str.zfill(14)
    national = pl.select(pl.lit(digits).str.slice(0, pl.lit(length)).alias("n")).to_series()
    sep = (i % 3).replace_strict([0, 1, 2], ["", " ", "-"])
    phone = pl.select(
        pl.concat_str(pl.lit("+"), pl.lit(cc), pl.lit(sep), pl.lit(national))
    ).to_series()
    return pl.DataFrame({"phone": phone, "country": region})


def _phone_agreement(df: pl.DataFrame) -> None:
    """Fast path + fallback against libphonenumber row by row (the slow reference)."""
    from engine.pseudonym.normalise import _region, e164

    # Eager: row order must line up with the reference.
    out = df.select(normalise_expr("phone", "phone:country"))["phone"].to_list()
    want = [e164(v, _region(c, None)) for v, c in df.iter_rows()]
    bad = sum(a != b for a, b in zip(out, want, strict=True))
    print(f"  phone fast path vs libphonenumber: {df.height - bad:,}/{df.height:,} agree")
    if bad:
        raise SystemExit("phone fast path disagrees with libphonenumber")


def _run(fn: Callable[[], int]) -> tuple[float, float, int]:
    c0, t0 = time.process_time(), time.perf_counter()
    n = fn()
    return time.perf_counter() - t0, time.process_time() - c0, n


def _report(label: str, n: int, runs: list[tuple[float, float, int]]) -> None:
    import os
    import statistics

    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    print(
        f"{label:<44} {n / wall / 1e6:6.2f} M/s wall  {n / cpu / 1e6:6.2f} M/cpu-s  "
        f"median {wall:6.2f} s wall {cpu:6.2f} s cpu of {len(runs)}  "
        f"(encrypted {runs[0][2]:,}; load {os.getloadavg()[0]:.1f})"
    )


def _vault_bench(n: int, repeats: int, first_repeats: int) -> None:
    """kv tokens + vault filing on n distinct ids: all new, all known, 5 % new."""
    import shutil
    import tempfile
    from pathlib import Path

    from engine.pseudonym.vault import Vault

    ring = Keyring.generate()
    df = _frame(n, n).select("customer_id")
    newer = _frame(n, n).select(
        pl.format("CUST-{}", (pl.int_range(0, n) + n // 20).cast(pl.String).str.zfill(9)).alias(
            "customer_id"
        )
    )  # the last 95 % of df plus 5 % never seen

    def refresh(vault: Vault, frame: pl.DataFrame) -> int:
        p = Pseudonymiser(ring, vault=vault)
        _select(frame, p.token_expr("customer_id", "kyc"))
        return sum(w.added for w in p.flush())

    first, known, five = [], [], []
    root = Path(tempfile.mkdtemp(prefix="pgov-vault-"))
    try:
        for i in range(max(repeats, first_repeats)):
            if i < first_repeats or i == 0:
                shutil.rmtree(root / "v", ignore_errors=True)
                first.append(_run(lambda: refresh(Vault(root / "v"), df)))
            if i < repeats:
                known.append(_run(lambda: refresh(Vault(root / "v"), df)))
        for _ in range(repeats):
            # Each 5 % run starts from the vault of df alone (a copy: the first refresh is
            # the expensive step and is timed above).
            shutil.rmtree(root / "w", ignore_errors=True)
            shutil.copytree(root / "v", root / "w")
            five.append(_run(lambda: refresh(Vault(root / "w"), newer)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    _report("kyc vault, first refresh (all new)", n, first)
    _report("kyc vault, second refresh (all known)", n, known)
    _report("kyc vault, 5 % new", n, five)

    def tokens_only() -> int:
        p = Pseudonymiser(ring)  # a fresh memo each run, as each refresh has
        return _select(df, p.token_expr("customer_id", "kyc")).height

    _report("kyc kv token only (no filing)", n, [_run(tokens_only) for _ in range(repeats)])


def _enforce_bench(src: str, repeats: int) -> None:
    """EU-DE kyc_aml enforce on a copy of `src`'s config whose sources point at its files."""
    import shutil
    import tempfile
    from pathlib import Path

    from engine.config import Purpose
    from engine.enforce import enforce
    from engine.policy.decide import decide, engine_for
    from engine.pseudonym.filing import file_tokens
    from engine.request import RefreshRequest
    from engine.sources import load_sources
    from engine.workspace import Workspace

    base = Path(src).resolve()
    root = Path(tempfile.mkdtemp(prefix="pgov-enforce-"))
    try:
        from engine.pseudonym.keyring import write_private

        master = base / "keys" / "master.key"
        # The source workspace's key if it has one, else a fresh one (timings do not care).
        doc = master.read_bytes() if master.is_file() else Keyring.generate().document()
        write_private(root / "keys" / "master.key", doc, exclusive=True)
        text = (base / "pgov.toml").read_text()
        (root / "pgov.toml").write_text(text.replace('path = "data/', f'path = "{base}/data/'))
        ws = Workspace.open(root)
        as_of = date(2026, 11, 1)
        req = RefreshRequest(
            actor="kyc-ops", jurisdiction="EU-DE", purpose=Purpose.KYC_AML, as_of=as_of
        )
        sources = load_sources(ws, "EU-DE", as_of)
        plan = decide(ws, req, engine_for(ws))
        rows = sum(f.frame.height for f in sources.frames.values())
        ring = Keyring.load(ws)

        def run(scheme: str) -> int:
            p = Pseudonymiser(ring, scheme=scheme, vault=Vault(root / "vault"))
            enforce(sources, plan, p, as_of)
            return sum(w.added for w in file_tokens(ws, p, "bench"))

        from engine.pseudonym.vault import Vault

        first = []
        for _ in range(repeats):
            shutil.rmtree(root / "vault", ignore_errors=True)
            first.append(_run(lambda: run("vault")))
        steady = [_run(lambda: run("vault")) for _ in range(repeats)]
        siv = [_run(lambda: run("siv")) for _ in range(repeats)]
        print(f"EU-DE kyc_aml enforce on {base} ({rows:,} source rows):")
        _report("  enforce + vault, first refresh", rows, first)
        _report("  enforce + vault, steady refresh", rows, steady)
        _report("  enforce with AES-SIV tokens (before)", rows, siv)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--unique-share", type=float, default=1.0)
    ap.add_argument("--phone-n", type=int, default=200_000, help="phone parsing is slow")
    ap.add_argument("--refresh-customers", type=int, default=200_000, help="0: skip")
    ap.add_argument("--vault-only", action="store_true", help="only the kyc vault figures")
    ap.add_argument("--repeats", type=int, default=3, help="vault runs per figure (median)")
    ap.add_argument(
        "--first-repeats",
        type=int,
        default=0,
        help="runs of the first refresh (default: --repeats)",
    )
    ap.add_argument("--enforce-ws", default="", help="workspace for the enforce-stage figure")
    args = ap.parse_args()
    configure_logging(None, None, "WARNING")  # figures on stdout, nothing else
    if args.vault_only:
        import os

        print(f"n={args.n:,} threads={pl.thread_pool_size()} load={os.getloadavg()[0]:.1f}")
        _vault_bench(args.n, args.repeats, args.first_repeats or args.repeats)
        if args.enforce_ws:
            _enforce_bench(args.enforce_ws, args.repeats)
        return
    n = args.n
    unique = max(1, int(n * args.unique_share))
    df = _frame(n, unique)
    p = Pseudonymiser(Keyring.generate())
    import os

    print(
        f"n={n:,} unique={unique:,} threads={pl.thread_pool_size()} load={os.getloadavg()[0]:.1f}"
    )
    _time(
        "marketing HMAC customer_id",
        n,
        lambda: _select(df, p.token_expr("customer_id", "marketing")),
    )
    _time(
        "marketing HMAC email (with normalisation)",
        n,
        lambda: _select(df, p.token_expr("email", "marketing", "email")),
    )
    siv = Pseudonymiser(p._keyring, scheme="siv")
    _time("kyc AES-SIV customer_id", n, lambda: _select(df, siv.token_expr("customer_id", "kyc")))
    _time(
        "kyc kv token customer_id (no filing)",
        n,
        lambda: _select(df, p.token_expr("customer_id", "kyc")),
    )
    _time("normalise email", n, lambda: _select(df, normalise_expr("email", "email")))
    _time(
        "normalise national_id",
        n,
        lambda: _select(df, normalise_expr("national_id", "national_id")),
    )
    small = df.head(args.phone_n)
    _time(
        f"normalise phone:country ({args.phone_n:,}, all unique)",
        small.height,
        lambda: _select(small, normalise_expr("phone", "phone:country")),
    )
    intl = _international_phones(n)
    _time(
        f"normalise international phones ({n:,}, fast path)",
        n,
        lambda: _select(intl, normalise_expr("phone", "phone:country")),
    )
    _phone_agreement(intl.head(args.phone_n))
    rep = df.select(pl.col("phone").head(1000).repeat_by(n // 1000).explode(), pl.col("country"))
    _time(
        "normalise phone:country (1,000 distinct)",
        n,
        lambda: _select(rep, normalise_expr("phone", "phone:country")),
    )
    _time(
        "generalise age_band",
        n,
        lambda: _select(df, generalise_expr("dob", "age_band", {}, date(2026, 11, 23))),
    )
    if args.refresh_customers:
        _refresh_share(args.refresh_customers)


if __name__ == "__main__":
    main()
