"""`turnout subscriptions create|ls|get|delete|deliveries|redeliver`: event sinks."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from app.commands.options import ApiKey, Format, Output, Server
from app.commands.output import connected, emit, emit_all, emit_line, stdout
from app.commands.render import print_to

subscriptions = typer.Typer(help="Event sinks: webhooks and Redis streams that get events.")

SubscriptionId = Annotated[str, typer.Argument(metavar="ID", help="the subscription's id")]


def _one(value: dict[str, Any], output: Format, fields: tuple[str, ...]) -> None:
    if output is Format.json:
        emit(value)
    elif output is Format.jsonl:
        emit_line(value)
    else:
        table = Table(show_header=False, expand=False)
        table.add_column("field")
        table.add_column("value", overflow="fold")
        for name in fields:
            shown = value.get(name)
            if isinstance(shown, list):
                shown = ", ".join(map(str, shown))
            elif isinstance(shown, dict):
                shown = ", ".join(f"{k} {v}" for k, v in shown.items())
            table.add_row(name, "" if shown is None else str(shown))
        print_to(stdout(), table)


FIELDS = (
    "id", "namespace", "sink", "url", "stream", "events", "workflow", "batchSize", "status",
    "deliveries",
)  # fmt: skip


@subscriptions.command("create")
def create(
    sink: Annotated[str, typer.Option(help="webhook or redis-stream")],
    events: Annotated[
        list[str], typer.Option("--events", "-e", help="a pattern (repeat): *, step.*, step.failed")
    ],
    url: Annotated[str | None, typer.Option(help="webhook: where to POST")] = None,
    stream: Annotated[str | None, typer.Option(help="redis-stream: the stream key")] = None,
    workflow: Annotated[str | None, typer.Option(help="only this workflow's events")] = None,
    namespace: Annotated[str | None, typer.Option(help="default: the key's")] = None,
    secret: Annotated[str | None, typer.Option(help="webhook secret (default: generated)")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, max=1000, help="events per delivery (> 1: a webhook gets JSON arrays)"),
    ] = None,
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """Subscribe a webhook or a Redis stream; a webhook's secret is printed this once."""
    with connected(server, api_key, output) as client:
        made = client.create_subscription(
            sink, events, url=url, stream=stream, workflow=workflow, namespace=namespace,
            secret=secret, description=description, batch_size=batch_size,
        )  # fmt: skip
    _one(made, output, (*FIELDS[:-1], "secret"))
    if output is Format.table and made.get("secret"):
        stdout().print("keep the secret: it is not shown again", markup=False)


@subscriptions.command("ls")
def list_subscriptions(
    server: Server = None, api_key: ApiKey = None, output: Output = Format.table
) -> None:
    """List subscriptions with their deliveries' counts."""
    with connected(server, api_key, output) as client:
        found = client.subscriptions()

    def table() -> None:
        t = Table(expand=False)
        for column in ("id", "sink", "target", "events", "workflow", "status", "deliveries"):
            t.add_column(column, overflow="fold")
        for s in found:
            counts = ", ".join(f"{k} {v}" for k, v in (s.get("deliveries") or {}).items())
            t.add_row(
                s["id"], s["sink"], s.get("url") or s.get("stream") or "",
                ", ".join(s["events"]), s.get("workflow") or "", s["status"], counts,
            )  # fmt: skip
        print_to(stdout(), t)

    emit_all(found, output, table)


@subscriptions.command("get")
def get(
    subscription_id: SubscriptionId,
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """Show one subscription."""
    with connected(server, api_key, output) as client:
        found = client.subscription(subscription_id)
    _one(found, output, (*FIELDS, "description", "createdAt"))


@subscriptions.command("delete")
def delete(
    subscription_id: SubscriptionId,
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """Delete a subscription and its deliveries."""
    with connected(server, api_key, output) as client:
        client.delete_subscription(subscription_id)
    if output is Format.table:
        stdout().print(f"deleted {subscription_id}", markup=False)
    else:
        (emit if output is Format.json else emit_line)({"id": subscription_id, "deleted": True})


@subscriptions.command("deliveries")
def deliveries(
    subscription_id: SubscriptionId,
    status: Annotated[str | None, typer.Option(help="pending, delivered or dead")] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many, newest first")] = 50,
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """A subscription's deliveries, newest first (--status dead: the failures)."""
    with connected(server, api_key, output) as client:
        found = []
        for item in client.deliveries(subscription_id, status=status, page_size=min(limit, 500)):
            found.append(item)
            if len(found) >= limit:
                break

    def table() -> None:
        t = Table(expand=False)
        for column in ("id", "event", "type", "status", "attempts", "last answer"):
            t.add_column(column, overflow="fold")
        for d in found:
            t.add_row(
                str(d["id"]), _events(d), d["type"], d["status"], str(d["attempts"]),
                d.get("lastError") or (str(d["lastStatus"]) if d.get("lastStatus") else ""),
            )  # fmt: skip
        print_to(stdout(), t)

    emit_all(found, output, table)


@subscriptions.command("redeliver")
def redeliver(
    subscription_id: SubscriptionId,
    delivery_id: Annotated[int, typer.Argument(metavar="DELIVERY", help="the delivery's id")],
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """Send a delivery again now (with the same event id)."""
    with connected(server, api_key, output) as client:
        found = client.redeliver(subscription_id, delivery_id)
    if output is Format.table:
        stdout().print(f"delivery {found['id']} ({found['eventId']}) queued again", markup=False)
    else:
        (emit if output is Format.json else emit_line)(found)


def register(app: typer.Typer) -> None:
    app.add_typer(subscriptions, name="subscriptions")


def _events(delivery: dict[str, Any]) -> str:
    """A delivery's first event id, and its last seq when it carries several."""
    first: str = delivery["eventId"]
    return first if delivery.get("events", 1) == 1 else f"{first}..{delivery['lastSeq']}"
