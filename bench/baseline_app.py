"""W1's baseline: a bare FastAPI app whose endpoint inserts and commits one row.

Served like the API (`python -m uvicorn bench.baseline_app:app`), on the same Postgres, with
the same engine settings (SQLAlchemy async + asyncpg, pool 10 + 10)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy import BigInteger, Column, DateTime, MetaData, Table, func, insert
from sqlalchemy.dialects.postgresql import JSONB

from app.store.database import make_engine

metadata = MetaData()
baseline_rows = Table(
    "bench_baseline",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("payload", JSONB, nullable=False),
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    engine = make_engine(os.environ["DATABASE_URL"], pool_size=10, max_overflow=10)
    app.state.engine = engine
    try:
        yield
    finally:
        await engine.dispose()


app = FastAPI(title="bench baseline", lifespan=lifespan)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/insert")
async def insert_row(payload: dict[str, Any], request: Request) -> dict[str, Any]:
    """Insert the body as one row and commit: one round trip to Postgres."""
    async with request.app.state.engine.begin() as conn:
        result = await conn.execute(
            insert(baseline_rows).values(payload=payload).returning(baseline_rows.c.id)
        )
        row_id = result.scalar_one()
    return {"id": row_id}
