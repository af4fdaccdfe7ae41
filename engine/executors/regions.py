"""Which region's workers may run a jurisdiction's refresh (data residency).

Default rule: the region is the jurisdiction's prefix before the first '-', upper-cased
(EU-DE -> EU, US-CA -> US, UK -> UK, SG -> SG, BR -> BR). Overrides, most specific first:
an explicit mapping passed by the caller, then ``PGOV_REGION_MAP`` ("CH=EU,GB=UK"). A
Dask worker serves a region by advertising the resource ``region-<REGION>``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from engine.errors import UsageError

ENV_VAR = "PGOV_REGION_MAP"
_REGION = re.compile(r"^[A-Z0-9][A-Z0-9_]*$")


def parse_region_map(text: str) -> dict[str, str]:
    """'CH=EU, GB=UK' -> {'CH': 'EU', 'GB': 'UK'}; refuses anything ambiguous."""
    out: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        j, sep, r = item.partition("=")
        j, r = j.strip(), r.strip().upper()
        if not sep or not j or not _REGION.fullmatch(r):
            raise UsageError(f"{ENV_VAR}: '{item}' is not JURISDICTION=REGION")
        if j in out and out[j] != r:
            raise UsageError(f"{ENV_VAR}: '{j}' mapped to both {out[j]} and {r}")
        out[j] = r
    return out


def region_of(jurisdiction: str, overrides: Mapping[str, str] | None = None) -> str:
    for table in (overrides or {}, parse_region_map(os.environ.get(ENV_VAR, ""))):
        if jurisdiction in table:
            return table[jurisdiction].upper()
    region = jurisdiction.split("-", 1)[0].upper()
    if not _REGION.fullmatch(region):
        raise UsageError(f"cannot derive a region from jurisdiction '{jurisdiction}'")
    return region


def resource_name(region: str) -> str:
    return f"region-{region}"
