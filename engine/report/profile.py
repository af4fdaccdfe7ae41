"""Persona profiles in comparable units: centroids in population standard deviations, and
the features that set each persona apart most. Shared by the report and `personas show`."""

from __future__ import annotations

from typing import Any


def persona_label(pid: Any, name: Any) -> str:
    return f"{'-' if pid is None else pid} {name}"


def standardised(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per persona and feature: z = (centroid - population mean) / population std."""
    pop = doc.get("population") or {}
    rows = []
    for p in doc["personas"]:
        for feature, value in sorted((p.get("centroid") or {}).items()):
            stats = pop.get(feature) or {}
            std = float(stats.get("std") or 0.0)
            if value is None or std <= 0:
                continue
            z = (float(value) - float(stats.get("mean", 0.0))) / std
            rows.append(
                {
                    "persona_id": p["persona_id"],
                    "persona": persona_label(p["persona_id"], p["name"]),
                    "feature": feature,
                    "z": round(z, 3),
                }
            )
    return rows


def top_features(doc: dict[str, Any], n: int = 3) -> dict[Any, list[str]]:
    """persona_id -> its n features furthest from the population mean, e.g. 'utilisation +1.3σ'."""
    by: dict[Any, list[tuple[float, str]]] = {}
    for r in standardised(doc):
        by.setdefault(r["persona_id"], []).append((abs(r["z"]), f"{r['feature']} {r['z']:+.1f}σ"))
    return {k: [s for _, s in sorted(v, key=lambda t: (-t[0], t[1]))[:n]] for k, v in by.items()}
