"""The sealed pre-pass cache (engine/prepass_cache.py, engine/source_prepass.py): a source's
duplicate-key and orphan rows are reused across processes only for the exact bytes, specs,
jurisdiction and as-of date they were computed from, only when their MAC verifies, and the
answer is then the one the pre-pass gives. Entries hold row numbers, never data.

Each load or refresh forgets this process's digests first (a fresh process, as a pool job).
Fresh test files are racy for the file-digest cache (their ctime is "now"), and the pre-pass
cache looks up by the digests that cache knows, so the hashing clock is moved 10 s ahead.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from structlog.testing import capture_logs
from test_byod_support import AS_OF, credit_table, in_clear, pgov

import engine.sources as sources
from engine import digest_cache, prepass_cache
from engine.digest_cache import DigestCache
from engine.prepass_cache import PrepassCache
from engine.pseudonym.keyring import Keyring
from engine.pseudonym.lifecycle import init_keys
from engine.source_files import clear_digest_memo
from engine.source_frames import SourceFrames
from engine.source_order import upstream
from engine.workspace import Workspace

LATER = 10_000_000_000
DAY = date(2026, 11, 1)
# What a published version may differ in from run to run: run ids and timestamps.
RUN_BOUND = ("openlineage", "statement")


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import time

    monkeypatch.setattr(digest_cache, "now_ns", lambda: time.time_ns() + LATER)
    monkeypatch.delenv(prepass_cache.ENV_SWITCH, raising=False)
    clear_digest_memo()
    yield
    clear_digest_memo()


@pytest.fixture
def ws(workspace_copy: Path) -> Workspace:
    init_keys(Workspace.open(workspace_copy))
    return Workspace.open(workspace_copy)


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sources (by file) whose pre-pass queries ran, in the loads since the last clear."""
    ran: list[str] = []
    compute = sources.compute

    def counted(lf: pl.LazyFrame, spec: Any, *args: Any) -> Any:
        ran.append(spec.path)
        return compute(lf, spec, *args)

    monkeypatch.setattr(sources, "compute", counted)
    return ran


def _load(ws: Workspace, *, prepass: bool = True) -> SourceFrames:
    clear_digest_memo()  # a fresh process
    keyring = Keyring.load(ws)
    cache = PrepassCache.for_workspace(ws, keyring) if prepass else None
    return sources.load_sources(
        ws, "EU-DE", DAY, None, DigestCache.for_workspace(ws, keyring), cache
    )


def _same(a: SourceFrames, b: SourceFrames) -> None:
    assert list(a.frames) == list(b.frames)
    for name, fa in a.frames.items():
        fb = b.frames[name]
        assert fa.frame.equals(fb.frame), name
        assert fa.quarantine.equals(fb.quarantine), name
        assert (fa.accounting, fa.input_digest) == (fb.accounting, fb.input_digest), name


def _paths(ws: Workspace, names: Any = None) -> list[str]:
    return sorted(ws.source(n).path for n in (names or ws.config.sources))


def _entries(ws: Workspace) -> list[Path]:
    return prepass_cache.entries(ws)


def test_a_hit_gives_the_answer_the_pre_pass_gives(ws: Workspace, runs: list[str]) -> None:
    off = _load(ws, prepass=False)
    assert not _entries(ws)
    runs.clear()
    cold = _load(ws)
    assert sorted(runs) == _paths(ws)
    assert len(_entries(ws)) == len(ws.config.sources)
    runs.clear()
    warm = _load(ws)
    assert runs == []  # every source's pre-pass came from the cache
    _same(off, cold)
    _same(off, warm)
    # The sample's planted dirt: duplicate keys and orphans are among the cached rows.
    docs = [json.loads(p.read_bytes()) for p in _entries(ws)]
    assert any(d["duplicates"] for d in docs)
    assert any(rows for d in docs for rows in d["orphans"])
    reasons = {r for f in warm.frames.values() for r in f.accounting.quarantine_reasons}
    assert any(r.startswith("duplicate_key:") for r in reasons)
    assert any(r.startswith("orphan:") for r in reasons)


