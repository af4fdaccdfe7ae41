"""Bad feature declarations exit 2 naming the key path with nothing written; validate's
quarantine thresholds; refresh_failed in the audit log; robustness on real-looking data."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from test_byod_support import AS_OF, credit_table, pgov

from engine.errors import ExitCode
from engine.features import FeatureFrame
from engine.segment.profiles import _modes
from engine.segment.strategies import informative


@pytest.fixture()
def lender(tmp_path: Path) -> Path:
    return credit_table(tmp_path / "ws", n=400)


def _edit(ws: Path, old: str, new: str) -> None:
    toml = ws / "pgov.toml"
    text = toml.read_text()
    assert old in text
    toml.write_text(text.replace(old, new, 1))


def _refresh(ws: Path, purpose: str = "credit_risk_segmentation") -> tuple[int, str]:
    return pgov(
        "refresh", "-w", str(ws), "-j", "UK", "-p", purpose, "-a", "analyst", "--as-of", AS_OF
    )  # fmt: skip


def _nothing_written(ws: Path) -> None:
    assert not any((ws / "versions").rglob("manifest.json"))


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        (  # a feature on an undeclared column
            'column = "monthly_income"\ntransform = "log1p"',
            'column = "salary"\ntransform = "log1p"',
            "features.income_log.column",
        ),
        (  # a transform on the wrong type
            'column = "employment"\nnouns',
            'column = "employment"\ntransform = "log1p"\nnouns',
            "features.employment.transform",
        ),
        (  # a per-subject aggregation needs a date to window on
            'column = "late_90d"\n',
            'column = "late_90d"\ntransform = "sum"\ntime_column = "rating"\n',
            "features.late_log.time_column",
        ),
        (  # a transform that does not exist
            'transform = "clip"\nclip = [0, 5]',
            'transform = "winsorise"\nclip = [0, 5]',
            "features.debt_ratio.transform",
        ),
        (  # the subjects source must be declared
            'subjects = "applicants"',
            'subjects = "customers"',
            "subjects",
        ),
    ],
)
def test_bad_declaration_exits_2_naming_the_key_path(
    lender: Path, old: str, new: str, path: str
) -> None:
    _edit(lender, old, new)
    code, out = _refresh(lender)
    assert code == ExitCode.USAGE, out
    assert path in out
    _nothing_written(lender)


def test_feature_for_a_purpose_the_policy_forbids_exits_2_at_refresh(lender: Path) -> None:
    # kyc_aml never receives outcome columns: a default-rate outcome declared for it
    # contradicts the purpose, whatever the jurisdiction.
    _edit(
        lender,
        'purposes = ["credit_risk_segmentation", "marketing_segmentation"]',
        'purposes = ["credit_risk_segmentation", "marketing_segmentation", "kyc_aml"]',
    )
    code, out = pgov(
        "refresh", "-w", str(lender), "-j", "UK", "-p", "kyc_aml", "-a", "officer",
        "--as-of", AS_OF,
    )  # fmt: skip
    assert code == ExitCode.USAGE, out
    assert "features.default_rate.purposes" in out
    _nothing_written(lender)
    text = "".join(
        p.read_text(errors="ignore") for p in (lender / "audit").rglob("*") if p.is_file()
    )
    assert "refresh_failed" in text and "features.default_rate.purposes" in text


def test_feature_declared_twice_across_files_exits_2(lender: Path) -> None:
    (lender / "features.toml").write_text(
        '[features.rating]\nsource = "applicants"\ncolumn = "rating"\n', encoding="utf-8"
    )
    code, out = _refresh(lender)
    assert code == ExitCode.USAGE, out
    assert "features.rating" in out and "declared twice" in out
    _nothing_written(lender)


def test_kyc_fact_declared_twice_exits_2(lender: Path) -> None:
    _edit(
        lender,
        'column = "rating"\nfill = "median"',
        'column = "rating"\nfill = "median"\nkyc_fact = "score"',
    )
    _edit(
        lender,
        'column = "open_lines"\nfill = 0.0',
        'column = "open_lines"\nfill = 0.0\nkyc_fact = "score"',
    )
    code, out = _refresh(lender)
    assert code == ExitCode.USAGE, out
    assert "features.rating.kyc_fact: 'score' is already declared by features.lines" in out


def test_validate_defaults_to_today_and_refuses_a_wholly_quarantined_source(lender: Path) -> None:
    before = date.today()
    code, out = pgov("validate", "-w", str(lender), "-j", "UK", "--json")
    after = date.today()  # the run may cross midnight: either day is "today"
    assert code == 0, out
    assert json.loads(out)["as_of"] in {before.isoformat(), after.isoformat()}
    # The boolean outcome arrives as Yes/No text: every row fails its contract.
    data = lender / "data" / "applicants.csv"
    frame = pl.read_csv(data).with_columns(
        pl.when(pl.col("defaulted")).then(pl.lit("Yes")).otherwise(pl.lit("No")).alias("defaulted")
    )
    frame.write_csv(data)
    code, out = pgov("validate", "-w", str(lender), "-j", "UK")
    assert code == ExitCode.BAD_INPUT, out
    assert "applicants" in out and "all 400 rows quarantined" in out


def test_validate_refuses_quarantine_above_the_declared_share(lender: Path) -> None:
    data = lender / "data" / "applicants.csv"
    frame = pl.read_csv(data)
    bad = frame.with_columns(
        pl.when(pl.int_range(pl.len()) < 40)
        .then(-1)
        .otherwise(pl.col("open_lines"))
        .alias("open_lines")
    )
    bad.write_csv(data)  # 10% of rows break `min = 0`
    code, out = pgov("validate", "-w", str(lender), "-j", "UK")
    assert code == ExitCode.BAD_INPUT, out
    assert "sources.applicants.max_quarantine_share" in out
    _edit(
        lender,
        'subject_column = "applicant_no"',
        'subject_column = "applicant_no"\nmax_quarantine_share = 0.2',
    )
    code, out = pgov("validate", "-w", str(lender), "-j", "UK")
    assert code == 0, out


def test_refresh_failing_after_allow_records_refresh_failed(lender: Path) -> None:
    # Every cluster feature constant: the refresh is allowed, then segmentation has nothing.
    frame = pl.read_csv(lender / "data" / "applicants.csv")
    const = [
        "monthly_income", "debt_ratio", "revolving_util", "open_lines", "late_90d", "rating",
    ]  # fmt: skip
    frame.with_columns(pl.lit(1).alias(c) for c in const).write_csv(
        lender / "data" / "applicants.csv"
    )
    code, out = _refresh(lender)
    assert code == ExitCode.BAD_INPUT, out
    assert "expected at least one feature with role 'cluster'" in out
    log = (lender / "audit").rglob("*")
    text = "".join(p.read_text(errors="ignore") for p in log if p.is_file())
    assert "refresh_allowed" in text and "refresh_failed" in text
    assert '"stage":"segment"' in text.replace(" ", "")


def test_near_constant_feature_is_dropped_with_its_reason() -> None:
    n = 500
    rng = np.random.default_rng(1)
    frame = pl.DataFrame(
        {
            "customer_id": [f"t{i:04d}" for i in range(n)],
            "signal": rng.normal(0, 1, n),
            # float rounding around a level: CV ~1e-12, yet std far above 1e-12
            "noise": 1e6 + rng.normal(0, 1e-6, n),
            "flat": np.full(n, 3.0),
        }
    )
    ff = FeatureFrame(frame=frame, features=["signal", "noise", "flat"], descriptors=[])
    kept, dropped = informative(ff, ff.features)
    assert kept == ["signal"]
    assert dropped["noise"].startswith("near-constant") and dropped["flat"].startswith("constant")


def test_descriptor_shares_count_missing_values() -> None:
    # 1% students and 99% unknown: the persona is not "student (100%)".
    frame = pl.DataFrame(
        {
            "persona_id": [0] * 200,
            "employment": ["student", "student"] + [None] * 198,
        }
    )
    modes = _modes(frame, ["employment"], k=1)
    value, share = modes[0]["employment"]
    assert value == "(missing)" and share == pytest.approx(0.99)


def test_features_list_names_the_rule_that_removed_an_input(lender: Path) -> None:
    _edit(
        lender,
        'column = "monthly_income"\ntransform = "log1p"',
        'column = "monthly_income"\ntransform = "log1p"\nkyc_fact = "income"',
    )
    code, out = pgov(
        "features", "list", "-w", str(lender), "-j", "UK", "-p", "kyc_aml", "-a", "officer",
        "--as-of", AS_OF, "--json",
    )  # fmt: skip
    assert code == 0, out
    by = {f["feature"]: f for f in json.loads(out)["features"]}
    assert not by["default_rate"]["available"]
    assert by["default_rate"]["why"] == "not declared for kyc_aml"
    assert by["income_log"]["available"]
    # Marketing consent columns never reach a feature: a feature reading one says why.
    _edit(lender, 'column = "open_lines"\nfill = 0.0', 'column = "marketing_consent"\nfill = 0.0')
    code, out = pgov(
        "features", "list", "-w", str(lender), "-j", "UK", "-p", "credit_risk_segmentation",
        "--as-of", AS_OF, "--json",
    )  # fmt: skip
    assert code == 0, out
    lines = {f["feature"]: f for f in json.loads(out)["features"]}["lines"]
    assert not lines["available"]
    assert "applicants.marketing_consent drop by purpose_limitation" in lines["why"]


def test_sample_features_list_matches_its_declaration(sample_workspace: Path) -> None:
    code, out = pgov(
        "features", "list", "-w", str(sample_workspace), "-j", "EU-DE",
        "-p", "marketing_segmentation", "--as-of", "2026-11-01", "--json",
    )  # fmt: skip
    assert code == 0, out
    by = {f["feature"]: f for f in json.loads(out)["features"]}
    assert by["credit_score"]["available"] and by["cashflow_cv"]["available"]
    assert by["pep"]["why"] == "not declared for marketing_segmentation"
    # The policy generalises the date of birth; the age band descriptor takes its label.
    assert by["age_band"]["available"]
    assert by["age_band"]["inputs"][0]["action"] == "generalise"


def test_feature_table_declared_twice_in_pgov_toml_exits_2(lender: Path) -> None:
    toml = lender / "pgov.toml"
    toml.write_text(toml.read_text() + '\n[features.rating]\nsource = "applicants"\n')
    code, out = _refresh(lender)
    assert code == ExitCode.USAGE, out
    assert "('features', 'rating')" in out and "twice" in out
    _nothing_written(lender)
