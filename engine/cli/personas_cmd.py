"""CLI commands (placeholder until this group's capability lands)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands or sub-app to the root app."""
