"""Polars' allocator: freed memory goes back to the system promptly.

Polars allocates through jemalloc, which keeps freed pages resident for a while (its decay
time) to reuse them. A refresh frees large frames all the time, on purpose: enforcement
drops each source column as soon as its governed copy exists, features drop each governed
source once aggregated. With the default decay those pages are still resident when the next
column is allocated, so the process holds what it freed in the last moments beside what it
builds: at 10M customers that sets the refresh's peak RSS (docs/performance.md, `kycenf`),
and the local pool admits jobs by their measured peaks.

jemalloc reads `_RJEM_MALLOC_CONF` once, when Polars' library loads, so `engine/__init__.py`
sets it before anything imports Polars (and every process the refresh spawns inherits it).
A value the user exported wins.
"""

from __future__ import annotations

import os
import sys

ENV = "_RJEM_MALLOC_CONF"
# Dirty pages purged after ~2 s instead of jemalloc's 10 s; no muzzy stage (purged for good,
# not lazily). 300 ms (`kycenf`) held the 1M peak lowest but each stage then faulted its
# pages in again: 2 s costs 8 % less CPU at 1M and 7-11 % at 10M EU-DE, for +0.4-0.6 GiB
# on a 10M EU-DE peak (still under 8 GiB) and the same pool peak for all ten
# (docs/performance.md, "The allocator's decay, chosen again").
CONF = "dirty_decay_ms:2000,muzzy_decay_ms:0"


def configure() -> bool:
    """Set the allocator's decay unless the environment says otherwise; True when it applies
    to this process (Polars not loaded yet), False when only child processes get it."""
    if ENV in os.environ:
        return False
    os.environ[ENV] = CONF
    return "polars" not in sys.modules
