"""`pgov init` creates a complete workspace and never overwrites one; `pgov sample` fills it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from typer.testing import CliRunner

from engine.cli import app
from engine.sample.workspace import DIRS, init_workspace
from engine.sources import load_sources
from engine.workspace import Workspace

runner = CliRunner()


def test_init_creates_config_and_directories(tmp_path: Path) -> None:
    root = init_workspace(tmp_path / "ws")
    assert (root / "pgov.toml").is_file()
    for d in DIRS:
        assert (root / d).is_dir(), d
    assert stat.S_IMODE((root / "keys").stat().st_mode) == 0o700
    ws = Workspace.open(root)
    assert ws.config.sources["transactions"].path == "data/transactions.parquet"


def test_init_csv_points_every_source_at_csv(tmp_path: Path) -> None:
    ws = Workspace.open(init_workspace(tmp_path / "ws", "csv"))
    for name, spec in ws.config.sources.items():
        assert spec.format == "csv" and spec.path == f"data/{name}.csv"


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    init_workspace(root)
    (root / "pgov.toml").write_text("# mine\n" + (root / "pgov.toml").read_text())
    result = runner.invoke(app, ["init", str(root)])
    assert result.exit_code == 2
    assert "refusing to overwrite" in result.output
    assert (root / "pgov.toml").read_text().startswith("# mine")


def test_cli_init_with_sample_json_and_load(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    result = runner.invoke(
        app, ["init", str(root), "--format", "csv", "--sample", "120", "--seed", "3", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["format"] == "csv" and data["sample"]["customers"] == 120
    assert all("rows" not in p for p in data["sample"]["planted"])
    ws = Workspace.open(root)
    frames = load_sources(ws, "EU-FR", __import__("datetime").date(2026, 11, 1))
    assert frames.frames["crm"].accounting.input_rows > 0


def test_cli_sample_writes_files_and_manifest(tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = runner.invoke(
        app,
        [
            "sample",
            "--customers",
            "90",
            "--seed",
            "1",
            "--out",
            str(out),
            "--dirt-rate",
            "0.05",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["rows"]["crm"] >= 90 and data["dirt_rate"] == 0.05
    assert (out / "sample_manifest.json").is_file() and (out / "ground_truth.parquet").is_file()
    bad = runner.invoke(app, ["sample", "--customers", "10", "--out", str(out), "--format", "xlsx"])
    assert bad.exit_code == 2 and "--format" in bad.output