def test_a_changed_file_misses_for_itself_and_every_source_referencing_it(
    ws: Workspace, runs: list[str]
) -> None:
    _load(ws)
    subjects = ws.config.subjects
    path = ws.path(ws.source(subjects).path)
    frame = pl.read_parquet(path)
    frame.head(frame.height - 1).write_parquet(path)  # its last customer gone
    runs.clear()
    changed = _load(ws)
    behind = [n for n in ws.config.sources if subjects in upstream(ws, n)]
    assert sorted(runs) == _paths(ws, behind)
    assert len(behind) > 1  # the sample's other sources reference the subjects
    _same(changed, _load(ws, prepass=False))
    runs.clear()
    _load(ws)
    assert runs == []  # the new bytes' answers were stored, in place of the old ones
    assert len(_entries(ws)) == len(ws.config.sources)


def test_a_tampered_forged_or_torn_entry_is_a_miss_and_is_recomputed(
    ws: Workspace, runs: list[str]
) -> None:
    good = _load(ws)
    entries = _entries(ws)
    tampered, forged, torn = entries[:3]
    doc = json.loads(tampered.read_bytes())
    doc["duplicates"] = [*doc["duplicates"], 1]  # MAC left as it was
    tampered.write_text(json.dumps(doc))
    # Forged: a whole entry sealed under another master key, at the name the real one has.
    other = PrepassCache(ws.root, 1, Keyring.generate().derive("prepass-cache", "rows", 1))
    doc = json.loads(forged.read_bytes())
    doc["mac"] = other._seal("crm|EU-DE", doc)
    forged.write_text(json.dumps(doc))
    torn.write_bytes(torn.read_bytes()[:20])
    runs.clear()
    with capture_logs() as logs:
        again = _load(ws)
    assert len(runs) == 3
    _same(good, again)
    ignored = [e for e in logs if e["event"] == "prepass_cache.entry_ignored"]
    assert sorted(e["reason"] for e in ignored) == ["corrupt", "mac", "mac"]
    assert str(ws.root) not in repr(ignored)
    runs.clear()
    _load(ws)
    assert runs == []  # rewritten, sealed


