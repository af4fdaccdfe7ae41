"""Thread limits for the native pools (OpenMP, BLAS) the segmentation fits run on.

    threads_for(n_rows) -> context manager: one thread below SINGLE_THREAD_ROWS rows
    single_thread(user_api=None) -> context manager: one thread

`threadpoolctl.threadpool_limits(...)` scans every loaded shared library each time it is
entered (about 7 ms under load, measured: 0.22 s of one 1M-customer segmentation went to
33 scans). One controller, built once the native libraries are loaded, is reused instead.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import sklearn.cluster  # noqa: F401  (loads the OpenMP and BLAS runtimes the controller finds)
from threadpoolctl import ThreadpoolController

# Below this many rows (so: every fit on the default 50k sample), OpenMP threads cost more than
# they save when other processes share the cores: measured on a busy 2-core machine, a
# 1,500-row KMeans fit took 11 s threaded vs 0.08 s single-threaded, a 50k x 20 fit 19 s vs
# 3.1 s. Assigning millions of rows keeps the threads.
SINGLE_THREAD_ROWS = 100_000

_controller: ThreadpoolController | None = None


def _get() -> ThreadpoolController:
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller


def single_thread(user_api: str | None = None) -> AbstractContextManager[Any]:
    return _get().limit(limits=1, user_api=user_api)


def threads_for(n_rows: int) -> AbstractContextManager[Any]:
    return single_thread() if n_rows < SINGLE_THREAD_ROWS else nullcontext()
