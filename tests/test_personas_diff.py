"""Version diff: migration matrix on tokens with k-anonymity, size change, centroid shift."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from engine.config import SegmentationSpec
from engine.features import build_features
from engine.sample.declaration import sample_config
from engine.sample.governed import synthetic_governed
from engine.segment import segment
from engine.segment.diff import diff_versions, migration_counts
from engine.segment.io import read_assignments, write_segmentation


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("versions")
    g, _ = synthetic_governed(900, seed=8)
    ff = build_features(g, date(2026, 10, 31), sample_config())
    spec4 = SegmentationSpec(k=4, bootstrap_runs=1)
    write_segmentation(segment(ff, spec4, 10, 7, g), root / "v4")
    write_segmentation(segment(ff, spec4, 10, 7, g), root / "v4again")
    write_segmentation(segment(ff, SegmentationSpec(k=6, bootstrap_runs=1), 10, 7, g), root / "v6")
    return root / "v4", root / "v4again", root / "v6"


def test_identical_versions_show_no_movement_and_no_flags(
    versions: tuple[Path, Path, Path],
) -> None:
    v4, again, _ = versions
    d = diff_versions(v4, again)
    assert d.common_customers == 900
    assert all(m["from_id"] == m["to_id"] for m in d.migration)
    assert all(c.centroid_shift == 0.0 and c.size_change == 0.0 for c in d.changes)
    assert all(c.matched_id == c.persona_id for c in d.changes)
    assert not d.flagged and d.new_personas == []


def test_migration_matrix_counts_every_customer_once(versions: tuple[Path, Path, Path]) -> None:
    v4, _, v6 = versions
    counts = migration_counts(read_assignments(v4), read_assignments(v6))
    assert counts["count"].sum() == 900
    d = diff_versions(v4, v6)
    published = sum(m["count"] for m in d.migration if m["count"] is not None)
    hidden = [m for m in d.migration if m["suppressed"]]
    assert (
        published
        + sum(
            counts.filter((pl.col("from_id") == m["from_id"]) & (pl.col("to_id") == m["to_id"]))[
                "count"
            ].sum()
            for m in hidden
        )
        == 900
    )


def test_split_personas_are_flagged(versions: tuple[Path, Path, Path]) -> None:
    v4, _, v6 = versions
    d = diff_versions(v4, v6, max_size_change=0.2)
    assert d.flagged
    assert len(d.new_personas) >= 1  # six personas cannot all be best matches of four
    assert any("size_change" in c.flags for c in d.changes)


def test_small_migration_cells_are_suppressed(versions: tuple[Path, Path, Path]) -> None:
    v4, _, v6 = versions
    counts = migration_counts(read_assignments(v4), read_assignments(v6))
    small = counts.filter(pl.col("count") < 10)
    d = diff_versions(v4, v6)
    suppressed = {(m["from_id"], m["to_id"]) for m in d.migration if m["suppressed"]}
    expected = {
        (None if f < 0 else f, None if t < 0 else t)
        for f, t in small.select("from_id", "to_id").iter_rows()
    }
    assert suppressed == expected
    assert all(m["count"] is None for m in d.migration if m["suppressed"])
    assert len(d.suppressed) == len(expected)
    assert all(s["table"] == "persona_migration" for s in d.suppressed)


def test_customers_in_only_one_version_count_as_left_or_joined(
    versions: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    v4, again, _ = versions
    # A later version without the first 100 customers (e.g. erased or excluded).
    a = read_assignments(again)
    kept = tmp_path / "later"
    kept.mkdir()
    (kept / "personas.json").write_bytes((again / "personas.json").read_bytes())
    a.slice(100).write_parquet(kept / "assignments.parquet")
    d = diff_versions(v4, kept)
    assert d.common_customers == 800
    left = [m for m in d.migration if m["to_id"] is None]
    assert left and all(m["to_name"] == "-" for m in left)


def test_centroid_shift_is_flagged_past_the_threshold(versions: tuple[Path, Path, Path]) -> None:
    v4, _, v6 = versions
    strict = diff_versions(v4, v6, max_shift=0.0, max_size_change=10.0)
    shifted = [c for c in strict.changes if c.centroid_shift and c.centroid_shift > 0]
    assert shifted and all("centroid_shift" in c.flags for c in shifted)
    lax = diff_versions(v4, v6, max_shift=100.0, max_size_change=100.0)
    assert not any(c.flags for c in lax.changes)
