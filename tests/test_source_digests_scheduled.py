"""Every input file's digest is taken beside the whole sources stage (source_files.FileDigests):
queued at once, awaited once at the stage's end, and bound to the state each file's rows
were read from. Checked on a workspace unlike the sample (two sources, CSV and Parquet).

Deterministic: the hashing is held on an event the reads release, never on timing.
"""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from test_byod_support import card_transactions

import engine.source_files as source_files
import engine.sources as sources_mod
from engine.errors import BadInputError
from engine.source_files import clear_digest_memo
from engine.sources import load_sources
from engine.workspace import Workspace

AS_OF = date(2026, 11, 1)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    clear_digest_memo()
    return Workspace.open(card_transactions(tmp_path / "ws", holders=300))


def _held_hashing(
    monkeypatch: pytest.MonkeyPatch, ws: Workspace, before_hash: Any = None
) -> list[str]:
    """Hashing waits until every source has been read; returns the names read, in order."""
    everything_read = threading.Event()
    read: list[str] = []
    real_digest, real_read = source_files.digest_file, sources_mod._read_one

    def held_digest(path: Path, cache: object = None) -> object:
        if not everything_read.wait(20):
            raise AssertionError("a source's read waited for a file's digest")
        if before_hash is not None:
            before_hash(path)
        return real_digest(path, cache)  # type: ignore[arg-type]

    def reading(w: Workspace, name: str, *args: Any) -> Any:
        out = real_read(w, name, *args)
        read.append(name)
        if len(read) == len(w.config.sources):
            everything_read.set()
        return out

    monkeypatch.setattr(source_files, "digest_file", held_digest)
    # Wherever the stage looks the function up (it once imported it by name).
    monkeypatch.setattr(sources_mod, "digest_file", held_digest, raising=False)
    monkeypatch.setattr(sources_mod, "_read_one", reading)
    return read


def test_every_source_is_read_before_any_digest_is_needed(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = _held_hashing(monkeypatch, ws)
    frames = load_sources(ws, "SG", AS_OF).frames
    assert sorted(read) == sorted(ws.config.sources)
    for name, frame in frames.items():
        data = ws.source_path(name).read_bytes()
        assert frame.input_digest == hashlib.sha256(data).hexdigest()


def test_a_file_changed_between_its_read_and_its_hashing_is_refused(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = ws.source_path("card_txns")

    def rewrite(path: Path) -> None:
        if path == target:  # same bytes written again: only the file's state moves
            path.write_bytes(path.read_bytes())

    _held_hashing(monkeypatch, ws, before_hash=rewrite)
    with pytest.raises(BadInputError, match=r"card_txns\.parquet: the source file changed while"):
        load_sources(ws, "SG", AS_OF)


def test_a_file_changed_while_its_rows_were_read_is_refused(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_read = sources_mod._read_one
    target = ws.source_path("holders")

    def touching(w: Workspace, name: str, path: Path, *args: Any) -> Any:
        out = real_read(w, name, path, *args)
        if path == target:
            st = path.stat()
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        return out

    monkeypatch.setattr(sources_mod, "_read_one", touching)
    with pytest.raises(BadInputError, match=r"holders\.csv: the source file changed while"):
        load_sources(ws, "SG", AS_OF)