def test_the_off_switch_neither_reads_nor_writes(
    ws: Workspace, runs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(prepass_cache.ENV_SWITCH, "off")
    assert PrepassCache.for_workspace(ws, Keyring.load(ws)) is None
    code, out = pgov(
        "refresh", "-w", str(ws.root), "-j", "EU-DE", "-p", "marketing_segmentation",
        "-a", "analyst-eu", "--as-of", AS_OF, "--json",
    )  # fmt: skip
    assert code == 0, out
    assert not _entries(ws)
    assert sorted(runs) == _paths(ws)
    monkeypatch.delenv(prepass_cache.ENV_SWITCH)
    _load(ws)
    monkeypatch.setenv(prepass_cache.ENV_SWITCH, "off")
    runs.clear()
    _load(ws, prepass=PrepassCache.for_workspace(ws, Keyring.load(ws)) is not None)
    assert sorted(runs) == _paths(ws)


def test_an_answer_marking_too_many_rows_is_not_stored(
    ws: Workspace, runs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.source_prepass as source_prepass

    monkeypatch.setattr(source_prepass, "MAX_ROWS", 0)
    loaded = _load(ws)
    dirty = [
        name
        for name, f in loaded.frames.items()
        if any(r.startswith(("duplicate_key:", "orphan:")) for r in f.accounting.quarantine_reasons)
    ]
    assert 0 < len(dirty) < len(ws.config.sources)
    assert len(_entries(ws)) == len(ws.config.sources) - len(dirty)
    runs.clear()
    _load(ws)
    assert sorted(runs) == _paths(ws, dirty)  # only the stored (empty) answers were reused


def _ids(ws: Workspace) -> set[str]:
    """Every key value of every source, as text."""
    out: set[str] = set()
    for spec in ws.config.sources.values():
        frame = pl.read_parquet(ws.path(spec.path), columns=spec.key)
        for k in spec.key:
            out |= {str(v) for v in frame[k].drop_nulls().unique()}
    return out


def test_digests_clear_removes_the_entries_and_none_holds_an_identifier(
    ws: Workspace,
) -> None:
    code, out = pgov(
        "refresh", "-w", str(ws.root), "-j", "EU-DE", "-p", "marketing_segmentation",
        "-a", "analyst-eu", "--as-of", AS_OF, "--json",
    )  # fmt: skip
    assert code == 0, out
    found = _entries(ws)
    assert len(found) == len(ws.config.sources)
    cache = ws.root / digest_cache.CACHE_DIR
    blob = b"".join(p.read_bytes() for p in sorted(cache.rglob("*")) if p.is_file())
    ids = _ids(ws)
    assert len(ids) > 3000
    assert not in_clear(ids, blob)
    assert b"customer_id" not in blob and str(ws.root).encode() not in blob
    code, out = pgov("digests", "clear", "-w", str(ws.root), "--json")
    assert code == 0, out
    assert json.loads(out)["prepass_removed"] == len(found)
    assert not list(prepass_cache.cache_dir(ws).iterdir())
    code, out = pgov("digests", "clear", "-w", str(ws.root))
    assert (code, "0 pre-pass entries removed" in out) == (0, True), out


def _digest(p: Path) -> str:
    data = p.read_bytes()
    if p.name == "manifest.json":  # its predecessor's statement digest is run-bound
        doc = json.loads(data)
        if doc.get("predecessor"):
            doc["predecessor"].pop("statement_sha256")
        data = json.dumps(doc, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()


def _published(root: Path) -> list[dict[str, str]]:
    """Per version published: every file's sha256 but the run-bound ones."""
    return [
        {
            p.name: _digest(p)
            for p in sorted(version.iterdir())
            if p.is_file() and not p.name.startswith(RUN_BOUND)
        }
        for version in sorted(root.glob("versions/*/*/v*"))
    ]


def _refreshes(root: Path, jurisdiction: str, purpose: str, actor: str, n: int) -> None:
    for _ in range(n):
        clear_digest_memo()  # each refresh as its own process
        code, out = pgov(
            "refresh", "-w", str(root), "-j", jurisdiction, "-p", purpose, "-a", actor,
            "--as-of", AS_OF, "--json",
        )  # fmt: skip
        assert code in (0, 4), out


@pytest.mark.slow
def test_published_versions_are_byte_identical_with_the_cache_cold_warm_or_off(
    ws: Workspace, tmp_path: Path, runs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    off = tmp_path / "off"
    shutil.copytree(ws.root, off)
    _refreshes(ws.root, "EU-DE", "marketing_segmentation", "analyst-eu", 2)  # cold, warm
    assert sorted(runs) == _paths(ws)  # the second refresh ran no pre-pass
    monkeypatch.setenv(prepass_cache.ENV_SWITCH, "off")
    _refreshes(off, "EU-DE", "marketing_segmentation", "analyst-eu", 2)
    on = _published(ws.root)
    assert len(on) == 2 and on == _published(off)


def test_a_single_table_with_integer_ids_and_its_own_names(
    tmp_path: Path, runs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`credit_table` (tests/test_byod_support.py): one CSV table, integer ids, its own id and
    jurisdiction column names; an applicant's row written twice, so the cached answer holds
    duplicate rows."""
    root = credit_table(tmp_path / "ws", n=400)
    data = root / "data" / "applicants.csv"
    rows = pl.read_csv(data)
    pl.concat([rows, rows.slice(7, 1)]).write_csv(data)
    off = tmp_path / "off"
    shutil.copytree(root, off)
    _refreshes(root, "UK", "credit_risk_segmentation", "analyst", 2)
    assert runs == ["data/applicants.csv"]  # the second refresh took the cached answer
    ws = Workspace.open(root)
    (entry,) = _entries(ws)
    assert json.loads(entry.read_bytes())["duplicates"] == [8, 401]
    ids = {str(v) for v in rows["applicant_no"]}
    blob = b"".join(p.read_bytes() for p in (root / digest_cache.CACHE_DIR).rglob("*.json"))
    assert not in_clear(ids, blob)
    monkeypatch.setenv(prepass_cache.ENV_SWITCH, "off")
    _refreshes(off, "UK", "credit_risk_segmentation", "analyst", 2)
    assert _published(root) == _published(off) != []
