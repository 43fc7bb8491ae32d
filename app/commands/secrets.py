"""`turnout secrets set|ls|rm`: per-namespace secrets, encrypted with TURNOUT_SECRET_KEY, set
straight in the database (the value comes from stdin, never from an argument)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from app.auth.keys import KeyInvalid, check_name
from app.auth.vault import Vault, VaultUnavailable
from app.commands.keys import cli_entry
from app.commands.options import Format, Output
from app.commands.output import emit_all, note, stdout
from app.config import get_settings
from app.store.audit import AuditStore
from app.store.database import create_engine
from app.store.secrets import SecretStore

secrets = typer.Typer(help="Secrets for `{{ secrets.NAME }}`: set (stdin), list, remove.")
T = TypeVar("T")
Namespace = Annotated[str, typer.Option("--namespace", help="whose secret")]
Name = Annotated[str, typer.Argument(help="letters, digits, '_'")]


def _run(work: Callable[[SecretStore, AuditStore], Awaitable[T]]) -> T:
    async def go() -> T:
        engine = create_engine(get_settings())
        try:
            return await work(SecretStore(engine), AuditStore(engine))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except (KeyInvalid, VaultUnavailable) as exc:
        note(f"error: {exc}")
        raise typer.Exit(2) from None


def _name(value: str) -> str:
    if not value.replace("_", "a").isalnum() or value[0].isdigit():
        raise KeyInvalid(f"secret name {value!r} must be letters, digits and '_'")
    return value


@secrets.command("set")
def set_secret(name: Name, namespace: Namespace = "default") -> None:
    """Set NAME to the value read from stdin (one trailing newline is dropped)."""
    value = sys.stdin.read()
    value = value[:-1] if value.endswith("\n") else value
    if not value:
        note('error: no value on stdin (e.g. `printf %s "$TOKEN" | turnout secrets set NAME`)')
        raise typer.Exit(2)

    async def work(store: SecretStore, audit: AuditStore) -> None:
        token = Vault(get_settings().secret_key).encrypt(value)
        await store.put(check_name("namespace", namespace), _name(name), token)
        await audit.append(cli_entry("secret.set", f"secret/{namespace}/{name}"))

    _run(work)
    note(f"secret {name} set in namespace {namespace}")


@secrets.command("ls")
def list_secrets(namespace: Namespace = "default", output: Output = Format.table) -> None:
    """The names of a namespace's secrets (never their values)."""
    found = _run(lambda store, _audit: store.names(namespace))
    rows = [{"name": n, "namespace": namespace, "updatedAt": at.isoformat()} for n, at in found]

    def table() -> None:
        t = Table("NAME", "UPDATED")
        for r in rows:
            t.add_row(r["name"], r["updatedAt"][:19])
        stdout().print(t)

    emit_all(rows, output, table)


@secrets.command("rm")
def remove_secret(name: Name, namespace: Namespace = "default") -> None:
    """Remove a secret; runs that read it fail validation from now on."""

    async def work(store: SecretStore, audit: AuditStore) -> bool:
        done = await store.remove(namespace, name)
        if done:
            await audit.append(cli_entry("secret.remove", f"secret/{namespace}/{name}"))
        return done

    if not _run(work):
        note(f"error: no secret {name!r} in namespace {namespace}")
        raise typer.Exit(1)
    note(f"secret {name} removed")


def register(app: typer.Typer) -> None:
    app.add_typer(secrets, name="secrets")
