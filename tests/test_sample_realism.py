"""The sample matches the declared schema and carries the realism the pipeline relies on."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from engine.sample import GROUND_TRUTH, MANIFEST, SampleSummary
from engine.sample.generate import KEYS
from engine.sample.personas import NAMES
from engine.sources import DTYPES
from engine.workspace import Workspace

COUNTRY = {
    "EU-DE": "DE", "EU-FR": "FR", "EU-ES": "ES", "EU-IT": "IT", "EU-NL": "NL",
    "UK": "GB", "US-CA": "US", "US-NY": "US", "SG": "SG", "BR": "BR",
}  # fmt: skip


def _read(ws: Workspace, name: str) -> pl.DataFrame:
    return pl.read_parquet(ws.source_path(name))


def test_every_declared_source_has_exactly_its_columns_and_types(sample_ws: Workspace) -> None:
    for name, spec in sample_ws.config.sources.items():
        df = _read(sample_ws, name)
        assert list(df.columns) == list(spec.columns), name
        for col, cspec in spec.columns.items():
            assert df.schema[col] == DTYPES[cspec.type], (name, col)
        assert set(df["jurisdiction"].unique()) <= set(sample_ws.config.jurisdictions)


def test_rows_sorted_by_jurisdiction_then_key(sample_ws: Workspace) -> None:
    for name in sample_ws.config.sources:
        df = _read(sample_ws, name)
        keyed = df.select("jurisdiction", KEYS[name])
        assert keyed.equals(keyed.sort("jurisdiction", KEYS[name])), name


def test_country_matches_jurisdiction(sample_ws: Workspace) -> None:
    crm = _read(sample_ws, "crm")
    expected = crm["jurisdiction"].replace_strict(COUNTRY)
    assert (crm["country"] == expected).all()


def test_every_persona_in_every_jurisdiction(sample_workspace: Path, sample_ws: Workspace) -> None:
    truth = pl.read_parquet(sample_workspace / "data" / GROUND_TRUTH)
    assert truth.columns == ["customer_id", "persona", "planted_pep", "planted_sanctions"]
    crm = _read(sample_ws, "crm").unique("customer_id")
    both = truth.join(crm.select("customer_id", "jurisdiction"), on="customer_id")
    combos = both.select("jurisdiction", "persona").unique()
    assert combos.height == len(NAMES) * len(sample_ws.config.jurisdictions)


def test_identifiers_unique_and_realistic(
    sample_ws: Workspace, sample_summary: SampleSummary
) -> None:
    crm = _read(sample_ws, "crm")
    clean = crm.filter(~pl.col("customer_id").is_duplicated())
    for col in ("customer_id", "full_name", "email", "phone", "national_id"):
        values = clean[col].drop_nulls()
        assert values.n_unique() == values.len(), col
    emails = clean["email"].drop_nulls()
    assert emails.str.contains(r"^[a-z]+\.[a-z]+\d+@example\.(com|org|net)$").mean() > 0.99  # type: ignore[operator]
    assert clean["phone"].str.contains(r"^\+[1-9]\d{8,13}$").all()
    assert (
        clean.filter(pl.col("jurisdiction") == "EU-ES")["national_id"]
        .str.contains(r"^\d{8}[A-Z]$")
        .all()
    )
    assert (
        clean.filter(pl.col("jurisdiction") == "US-NY")["national_id"]
        .str.contains(r"^\d{3}-\d{2}-\d{4}$")
        .all()
    )
    assert clean["full_name"].str.len_chars().min() >= 12  # type: ignore[operator]


def test_privacy_and_screening_signals_at_realistic_rates(
    sample_ws: Workspace, sample_summary: SampleSummary, sample_as_of: object
) -> None:
    crm = _read(sample_ws, "crm")
    n = sample_summary.customers
    age = (pl.lit(sample_summary.as_of) - pl.col("date_of_birth")).dt.total_days() / 365.25
    minors = crm.filter((age >= 13) & (age < 18)).height
    assert 0.003 * n <= minors <= 0.03 * n
    old = crm.filter(
        (pl.lit(sample_summary.as_of) - pl.col("last_activity_date")).dt.total_days() > 7 * 365
    ).height
    assert 0.01 * n <= old <= 0.06 * n
    gpc = crm.group_by("jurisdiction").agg(pl.col("gpc_signal").mean()).sort("gpc_signal")
    assert gpc["jurisdiction"][-1] == "US-CA"
    assert (
        crm.filter(~pl.col("jurisdiction").str.starts_with("US"))[
            "ccpa_do_not_sell_share"
        ].null_count()
        == crm.filter(~pl.col("jurisdiction").str.starts_with("US")).height
    )
    assert crm["religion"].drop_nulls().len() > 0 and crm["health_note"].drop_nulls().len() > 0
    pr = _read(sample_ws, "privacy_requests")
    assert 0.01 * n <= pr.height <= 0.03 * n
    assert set(pr["request_type"]) <= {"erasure", "deletion", "opt_out", "access"}
    sc = _read(sample_ws, "screening")
    assert 0.004 <= sc["pep"].mean() <= 0.025  # type: ignore[operator]
    assert sc["sanctions_hit"].sum() <= 0.01 * n


def test_transactions_about_24_per_customer_in_last_year(
    sample_ws: Workspace, sample_summary: SampleSummary
) -> None:
    tx = _read(sample_ws, "transactions")
    per_customer = tx.height / sample_summary.customers
    assert 20 <= per_customer <= 30
    last_year = tx.filter(pl.col("ts") < pl.lit(sample_summary.as_of).cast(pl.Datetime("us")))
    assert last_year.height >= tx.height * 0.99  # the rest is planted future dirt


def test_manifest_holds_counts_and_rows_but_no_personal_values(
    sample_workspace: Path, sample_ws: Workspace, sample_summary: SampleSummary
) -> None:
    text = (sample_workspace / "data" / MANIFEST).read_text()
    manifest = json.loads(text)
    assert manifest["planted_by_kind"] == sample_summary.planted_by_kind()
    assert {p["kind"] for p in manifest["planted"]} >= {
        "null_required", "malformed_email", "duplicate_id", "out_of_range",
        "future_date", "orphan",
    }  # fmt: skip
    crm = _read(sample_ws, "crm").head(200)
    for col in ("email", "full_name", "phone", "national_id"):
        for value in crm[col].drop_nulls().to_list():
            assert value not in text
