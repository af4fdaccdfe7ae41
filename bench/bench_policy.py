"""Policy cost does not grow with rows: decision time for 1 vs 10 sources, enforcement
overhead at 10k vs 1M rows. Prints figures; asserts nothing (speed is not a test).

    .venv/bin/python bench/bench_policy.py [--rows 10000,1000000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from engine.enforce import enforce
from engine.policy import EmbeddedEngine, decide, default_bundle_path, load_bundle
from engine.policy.decide import DECISION_PATH
from engine.pseudonym import Keyring, Pseudonymiser
from engine.request import RefreshRequest
from engine.sources import SourceAccounting, SourceFrame, SourceFrames
from engine.workspace import Workspace

AS_OF = date(2026, 11, 23)
REPO = Path(__file__).resolve().parent.parent
CLASSES = [
    "quasi_identifier",
    "financial",
    "behavioural",
    "consent",
    "screening",
    "special_category",
    "sensitive_pi",
    "outcome",
]


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs), min(runs)


def decision_input(n_sources: int) -> dict[str, Any]:
    sources = {}
    for i in range(n_sources):
        name = "crm" if i == 0 else f"source_{i}"
        cols = {"customer_id": "direct_identifier", "jurisdiction": "technical"}
        cols.update({f"c{j}": CLASSES[(i + j) % len(CLASSES)] for j in range(12)})
        sources[name] = {
            "columns": cols,
            "subject_column": "customer_id",
            "record_date_column": "c0",
            "record_date_type": "date",
        }
    return {
        "actor": {
            "id": "a",
            "roles": ["regional_analyst"],
            "home_region": "EU",
            "jurisdictions": ["EU-DE"],
        },
        "purpose": "marketing_segmentation",
        "jurisdiction": "EU-DE",
        "country": "DE",
        "as_of": AS_OF.isoformat(),
        "sources": sources,
    }


def bench_decisions(repeat: int) -> None:
    engine = EmbeddedEngine(load_bundle(default_bundle_path()))
    print("decision time (embedded regorus, median / min of", repeat, "runs)")
    for n in (1, 10):
        inp = decision_input(n)
        med, best = timed(lambda inp=inp: engine.query(DECISION_PATH, inp), repeat)
        print(f"  {n:>2} source(s), 14 columns each: {med * 1000:7.1f} ms  (min {best * 1000:.1f})")


def workspace() -> Workspace:
    root = Path(tempfile.mkdtemp(prefix="bench-policy-"))
    shutil.copy(REPO / "engine" / "defaults" / "pgov.toml", root / "pgov.toml")
    return Workspace.open(root)


def _ids(prefix: str, values: np.ndarray, width: int) -> pl.Series:
    """Zero-padded string ids, vectorised (no Python loop over rows)."""
    return prefix + pl.Series(values).cast(pl.String).str.zfill(width)


def crm_frame(n: int, rng: np.random.Generator) -> pl.DataFrame:
    idx = np.arange(n)
    born = np.datetime64("1950-01-01") + rng.integers(0, 60 * 365, n).astype("timedelta64[D]")
    active = np.datetime64("2026-11-01") - rng.integers(0, 1000, n).astype("timedelta64[D]")
    return pl.DataFrame(
        {
            "_row": idx + 1,
            "customer_id": _ids("C", idx, 8),
            "jurisdiction": "EU-DE",
            "full_name": "x",
            "email": _ids("c", idx, 1) + "@example.test",
            "phone": "+4930123456",
            "date_of_birth": born,
            "national_id": None,
            "address": None,
            "postcode": _ids("", 10000 + idx % 89999, 5),
            "country": "DE",
            "precise_geolocation": None,
            "customer_type": "retail",
            "employment_type": "salaried",
            "occupation": None,
            "business_sector": None,
            "business_size": None,
            "annual_income": rng.uniform(10_000, 200_000, n),
            "signup_date": date(2020, 1, 1),
            "last_activity_date": active,
            "lawful_basis_marketing": rng.choice(["consent", "legitimate_interest", "none"], n),
            "marketing_consent": rng.random(n) < 0.8,
            "marketing_consent_at": None,
            "consent_withdrawn": rng.random(n) < 0.03,
            "objection_direct_marketing": rng.random(n) < 0.05,
            "ccpa_do_not_sell_share": False,
            "gpc_signal": False,
            "limit_sensitive_pi": False,
            "do_not_call": False,
            "religion": None,
            "health_note": None,
        }
    ).with_columns(
        pl.col("date_of_birth").cast(pl.Date),
        pl.col("last_activity_date").cast(pl.Date),
        pl.col("signup_date").cast(pl.Date),
        pl.col("marketing_consent_at").cast(pl.Datetime("us")),
        *(
            pl.col(c).cast(pl.String)
            for c in (
                "national_id",
                "address",
                "precise_geolocation",
                "occupation",
                "business_sector",
                "business_size",
                "religion",
                "health_note",
            )
        ),
    )


def txn_frame(n: int, customers: int, rng: np.random.Generator) -> pl.DataFrame:
    ts = np.datetime64("2026-11-01T00:00:00", "us") - (
        rng.integers(0, 1200 * 86400, n) * 1_000_000
    ).astype("timedelta64[us]")
    return pl.DataFrame(
        {
            "_row": np.arange(n) + 1,
            "txn_id": _ids("T", np.arange(n), 9),
            "customer_id": _ids("C", rng.integers(0, customers, n), 8),
            "jurisdiction": "EU-DE",
            "ts": ts,
            "amount": rng.uniform(1, 500, n),
            "direction": "debit",
            "merchant_category": "grocery",
            "channel": "card",
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("us")))


def frames(ws: Workspace, tables: dict[str, pl.DataFrame]) -> SourceFrames:
    out = {}
    for name, spec in ws.config.sources.items():
        if name not in tables:
            continue
        df = tables[name]
        out[name] = SourceFrame(
            name,
            spec,
            df,
            pl.DataFrame(),
            "0" * 64,
            spec.path,
            SourceAccounting(name, df.height, df.height, 0),
        )
    return SourceFrames("EU-DE", AS_OF, out)


def bench_enforcement(rows: list[int]) -> None:
    ws = workspace()
    plan = decide(
        ws,
        RefreshRequest(
            actor="analyst-eu", jurisdiction="EU-DE", purpose="marketing_segmentation", as_of=AS_OF
        ),
    )
    plan = plan.model_copy(
        update={"sources": {k: v for k, v in plan.sources.items() if k in ("crm", "transactions")}}
    )
    pseudo = Pseudonymiser(Keyring.generate())
    rng = np.random.default_rng(7)
    print("enforcement (marketing, EU-DE; crm = rows/10 customers + transactions = rows)")
    for n in rows:
        customers = max(n // 10, 1)
        sf = frames(
            ws, {"crm": crm_frame(customers, rng), "transactions": txn_frame(n, customers, rng)}
        )

        # Baseline: the same frames tokenised and collected with no policy at all.
        def baseline(sf: SourceFrames = sf) -> None:
            for f in sf.frames.values():
                f.frame.select(
                    pseudo.token_expr("customer_id", "marketing"), pl.exclude("customer_id")
                )

        base, _ = timed(baseline, 3)
        med, _ = timed(lambda sf=sf: enforce(sf, plan, pseudo, AS_OF), 3)
        total = n + customers
        print(
            f"  {n:>9,} txn rows + {customers:>8,} customers: enforce {med:6.2f} s "
            f"({total / med / 1e6:5.2f} M rows/s); tokenise-only baseline {base:6.2f} s; "
            f"policy overhead {med - base:+6.2f} s"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="10000,1000000")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    bench_decisions(args.repeat)
    bench_enforcement([int(x) for x in args.rows.split(",")])


if __name__ == "__main__":
    main()
