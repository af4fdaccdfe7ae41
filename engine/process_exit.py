"""Ending a `pgov` process without tearing down its heap.

When a command has done its work, CPython's finalisation still frees every object one by
one and unloads the ~1,900 modules a refresh imports (scikit-learn, SciPy, Polars, ...):
about 0.45 CPU-seconds after a 1M-customer refresh (measured, docs/performance.md), for
nothing that reaches a file. By then everything a command writes is written: versions,
audit entries and the digest cache are fsynced before the refresh returns, and a lock is a
descriptor the kernel releases when the process ends, however it ends.

`exit_now(code)` does what finalisation does that can matter outside the process, then
ends it with `os._exit(code)`, so the exit code is the command's:

1. if a thread that is not a daemon is still alive, it returns without doing anything and
   the caller exits normally (finalisation would wait for that thread; so do we);
2. it runs the atexit handlers (logging's shutdown, weakref finalizers, tempfile and
   multiprocessing clean-up), as finalisation would;
3. it flushes every open Python file object (a write still in a buffer would otherwise be
   flushed by the teardown skipped), then stdout and stderr; if any flush fails (a closed
   pipe, a full disk), it returns and the normal exit reports that as it always did.

Only the process's entry point may call it (`engine.cli.main`, the benchmarks that model a
`pgov` process): a library caller would lose its own process.
"""

from __future__ import annotations

import atexit
import gc
import io
import os
import sys
import threading


def _others_alive() -> bool:
    me = threading.current_thread()
    return any(t is not me and t.is_alive() and not t.daemon for t in threading.enumerate())


def _flush_all() -> bool:
    """Flush every open Python file object; False if one failed."""
    ok = True
    # Objects frozen by engine/heap.py are not in get_objects(): a log file opened before
    # the freeze must be flushed too. Unfreezing only moves them back (no walk).
    gc.unfreeze()
    objects = gc.get_objects()
    # One subclass test per type, not an ABC instance check per object (150k+ of them).
    files = {t for t in {type(o) for o in objects} if issubclass(t, io.IOBase)}
    for obj in objects:
        if type(obj) in files and obj is not sys.stdout and obj is not sys.stderr:
            try:
                if not obj.closed and obj.writable():
                    obj.flush()
            except ValueError:  # detached or closed meanwhile: nothing buffered to lose
                continue
            except OSError:
                ok = False
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            ok = False
    return ok


def exit_now(code: int) -> None:
    """End the process with `code` once nothing is left to wait for or flush (see the module
    docstring); returns, having done nothing irreversible, when that cannot be shown."""
    if _others_alive():
        return
    atexit._run_exitfuncs()
    if _others_alive() or not _flush_all():  # a handler started a thread or a flush failed
        return
    os._exit(code)
