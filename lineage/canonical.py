"""Canonical JSON: the one byte form we hash and sign.

Sorted keys, no insignificant white space, UTF-8. Digests are always taken over these
bytes (or over stored bytes), never over a re-serialisation of parsed objects.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> bytes:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_of(obj: Any) -> str:
    """sha256 hex of the canonical JSON of obj."""
    return sha256_hex(canonical_json(obj))
