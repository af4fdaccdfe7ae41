"""Headless Chromium: print a report to PDF (and, in tests, load it like a reader would).

The flags keep Chromium from reaching the network on its own (updates, sync, QUIC) and give
each run a fresh profile; --virtual-time-budget lets the page's scripts draw the charts
before printing.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from engine.errors import PgovError, UsageError

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def print_pdf(html_file: Path, pdf_file: Path, *, budget_ms: int = 20_000) -> None:
    """Print ``html_file`` to ``pdf_file``; refuse (exit 2) when no Chromium is installed."""
    exe = find_chromium()
    if exe is None:
        raise UsageError(
            "--pdf needs Chromium: install it (Debian: apt-get install -y chromium) or "
            "write HTML and print it from a browser"
        )
    with tempfile.TemporaryDirectory(prefix="pgov-chromium-") as profile:
        tmp = pdf_file.with_name(f".{pdf_file.name}.tmp")
        cmd = [
            exe,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={tmp}",
            html_file.resolve().as_uri(),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=180, check=False)
        except subprocess.TimeoutExpired:
            tmp.unlink(missing_ok=True)
            raise PgovError("Chromium did not finish printing the PDF within 180 s") from None
        if proc.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            tmp.unlink(missing_ok=True)
            raise PgovError(f"Chromium could not print the PDF (exit {proc.returncode})")
        tmp.replace(pdf_file)
