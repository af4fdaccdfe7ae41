"""Helpers for the experiment and activation tests: a workspace with an approved marketing
version, tokens of raw ids, planted campaign outcomes, a local HTTP receiver.

Not collected by pytest (no test_ prefix); imported by the tests beside it.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from engine.approval import approve_version
from engine.config import Purpose
from engine.pseudonym import Pseudonymiser
from engine.pseudonym.keyring import Keyring
from engine.pseudonym.lifecycle import init_keys
from engine.refresh import run_refresh
from engine.request import RefreshRequest
from engine.workspace import Workspace

AS_OF = date(2026, 11, 1)

OUTCOME_SOURCE = """
[sources.campaign_results]
path = "data/campaign_results.parquet"
key = ["customer_id"]
[sources.campaign_results.columns]
customer_id = { type = "str", classification = "direct_identifier", required = true, references = "crm.customer_id" }
jurisdiction = { type = "str", classification = "technical", required = true }
responded = { type = "bool", classification = "outcome", required = true }
"""  # noqa: E501


def marketing_workspace(sample: Path, dest: Path, extra_toml: str = "") -> Workspace:
    """A private sample copy with pinned-open gates, keys, an outcome source declared."""
    shutil.copytree(sample, dest)
    config = dest / "pgov.toml"
    text = re.sub(
        r"stability_threshold = [0-9.]+",
        "stability_threshold = 0.0\nmin_silhouette = -1.0",
        config.read_text(),
    )
    config.write_text(text + OUTCOME_SOURCE + extra_toml)
    # An empty outcome table until the campaign reports back.
    pl.DataFrame(
        {"customer_id": [], "jurisdiction": [], "responded": []},
        schema={"customer_id": pl.String, "jurisdiction": pl.String, "responded": pl.Boolean},
    ).write_parquet(dest / "data" / "campaign_results.parquet")
    ws = Workspace.open(dest)
    init_keys(ws)
    return ws


def publish_and_approve(ws: Workspace, jurisdiction: str, actor: str) -> str:
    request = RefreshRequest(
        actor=actor, jurisdiction=jurisdiction, purpose=Purpose.MARKETING, as_of=AS_OF
    )
    result = run_refresh(ws, request)
    assert result.valid, result.manifest["invalid_reasons"]
    approve_version(ws, f"{jurisdiction}/marketing_segmentation/latest", "compliance-lead")
    return result.version.version_id


def raw_with_tokens(ws: Workspace, jurisdiction: str) -> pl.DataFrame:
    """The crm rows of a jurisdiction with their marketing token (as the engine makes it)."""
    crm = pl.read_parquet(ws.path("data/crm.parquet")).filter(
        pl.col("jurisdiction") == jurisdiction
    )
    expr = Pseudonymiser(Keyring.load(ws)).token_expr("customer_id", "marketing")
    return crm.with_columns(expr.alias("token"), pl.col("customer_id").alias("raw_id"))


def plant_outcomes(
    ws: Workspace, name: str, jurisdiction: str, rates: dict[str, float], seed: int = 1
) -> None:
    """Campaign results for an experiment's customers: response drawn at each arm's rate."""
    arms = pl.read_parquet(ws.root / "experiments" / name / "assignments.parquet")
    raw = raw_with_tokens(ws, jurisdiction).select("raw_id", "token", "jurisdiction")
    joined = raw.join(arms, left_on="token", right_on="customer_id").sort("token")
    # Exactly round(rate x arm size) responders per arm, chosen at random: the tokens (and so
    # the arms) differ with each workspace's keys, and a binomial draw would put the planted
    # lift outside its 95 % interval in one run out of twenty; an exact count never does.
    rng = np.random.default_rng(seed)
    rate = pl.col("arm").replace_strict(rates, return_dtype=pl.Float64)
    results = joined.with_columns(_u=pl.Series(rng.random(joined.height))).select(
        customer_id=pl.col("raw_id"),
        jurisdiction=pl.col("jurisdiction"),
        responded=pl.col("_u").rank("ordinal").over("arm") <= (rate * pl.len().over("arm")).round(),
    )
    results.write_parquet(ws.path("data/campaign_results.parquet"))


class Receiver:
    """A local HTTP endpoint recording every POST; `status` sets what it answers."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if outer.status < 300:
                    outer.posts.append(json.loads(body))
                    outer.headers.append(dict(self.headers.items()))
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/audiences"

    def tokens(self) -> list[str]:
        return sorted(t for post in self.posts for t in post["audience"])


@contextmanager
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()
        thread.join(timeout=5)
