"""The `turnout` command: serve, worker, migrate."""

from __future__ import annotations

import typer

from app.commands import register as register_client_commands

app = typer.Typer(
    help="Turnout: run workflows immediately or on arq workers.", no_args_is_help=True
)
register_client_commands(app)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="uvicorn worker processes."),
) -> None:
    """Run the API (with an in-process worker when REDIS_URL is not set)."""
    import uvicorn

    from app.config import get_settings
    from app.logs import configure_logging

    settings = get_settings()
    if workers > 1 and not settings.redis_url:
        # Each process would keep its own in-process queue and event bus: a stream served by
        # one would never see the events of a run in another.
        typer.echo(
            f"--workers {workers} needs REDIS_URL: without Redis every process keeps its own "
            "queue and events. Set REDIS_URL (and run `turnout worker`), or use --workers 1.",
            err=True,
        )
        raise typer.Exit(2)
    configure_logging(settings)
    from app.commands.keys import check_exposure

    check_exposure(host, settings)
    uvicorn.run("app.main:app", host=host, port=port, workers=workers, log_config=None)


@app.command()
def worker() -> None:
    """Run an arq worker on REDIS_URL."""
    from arq.worker import run_worker

    from app.config import get_settings

    if not get_settings().redis_url:
        typer.echo("REDIS_URL is not set: `turnout serve` runs queued executions itself.", err=True)
        raise typer.Exit(2)
    from worker.main import worker_options

    run_worker(worker_options(get_settings()))  # what `arq worker.main.WorkerSettings` runs


@app.command()
def migrate() -> None:
    """Apply the database migrations (alembic upgrade head) to DATABASE_URL."""
    import asyncio

    from app.config import get_settings
    from app.store.database import upgrade_schema

    url = get_settings().database_url
    asyncio.run(upgrade_schema(url))
    typer.echo("database is at the latest migration")


def main() -> None:
    app()
