"""The client commands of `turnout` (run, inspect, control, registry, offline checks)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add every command group to the `turnout` application."""
    from app.commands import (
        circuits,
        control,
        keys,
        offline,
        registry,
        runs,
        schedules,
        secrets,
        send,
        subscriptions,
    )

    groups = (runs, control, registry, schedules, offline, keys, secrets, send, circuits)
    for group in (*groups, subscriptions):
        group.register(app)
