"""Same seed -> byte-identical files; another seed -> other data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from engine.sample import MANIFEST, generate


def _digests(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_same_seed_gives_byte_identical_files(tmp_path: Path, fmt: str) -> None:
    a = generate(400, 11, tmp_path / "a", fmt)  # type: ignore[arg-type]
    b = generate(400, 11, tmp_path / "b", fmt)  # type: ignore[arg-type]
    da, db = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert da == db
    assert MANIFEST in da and len(da) == 12  # 10 sources + ground truth + manifest
    assert a.files == b.files


def test_other_seed_gives_other_data(tmp_path: Path) -> None:
    a = generate(400, 11, tmp_path / "a")
    b = generate(400, 12, tmp_path / "b")
    assert a.files["crm.parquet"] != b.files["crm.parquet"]
    assert a.files["transactions.parquet"] != b.files["transactions.parquet"]
