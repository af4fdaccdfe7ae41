"""Shared fixtures.

`sample_workspace` (session scope): a workspace made by the `pgov init` logic, holding a
3000-customer Parquet sample (seed 7, default dirt rate, as of 2026-11-01) in data/. It is
shared by the whole session: treat it as read-only, or copy it first (`workspace_copy`).

    sample_workspace -> Path      the workspace root
    sample_ws        -> Workspace the opened workspace
    sample_summary   -> SampleSummary (rows per source, planted dirt with row numbers)
    sample_as_of     -> date      the sample's reference date
    workspace_copy   -> Path      a private copy of the sample workspace (function scope)
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from hypothesis import settings

from engine.sample import SampleSummary, generate
from engine.sample.workspace import init_workspace
from engine.workspace import Workspace

# Property tests draw the same examples on every run (seeded from each test's name) and do
# not replay examples a developer's local .hypothesis database remembers: CI runs the suite
# once, so a property that fails only on some random draw must fail here every time or never,
# not by chance. To explore new examples locally: --hypothesis-profile=explore.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile("deterministic")


@pytest.fixture(scope="session", autouse=True)
def _actor_keystore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Actor credentials (engine/actors.py) go to a temporary keystore, never ~/.config;
    set in os.environ so `pgov` subprocesses use it too."""
    before = os.environ.get("PGOV_ACTOR_KEYS")
    os.environ["PGOV_ACTOR_KEYS"] = str(tmp_path_factory.mktemp("actor-keys"))
    yield
    if before is None:
        os.environ.pop("PGOV_ACTOR_KEYS", None)
    else:
        os.environ["PGOV_ACTOR_KEYS"] = before


SAMPLE_CUSTOMERS = 3000
SAMPLE_SEED = 7
SAMPLE_AS_OF = date(2026, 11, 1)


@pytest.fixture(scope="session")
def _sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SampleSummary]:
    root = tmp_path_factory.mktemp("sample") / "ws"
    init_workspace(root, "parquet")
    summary = generate(SAMPLE_CUSTOMERS, SAMPLE_SEED, root / "data", "parquet", as_of=SAMPLE_AS_OF)
    return root.resolve(), summary


@pytest.fixture(scope="session")
def sample_workspace(_sample: tuple[Path, SampleSummary]) -> Path:
    return _sample[0]


@pytest.fixture(scope="session")
def sample_ws(sample_workspace: Path) -> Workspace:
    return Workspace.open(sample_workspace)


@pytest.fixture(scope="session")
def sample_summary(_sample: tuple[Path, SampleSummary]) -> SampleSummary:
    return _sample[1]


@pytest.fixture(scope="session")
def sample_as_of() -> date:
    return SAMPLE_AS_OF


@pytest.fixture()
def workspace_copy(sample_workspace: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "ws"
    shutil.copytree(sample_workspace, dest)
    return dest


@pytest.fixture(scope="session")
def _clean_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clean_csv") / "ws"
    init_workspace(root, "csv")
    generate(80, 3, root / "data", "csv", dirt_rate=0.0, as_of=SAMPLE_AS_OF)
    return root


@pytest.fixture()
def clean_csv_workspace(_clean_csv: Path, tmp_path: Path) -> Path:
    """A private CSV workspace with 80 customers and no planted dirt, for editing cells."""
    dest = tmp_path / "csvws"
    shutil.copytree(_clean_csv, dest)
    return dest
