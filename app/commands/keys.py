"""`turnout keys create|ls|revoke`: API keys, straight in the database (so the first key can
be made before any exists)."""

from __future__ import annotations

import asyncio
import getpass
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from app.auth.keys import KeyInvalid, check_name, hash_token, new_token, parse_scopes
from app.commands.options import Format, Output
from app.commands.output import emit, emit_all, note, stdout
from app.config import Settings, get_settings
from app.store.audit import AuditEntry, AuditStore
from app.store.database import create_engine
from app.store.keys import KeyNameTaken, KeyStore

keys = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
T = TypeVar("T")


def on_database(work: Callable[[KeyStore, AuditStore], Awaitable[T]]) -> T:
    """Run `work` on DATABASE_URL's stores; a database not migrated is a clear error."""

    async def go() -> T:
        engine = create_engine(get_settings())
        try:
            return await work(KeyStore(engine), AuditStore(engine))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except (KeyInvalid, KeyNameTaken) as exc:
        note(f"error: {exc.__doc__ if isinstance(exc, KeyNameTaken) else exc}")
        raise typer.Exit(2) from None
    except Exception as exc:
        if "no such table" in str(exc) or "does not exist" in str(exc):
            note("error: the database has no keys table yet: run `turnout migrate` first")
            raise typer.Exit(2) from None
        raise


def cli_entry(action: str, target: str, details: dict[str, Any] | None = None) -> AuditEntry:
    """An audit row for a change made from this terminal (the OS user is the label)."""
    return AuditEntry("cli", "default", action, target, "local", getpass.getuser(), details)


@keys.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="a unique name; events record it")],
    namespace: Annotated[str, typer.Option("--namespace", help="where the key acts")] = "default",
    scopes: Annotated[
        str, typer.Option("--scopes", help="comma-separated: read, run, control, admin")
    ] = "read",
    output: Output = Format.table,
) -> None:
    """Create a key. Its secret is printed once; only its SHA-256 hash is stored."""

    async def work(store: KeyStore, audit: AuditStore) -> dict[str, Any]:
        chosen = parse_scopes(scopes)
        token = new_token()
        record = await store.create(
            check_name("name", name),
            check_name("namespace", namespace),
            chosen,
            hash_token(token),
            token[:8],
        )
        await audit.append(cli_entry("key.create", f"key/{name}", {"scopes": chosen}))
        return {**record.public(), "key": token}

    created = on_database(work)
    if output is Format.table:
        note(
            f"key {created['name']} (namespace {created['namespace']}, "
            f"scopes {','.join(created['scopes'])}); shown once, keep it safe:"
        )
        typer.echo(created["key"])
    else:
        emit(created)


@keys.command("ls")
def list_keys(output: Output = Format.table) -> None:
    """Every key (revoked ones too), never their secrets."""
    found = on_database(lambda store, _audit: store.list())
    rows = [k.public() for k in found]

    def table() -> None:
        t = Table("NAME", "NAMESPACE", "SCOPES", "HINT", "CREATED", "LAST USED", "REVOKED")
        for r in rows:
            t.add_row(
                r["name"],
                r["namespace"],
                ",".join(r["scopes"]),
                r["hint"] + "…",
                r["createdAt"][:19],
                (r["lastUsedAt"] or "-")[:19],
                (r["revokedAt"] or "-")[:19],
            )
        stdout().print(t)

    emit_all(rows, output, table)


@keys.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="the key's name")]) -> None:
    """Revoke a key at once (its dashboard sessions end too); auth stays on."""

    async def work(store: KeyStore, audit: AuditStore) -> bool:
        done = await store.revoke(name)
        if done:
            await audit.append(cli_entry("key.revoke", f"key/{name}"))
        return done

    if not on_database(work):
        note(f"error: no live key named {name!r}")
        raise typer.Exit(1)
    note(f"key {name} revoked")


def check_exposure(host: str, settings: Settings) -> None:
    """`turnout serve` on a non-loopback address needs auth on, or TURNOUT_AUTH=off said aloud."""
    if _is_loopback(host) or settings.auth == "required":
        return
    if settings.auth == "off":
        logging.getLogger("app.cli").warning(
            "serving on %s with authentication OFF (TURNOUT_AUTH=off): anyone who can reach "
            "this address can run, read and cancel everything",
            host,
        )
        return

    async def any_key() -> bool:
        engine = create_engine(settings)
        try:
            return await KeyStore(engine).any_exist()
        except Exception:  # no database or no keys table yet: no keys
            return False
        finally:
            await engine.dispose()

    if not asyncio.run(any_key()):
        note(
            f"refusing to serve on {host} with authentication off: create a key first "
            "(`turnout keys create --name admin --scopes admin`), or set TURNOUT_AUTH=required, "
            "or TURNOUT_AUTH=off to serve it open anyway"
        )
        raise typer.Exit(2)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def register(app: typer.Typer) -> None:
    app.add_typer(keys, name="keys")
