#! /usr/bin/env bash
# Wait until DATABASE_URL answers, then apply the migrations (`turnout migrate`).
# For platforms without compose's depends_on (an init container, a release phase).
set -euo pipefail

tries="${PRESTART_TRIES:-60}"

python - "$tries" <<'PY'
import asyncio
import sys
import time

from sqlalchemy import text

from app.config import get_settings
from app.store.database import make_engine


async def ping(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


url = get_settings().database_url
for attempt in range(1, int(sys.argv[1]) + 1):
    try:
        asyncio.run(asyncio.wait_for(ping(url), timeout=5))
        break
    except Exception as exc:
        print(f"database not ready (attempt {attempt}): {exc!r}", file=sys.stderr)
        time.sleep(1)
else:
    sys.exit("database did not become ready")
PY

turnout migrate
