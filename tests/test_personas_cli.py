"""`pgov personas show|diff`: tables, JSON, version references, errors without tracebacks."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.config import SegmentationSpec
from engine.features import build_features
from engine.sample.declaration import sample_config
from engine.sample.governed import synthetic_governed
from engine.segment import segment
from engine.segment.io import write_segmentation

runner = CliRunner()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("ws")
    shutil.copy(Path("engine/defaults/pgov.toml"), ws / "pgov.toml")
    g, _ = synthetic_governed(600, seed=4)
    ff = build_features(g, date(2026, 10, 31), sample_config())
    chain = ws / "versions" / "EU-DE" / "credit_risk_segmentation"
    for vid, k in (("v0001", 4), ("v0002", 5)):
        d = chain / vid
        write_segmentation(segment(ff, SegmentationSpec(k=k, bootstrap_runs=1), 10, 7, g), d)
        (d / "manifest.json").write_text("{}")  # what the store writes beside our files
    return ws


def test_show_prints_profiles_and_gates(workspace: Path) -> None:
    d = workspace / "versions/EU-DE/credit_risk_segmentation/v0001"
    res = runner.invoke(app, ["personas", "show", str(d)])
    assert res.exit_code == 0, res.output
    assert "personas" in res.output and "validation gates" in res.output
    assert "stability" in res.output


def test_show_json_by_reference(workspace: Path) -> None:
    res = runner.invoke(
        app,
        [
            "personas",
            "show",
            "EU-DE/credit_risk_segmentation/v0002",
            "-w",
            str(workspace),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert len(doc["personas"]) == 5 and doc["format"] == "pgov.personas/1"


def test_diff_json_and_thresholds(workspace: Path) -> None:
    args = ["personas", "diff", "EU-DE/credit_risk_segmentation/v0001"]
    args += ["EU-DE/credit_risk_segmentation/v0002", "-w", str(workspace), "--json"]
    res = runner.invoke(app, [*args, "--max-shift", "0", "--max-size-change", "0"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["flagged"] and doc["thresholds"] == {"max_shift": 0.0, "max_size_change": 0.0}
    assert doc["common_customers"] == 600
    table = runner.invoke(app, args[:-1])
    assert table.exit_code == 0 and "migration" in table.output


def test_unknown_version_is_an_error_not_a_traceback(workspace: Path) -> None:
    res = runner.invoke(
        app, ["personas", "show", "EU-DE/credit_risk_segmentation/v0009", "-w", str(workspace)]
    )
    assert res.exit_code == 5
    assert "Traceback" not in res.output and "no such version" in res.output


def test_a_path_without_personas_is_bad_input(tmp_path: Path) -> None:
    res = runner.invoke(app, ["personas", "show", str(tmp_path)])
    assert res.exit_code == 5
    assert "not a persona version directory" in res.output
