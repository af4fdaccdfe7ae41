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
# Dirty pages purged after ~300 ms instead of seconds; no muzzy stage (purged for good, not
# lazily). Measured at 1M EU-DE kyc_aml (docs/performance.md, `kycenf`): peak 1.20 -> 1.10
# GiB for about 5 % more CPU; 100 ms gave the same peak for 6-15 % more, 0 ms about 12 %
# more (the system time of faulting pages in again).
CONF = "dirty_decay_ms:300,muzzy_decay_ms:0"


def configure() -> bool:
    """Set the allocator's decay unless the environment says otherwise; True when it applies
    to this process (Polars not loaded yet), False when only child processes get it."""
    if ENV in os.environ:
        return False
    os.environ[ENV] = CONF
    return "polars" not in sys.modules
