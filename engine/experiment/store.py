"""Where experiments live: `experiments/<name>/` in the workspace.

    design.json, assignments.parquet, design.dsse.json      written once by `design`
    analysis-0001.json, analysis-0001.dsse.json, ...         one per `analyse`
    promotion.json, promotion.dsse.json                      when a version is validated

Each directory appears whole (staged, then renamed); signed records are never rewritten.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from engine.errors import BadInputError, UsageError
from engine.experiment.signed import verify_document
from engine.locks import check_name
from engine.workspace import Workspace

DESIGN = "design.json"
DESIGN_SIG = "design.dsse.json"
ASSIGNMENTS = "assignments.parquet"
PROMOTION = "promotion.json"
PROMOTION_SIG = "promotion.dsse.json"
DESIGN_TYPE = "https://personagov.dev/experiment/design/v1"
ANALYSIS_TYPE = "https://personagov.dev/experiment/analysis/v1"
PROMOTION_TYPE = "https://personagov.dev/experiment/promotion/v1"
_ANALYSIS = re.compile(r"^analysis-(\d{4})\.json$")


def experiments_root(ws: Workspace) -> Path:
    return ws.root / "experiments"


def experiment_dir(ws: Workspace, name: str) -> Path:
    return experiments_root(ws) / check_name("experiment", name)


def stage(ws: Workspace, name: str) -> Path:
    root = experiments_root(ws) / ".staging"
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{check_name('experiment', name)}-{uuid.uuid4().hex}"
    path.mkdir()
    return path


def publish(staged: Path, final: Path) -> None:
    if final.exists():
        shutil.rmtree(staged, ignore_errors=True)
        raise UsageError(f"experiment '{final.name}' already exists; names are never reused")
    os.rename(staged, final)


def load_design(ws: Workspace, name: str) -> dict[str, Any]:
    """The verified design (signature and file digests checked), or an error."""
    d = experiment_dir(ws, name)
    if not (d / DESIGN).is_file():
        raise BadInputError(f"experiment '{name}': not found (run 'pgov experiment design')")
    verify_document(ws, d / DESIGN_SIG, DESIGN_TYPE)
    doc = json.loads((d / DESIGN).read_bytes())
    if not isinstance(doc, dict):
        raise BadInputError(f"{d / DESIGN}: not a design document")
    return doc


def analyses(ws: Workspace, name: str) -> list[Path]:
    d = experiment_dir(ws, name)
    return sorted(p for p in d.iterdir() if _ANALYSIS.match(p.name)) if d.is_dir() else []


def next_analysis(ws: Workspace, name: str) -> str:
    found = analyses(ws, name)
    n = int(_ANALYSIS.match(found[-1].name).group(1)) + 1 if found else 1  # type: ignore[union-attr]
    return f"analysis-{n:04d}"


def latest_analysis(ws: Workspace, name: str) -> tuple[Path, dict[str, Any]] | None:
    found = analyses(ws, name)
    if not found:
        return None
    path = found[-1]
    verify_document(ws, path.with_suffix(".dsse.json"), ANALYSIS_TYPE)
    return path, json.loads(path.read_bytes())
