"""The client commands of `turnout` (run, inspect, control, registry, offline checks)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add every command group to the `turnout` application."""
    from app.commands import control, keys, offline, registry, runs, secrets, subscriptions

    for group in (runs, control, registry, offline, keys, secrets, subscriptions):
        group.register(app)
