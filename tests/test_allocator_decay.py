"""engine sets Polars' allocator decay before Polars loads, unless the user chose one."""

from __future__ import annotations

import os
import subprocess
import sys

from engine.allocator import CONF, ENV

PROBE = (
    "import os, sys; import engine; "
    "print(os.environ.get('_RJEM_MALLOC_CONF')); print('polars' in sys.modules)"
)


def _run(env: dict[str, str]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.split("\n")


def test_importing_engine_sets_the_decay_before_polars_loads() -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    conf, polars_loaded = _run(env)[:2]
    assert conf == CONF
    assert polars_loaded == "False"  # so jemalloc reads it when Polars' library loads


def test_a_decay_the_user_exported_wins() -> None:
    env = {**os.environ, ENV: "dirty_decay_ms:5000"}
    assert _run(env)[0] == "dirty_decay_ms:5000"


def test_the_setting_is_inherited_by_child_processes() -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    code = (
        "import engine, subprocess, sys; "
        "print(subprocess.run([sys.executable, '-c', "
        "'import os; print(os.environ.get(\"_RJEM_MALLOC_CONF\"))'], "
        "capture_output=True, text=True).stdout.strip())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == CONF
