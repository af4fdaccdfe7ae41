"""Sizing jurisdictions from the source files' footers, before any job runs."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
import tomli_w
from structlog.testing import capture_logs

from engine.executors import sizing
from engine.executors.sizing import jurisdiction_sizes


def _workspace(root: Path, sources: dict[str, dict[str, object]], subjects: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    cfg = {
        "jurisdictions": ["UK", "SG", "BR"],
        "subjects": subjects,
        "sources": sources,
        "actors": {"alice": {"roles": ["regional_analyst"], "home_region": "EU"}},
    }
    (root / "pgov.toml").write_text(tomli_w.dumps(cfg), encoding="utf-8")
    (root / "data").mkdir(exist_ok=True)
    return root


def _spec(path: str, key: str, juris: str, subject: str, fmt: str = "parquet") -> dict[str, object]:
    cols = {
        key: {"type": "int", "classification": "direct_identifier"},
        juris: {"type": "str", "classification": "technical"},
    }
    if subject != key:
        cols[subject] = {"type": "int", "classification": "direct_identifier"}
    return {
        "path": path,
        "format": fmt,
        "key": [key],
        "jurisdiction_column": juris,
        "subject_column": subject,
        "columns": cols,
    }


def _frame(counts: dict[str, int], key: str, juris: str) -> pl.DataFrame:
    js = [j for j, n in counts.items() for _ in range(n)]
    return pl.DataFrame({key: list(range(len(js))), juris: js})


def test_a_file_sorted_by_jurisdiction_is_counted_exactly_from_the_footer(tmp_path: Path) -> None:
    # Not the sample's shape: integer ids, a jurisdiction column of another name, one table.
    root = _workspace(
        tmp_path / "ws",
        {"clients": _spec("data/c.parquet", "cid", "region_code", "cid")},
        "clients",
    )
    df = _frame({"BR": 3000, "SG": 1000, "UK": 6000}, "cid", "region_code")
    df.write_parquet(root / "data" / "c.parquet", row_group_size=500)
    md = pq.ParquetFile(root / "data" / "c.parquet").metadata
    total = sum(md.row_group(g).total_byte_size for g in range(md.num_row_groups))
    sizes = jurisdiction_sizes(root)
    assert {j: (s.subjects, s.rows) for j, s in sizes.items()} == {
        "BR": (3000, 3000),
        "SG": (1000, 1000),
        "UK": (6000, 6000),
    }
    assert sum(s.data_bytes for s in sizes.values()) == total
    assert sizes["UK"].data_bytes > sizes["BR"].data_bytes > sizes["SG"].data_bytes


def test_mixed_row_groups_are_sampled_and_every_source_adds_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _workspace(
        tmp_path / "ws",
        {
            "people": _spec("data/p.parquet", "pid", "juris", "pid"),
            "events": _spec("data/e.csv", "eid", "juris", "pid", fmt="csv"),
        },
        "people",
    )
    # Interleaved: every row group holds all three jurisdictions (1 : 2 : 3).
    people = pl.DataFrame(
        {"pid": list(range(6000)), "juris": ["SG", "BR", "BR", *["UK"] * 3] * 1000}
    )
    people.write_parquet(root / "data" / "p.parquet", row_group_size=600)
    events = _frame({"UK": 50, "SG": 150}, "eid", "juris").with_columns(pid=pl.lit(1))
    events.write_csv(root / "data" / "e.csv")
    monkeypatch.setattr(sizing, "MIXED_SAMPLE", 4)  # 4 of the 10 mixed groups are read
    sizes = jurisdiction_sizes(root)
    assert {j: s.subjects for j, s in sizes.items()} == {"SG": 1000, "BR": 2000, "UK": 3000}
    assert sizes["UK"].rows == 3050 and sizes["SG"].rows == 1150 and sizes["BR"].rows == 2000
    csv_bytes = (root / "data" / "e.csv").stat().st_size
    md = pq.ParquetFile(root / "data" / "p.parquet").metadata
    total = sum(md.row_group(g).total_byte_size for g in range(md.num_row_groups))
    assert abs(sum(s.data_bytes for s in sizes.values()) - (total + csv_bytes)) <= 3  # rounding


def test_a_source_that_cannot_be_sized_gives_no_sizes_and_says_so(tmp_path: Path) -> None:
    root = _workspace(
        tmp_path / "ws", {"clients": _spec("data/c.parquet", "cid", "region", "cid")}, "clients"
    )
    with capture_logs() as logs:
        assert jurisdiction_sizes(root) == {}
    [warning] = [e for e in logs if e["event"] == "job_sizes_unavailable"]
    assert "c.parquet" in warning["error"]
