"""write_segmentation / read_personas / read_assignments: deterministic, canonical, readable."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from engine.config import SegmentationSpec
from engine.errors import BadInputError
from engine.features import build_features
from engine.sample.declaration import sample_config
from engine.sample.governed import synthetic_governed
from engine.segment import segment
from engine.segment.io import read_assignments, read_personas, write_segmentation
from engine.segment.model import Segmentation
from lineage.canonical import canonical_json


@pytest.fixture(scope="module")
def seg() -> Segmentation:
    g, _ = synthetic_governed(500, seed=2)
    return segment(
        build_features(g, date(2026, 10, 31), sample_config()),
        SegmentationSpec(k=4, bootstrap_runs=1),
        10,
        7,
        g,
    )


def test_round_trip(seg: Segmentation, tmp_path: Path) -> None:
    paths = write_segmentation(seg, tmp_path)
    assert [p.name for p in paths] == ["assignments.parquet", "personas.json"]
    assert read_assignments(tmp_path).equals(seg.assignments)
    doc = read_personas(tmp_path)
    assert doc["validity"] == ("valid" if seg.valid else "invalid")
    assert [g["name"] for g in doc["gates"]] == [g.name for g in seg.gates]
    assert [p["name"] for p in doc["personas"]] == [p.name for p in seg.personas]
    assert doc["customers"] == seg.assignments.height
    assert doc["params"]["k_anonymity"] == 10


def test_personas_json_is_canonical(seg: Segmentation, tmp_path: Path) -> None:
    write_segmentation(seg, tmp_path)
    raw = (tmp_path / "personas.json").read_bytes()
    assert canonical_json(json.loads(raw)) == raw


def test_writing_twice_gives_identical_bytes(seg: Segmentation, tmp_path: Path) -> None:
    a = write_segmentation(seg, tmp_path / "a")
    b = write_segmentation(seg, tmp_path / "b")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_reading_a_directory_without_personas_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError):
        read_personas(tmp_path)
    with pytest.raises(BadInputError):
        read_assignments(tmp_path)
    (tmp_path / "personas.json").write_text("{}")
    with pytest.raises(BadInputError):
        read_personas(tmp_path)
