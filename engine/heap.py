"""The Python heap of a refresh process: the cyclic collector kept off what lives for good.

A refresh process imports Polars, NumPy, SciPy, scikit-learn and the engine: about 150,000
objects that live until it exits. CPython's cyclic collector walks every tracked object on
each full (oldest-generation) collection, and the imports themselves set such collections
off as the heap grows: measured 2026-12-01 on the project's machine, about 0.25 CPU s of a
fresh process's 2.4 s of imports, and 0.07-0.09 s per full collection during a refresh
(about one every other refresh of 1M EU-DE), none of which ever frees anything: a module
is not garbage.

So: the imports a refresh needs run with the collector held (`held`), and what they built
is then moved to the permanent generation (`gc.freeze`), which collections skip (otherwise
the first collection after the block would walk all of it, still in the youngest
generation). At the first refresh of a process everything alive is frozen the same way
(`freeze_once`: a library caller or benchmark that imported without `held`). Objects the
refresh itself creates are collected as before. The cost is bounded: an object alive at a
freeze that later becomes cyclic garbage is never reclaimed; that is at most what existed
before the first refresh (modules and a workspace's configuration, not data: frames live
in Polars' memory, not the Python heap).

Frozen objects are not in `gc.get_objects()`: code that walks the heap (process_exit.py's
flush of every open file) must `gc.unfreeze()` first.

PGOV_GC_FREEZE=off leaves the collector exactly as CPython has it.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager

ENV = "PGOV_GC_FREEZE"
_frozen = False


def enabled() -> bool:
    return os.environ.get(ENV, "on").strip().lower() not in {"off", "0", "false", "no"}


@contextmanager
def held() -> Iterator[None]:
    """No cyclic collection inside the block (imports of modules that live for good), and
    what it built frozen at its end; the collector is on again after, also when the block
    raises. Nested or with the collector already off: changes nothing."""
    if not enabled() or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def freeze_once() -> bool:
    """Move every object alive now out of the collector's reach, once per process; True
    when this call froze."""
    global _frozen
    if _frozen or not enabled():
        return False
    _frozen = True
    gc.freeze()
    return True
