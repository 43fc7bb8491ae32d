"""Reading Postgres plans in tests: EXPLAIN's JSON, its nodes, the buffers they touched.
Buffer counts do not depend on the machine's speed, so plan tests assert them."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


async def explain(conn: AsyncConnection, sql: str, params: Any = None) -> dict[str, Any]:
    """`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` of `sql` on `conn` (it runs: roll back
    what it writes); the top object, whose "Plan" is the root node."""
    plan = await conn.scalar(text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"), params)
    return dict((json.loads(plan) if isinstance(plan, str) else plan)[0])


def nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The node and every node under it."""
    return [node, *(n for child in node.get("Plans", []) for n in nodes(child))]


def buffers(node: dict[str, Any]) -> int:
    """Shared buffers the node touched (hit or read), its children's included."""
    return int(node["Shared Hit Blocks"]) + int(node["Shared Read Blocks"])
