"""How much data each jurisdiction has, read cheaply, so the pool can size a job before it runs.

A refresh's peak memory grows with the rows it holds: every source's rows of its jurisdiction,
not only its data subjects (a jurisdiction whose customers trade more needs more). Counting
those rows must cost little next to the refresh itself, so nothing is decoded that the file
footer already says:

- Parquet: the footer gives each row group's rows, uncompressed bytes and (usually) the
  min/max of the jurisdiction column. A row group whose min equals its max belongs to that one
  jurisdiction: a file written sorted or partitioned by jurisdiction is counted exactly
  without reading a value. Of the mixed row groups, the jurisdiction column of up to
  ``MIXED_SAMPLE`` (evenly spaced, so the same file always gives the same figures) is read,
  and their shares are extrapolated to all mixed groups.
- CSV / NDJSON: the jurisdiction column is scanned (one column) and the file's size on disk
  is split in proportion to the rows.

A job's size is the sum over sources of its jurisdiction's share of each source's
(uncompressed) bytes; its subjects are the subjects source's rows of that jurisdiction.
Counts and byte sizes only: no value of any row leaves this module.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

# Mixed row groups read per Parquet file at most: a few hundred thousand values of one
# column, milliseconds next to a refresh.
MIXED_SAMPLE = 16


@dataclass(frozen=True)
class JurisdictionSize:
    subjects: int  # rows of the subjects source in this jurisdiction
    rows: int  # rows of every source in this jurisdiction
    data_bytes: int  # this jurisdiction's share of every source's (uncompressed) bytes


@dataclass
class _SourceSize:
    rows: Counter[str]
    data_bytes: Counter[str]


def _parquet(path: Path, column: str) -> _SourceSize:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    md = pf.metadata
    leaves = [md.schema.column(i).path for i in range(md.num_columns)]
    if column not in leaves:
        raise ValueError(f"{path.name} has no column '{column}'")
    leaf = leaves.index(column)
    rows: Counter[str] = Counter()
    data: Counter[str] = Counter()
    mixed: list[int] = []
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        stats = rg.column(leaf).statistics
        if (
            stats is not None
            and stats.has_min_max
            and stats.null_count == 0
            and stats.min == stats.max
        ):
            j = str(stats.min)
            rows[j] += rg.num_rows
            data[j] += rg.total_byte_size
        elif rg.num_rows:
            mixed.append(g)
    if mixed:
        step = max(1, len(mixed) // MIXED_SAMPLE)
        picked = mixed[::step][:MIXED_SAMPLE]
        table = pf.read_row_groups(picked, columns=[column])
        counts = pc.value_counts(table.column(0).combine_chunks().cast("string")).to_pylist()
        seen = len(table)  # rows without a jurisdiction belong to no job
        mixed_rows = sum(md.row_group(g).num_rows for g in mixed)
        mixed_bytes = sum(md.row_group(g).total_byte_size for g in mixed)
        for c in counts:
            if c["values"] is None or not seen:
                continue
            share = int(c["counts"]) / seen
            rows[str(c["values"])] += round(mixed_rows * share)
            data[str(c["values"])] += round(mixed_bytes * share)
    return _SourceSize(rows, data)


def _text(path: Path, fmt: str, column: str) -> _SourceSize:
    import polars as pl

    if fmt == "csv":
        lf = pl.scan_csv(path, infer_schema=False, encoding="utf8")
    else:
        lf = pl.scan_ndjson(path, infer_schema_length=None)
    lf = lf.select(pl.col(column).cast(pl.String))
    counted = lf.group_by(column).len().collect()
    rows = Counter({str(j): int(n) for j, n in counted.iter_rows() if j is not None})
    total = sum(rows.values())
    size = path.stat().st_size
    data = Counter({j: round(size * n / total) for j, n in rows.items()} if total else {})
    return _SourceSize(rows, data)


def jurisdiction_sizes(root: Path) -> dict[str, JurisdictionSize]:
    """Per jurisdiction: subjects, rows and data bytes of every declared source; {} when any
    source cannot be sized (its refresh will say why; an estimate falls back to less)."""
    from engine.source_files import source_file
    from engine.workspace import Workspace

    try:
        ws = Workspace.open(root)
        subjects: Counter[str] = Counter()
        rows: Counter[str] = Counter()
        data: Counter[str] = Counter()
        for name in ws.config.sources:
            spec = ws.source(name)
            path = source_file(ws, name)
            if spec.format == "parquet":
                size = _parquet(path, spec.jurisdiction_column)
            else:
                size = _text(path, spec.format, spec.jurisdiction_column)
            rows.update(size.rows)
            data.update(size.data_bytes)
            if name == ws.config.subjects:
                subjects.update(size.rows)
    except Exception as exc:  # sources are checked properly by the refresh itself
        log.warning("job_sizes_unavailable", error=f"{exc.__class__.__name__}: {exc}")
        return {}
    return {
        j: JurisdictionSize(subjects=subjects.get(j, 0), rows=rows[j], data_bytes=data[j])
        for j in rows
    }
