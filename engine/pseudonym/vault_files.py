"""Atomic, crash-safe file writes of the token vault (vault.py's layout).

A write goes to a temp file, is fsynced, then renamed over its name, and the directory is
fsynced; a failure removes the temp file and a full disk or I/O error becomes a
StorageError (exit 9). `PGOV_CRASH_AT=<stage>` kills the process at a named step (kill -9
tests).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl

from engine.errors import StorageError, storage_error
from engine.store import file_sha256

MANIFEST = "MANIFEST.json"


def crash_point(stage: str) -> None:
    """Test hook: PGOV_CRASH_AT=<stage> kills this process here with SIGKILL (kill -9)."""
    if os.environ.get("PGOV_CRASH_AT") == stage:
        os.kill(os.getpid(), signal.SIGKILL)


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_segment(d: Path, df: pl.DataFrame) -> tuple[str, str]:
    """df -> `seg-<sha256[:24]>.parquet` in d (named by its own digest); (name, sha256)."""
    tmp = d / f".seg-{secrets.token_hex(6)}.tmp"
    try:
        with tmp.open("wb") as fh:
            # lz4: ciphertexts do not compress, and zstd costs twice the time.
            df.write_parquet(fh, compression="lz4", statistics=True)
            fh.flush()
            # The digest is read from the page cache while the disk takes the bytes (at 10M
            # entries, 340 MB: 0.8 s for both against 1.1-1.2 one after the other); the
            # rename still waits for the fsync, whose error (a full disk) is raised here.
            with ThreadPoolExecutor(1, thread_name_prefix="vault-fsync") as pool:
                synced = pool.submit(os.fsync, fh.fileno())
                digest = file_sha256(tmp)
                synced.result()
        name = f"seg-{digest[:24]}.parquet"
        crash_point("vault_segment_temp")
        os.replace(tmp, d / name)
        fsync_dir(d)
    except BaseException as exc:
        discard(tmp, exc)
        raise
    return name, digest


def write_manifest(d: Path, fmt: str, segments: list[str]) -> None:
    tmp = d / f".{MANIFEST}.{secrets.token_hex(6)}.tmp"
    body = json.dumps({"format": fmt, "segments": sorted(segments)}, indent=1) + "\n"
    try:
        with tmp.open("wb") as fh:
            fh.write(body.encode("ascii"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, d / MANIFEST)
        fsync_dir(d)
    except BaseException as exc:
        discard(tmp, exc)
        raise


def discard(tmp: Path, exc: BaseException) -> None:
    """A write failed: its temp file goes, and a full disk or I/O error becomes exit 9."""
    with contextlib.suppress(OSError):
        tmp.unlink()
    err = storage_error(exc)
    if isinstance(err, StorageError):
        raise err from None
