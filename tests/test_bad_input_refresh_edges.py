"""Bad input from issue 14, answered with a clear error naming file, row or key, and nothing
half-done: zero subjects, a source linked out of the workspace, rows in no jurisdiction
counted by the refresh itself, an actor scoped to an undeclared jurisdiction, an unknown
column type named."""

from __future__ import annotations

import json
import shutil
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import tomli_w
from typer.testing import CliRunner

from engine.cli import app
from engine.config import parse_config
from engine.errors import ConfigError
from lineage.auditlog import AuditLog

runner = CliRunner()
DEFAULTS = Path(__file__).resolve().parents[1] / "engine" / "defaults" / "pgov.toml"
REFRESH = ["refresh", "-j", "EU-DE", "-p", "kyc_aml", "-a", "compliance-lead",
           "--as-of", "2026-11-01"]  # fmt: skip


def _pgov(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def _base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("edges") / "ws"
    assert _pgov("init", str(root), "--sample", "500")[0] == 0
    assert _pgov("keys", "init", "-w", str(root))[0] == 0
    return root


@pytest.fixture()
def ws(_base: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "ws"
    shutil.copytree(_base, dest)
    return dest


def test_a_subjects_source_with_zero_rows_is_exit_5_naming_the_file(ws: Path) -> None:
    crm = ws / "data" / "crm.parquet"
    pl.read_parquet(crm).head(0).write_parquet(crm)
    code, out = _pgov(*REFRESH, "-w", str(ws))
    assert code == 5 and "data/crm.parquet" in out and "no usable rows" in out
    assert "Traceback" not in out
    assert not (ws / "versions" / "EU-DE" / "kyc_aml").exists() or not list(
        (ws / "versions" / "EU-DE" / "kyc_aml").glob("v*")
    )
    failed = AuditLog(ws / "audit").query(type="refresh_failed")
    assert failed and "no usable rows" in failed[-1]["details"]["reason"]


def test_a_source_linked_out_of_the_workspace_is_refused(ws: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.parquet"
    shutil.move(ws / "data" / "loans.parquet", outside)
    (ws / "data" / "loans.parquet").symlink_to(outside)
    code, out = _pgov(*REFRESH, "-w", str(ws))
    assert code == 5 and "data/loans.parquet" in out and "leaves the workspace" in out
    failed = AuditLog(ws / "audit").query(type="refresh_failed")
    assert failed and "leaves the workspace" in failed[-1]["details"]["reason"]


def test_rows_in_no_jurisdiction_are_counted_by_the_refresh(ws: Path) -> None:
    crm = ws / "data" / "crm.parquet"
    df = pl.read_parquet(crm)
    bad = ["EU-DE ", "eu-de", None]
    df = df.with_columns(
        pl.when(pl.int_range(pl.len()) < 3)
        .then(pl.Series("j", bad + [None] * (df.height - 3), dtype=pl.String))
        .otherwise(pl.col("jurisdiction"))
        .alias("jurisdiction")
    )
    df.write_parquet(crm)
    code, out = _pgov(*REFRESH, "-w", str(ws), "--json")
    assert code in (0, 7), out
    summary = json.loads(out)
    assert summary["unscoped_rows"]["crm"] == 3
    vdir = next((ws / "versions" / "EU-DE" / "kyc_aml").glob("v*"))
    assert json.loads((vdir / "manifest.json").read_text())["unscoped_rows"]["crm"] == 3
    [entry] = AuditLog(ws / "audit").query(type="rows_unscoped")
    assert entry["details"]["by_source"]["crm"] == 3


def _config() -> dict[str, object]:
    return tomllib.loads(DEFAULTS.read_text())


def test_an_actor_scoped_to_an_undeclared_jurisdiction_is_a_config_error() -> None:
    data = _config()
    data["actors"]["analyst-uk"]["jurisdictions"] = ["UK", "FR"]  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"actors.analyst-uk.jurisdictions: 'FR' not declared"):
        parse_config(data, "pgov.toml")


def test_an_unknown_column_type_names_the_bad_value() -> None:
    data = _config()
    data["sources"]["crm"]["columns"]["annual_income"]["type"] = "decimal128"  # type: ignore[index]
    with pytest.raises(ConfigError) as exc:
        parse_config(data, "pgov.toml")
    assert "sources.crm.columns.annual_income.type" in exc.value.message
    assert "'decimal128'" in exc.value.message


def _edit_config(ws: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    data = tomllib.loads((ws / "pgov.toml").read_text())
    edit(data)
    (ws / "pgov.toml").write_text(tomli_w.dumps(data))


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (
            lambda d: d["actors"]["analyst-uk"].__setitem__("jurisdictions", ["UK", "FR"]),
            "actors.analyst-uk.jurisdictions: 'FR' not declared",
        ),
        (
            lambda d: d["sources"]["crm"]["columns"]["annual_income"].__setitem__(
                "type", "decimal128"
            ),
            "'decimal128'",
        ),
    ],
    ids=["actor-undeclared-jurisdiction", "unknown-column-type"],
)
def test_bad_declarations_are_exit_2_naming_file_key_and_value_from_the_cli(
    ws: Path, edit: Callable[[dict[str, Any]], None], named: str
) -> None:
    _edit_config(ws, edit)
    before = len(AuditLog(ws / "audit").query())
    code, out = _pgov(*REFRESH, "-w", str(ws))
    assert code == 2, out
    # The file on the error line, then one line per problem naming key and value.
    errors = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "pgov.toml" in errors[0], out
    assert sum(named in ln for ln in out.splitlines()) == 1, out
    assert "Traceback" not in out
    # Nothing half-done: no version, and the log has nothing but what it had (the workspace
    # cannot be opened with a broken declaration, so no actor or policy was consulted).
    assert not list((ws / "versions").glob("*/*/v0*"))
    assert len(AuditLog(ws / "audit").query()) == before
