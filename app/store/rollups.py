"""Hourly rollups of the executions that ended, for the analytics at 10^6 runs.

Key: (workflow, version, hour the run was created in). Per key: counts by status, the sums
behind every mean, the error codes (`execution_rollup_errors`) and a fixed log-scale
histogram of durations. Bucket 0 holds durations under 1 ms; bucket k (1..126) holds
[2^((k-1)/5), 2^(k/5)) ms, 14.9 % wide; bucket 127 everything from 2^(126/5) ms (10.9 h)
up to `dur_max`. A percentile read from it lies in the same bucket as the exact one.

The reconciler folds them (`RollupStore.fold`): the runs that ended since the watermark are
added to their keys (one UPSERT of their sums), so a pass reads what ended since the last one,
not the whole hour. A key holding a run that ended in a later attempt (a retry: its earlier
end may be in the key already) is recomputed from its rows instead, so a retried run is
counted once, in its last status. Runs that ended after the watermark, and live ones, are
read from the executions themselves by the analytics.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from app.engine.state import utcnow
from app.store.base import StoreBase
from app.store.tables import EXECUTION_STATUSES, HISTOGRAM_BUCKETS

TERMINAL = ("completed", "failed", "cancelled")
LIVE = tuple(s for s in EXECUTION_STATUSES if s not in TERMINAL)
PER_OCTAVE = 5
RATIO = 2 ** (1 / PER_OCTAVE)
# How far behind now the fold stays: a transaction that stamped `completed_at` a little
# before it committed is still folded.
FOLD_LAG = timedelta(seconds=10)
SUM_COLUMNS = (
    *(f"n_{s}" for s in EXECUTION_STATUSES),
    "dur_n",
    "wait_n",
    "wait_sum",
    "retries_sum",
    "cpu_n",
    "cpu_sum",
    "sent_n",
    "sent_sum",
    "recv_n",
    "recv_sum",
    *(f"h{k}" for k in range(HISTOGRAM_BUCKETS)),
)


def bucket_bounds(k: int, dur_max: float) -> tuple[float, float]:
    """[lower, upper) of histogram bucket k, in ms."""
    if k == 0:
        return 0.0, min(1.0, dur_max)
    upper = dur_max if k == HISTOGRAM_BUCKETS - 1 else RATIO**k
    return RATIO ** (k - 1), max(RATIO ** (k - 1), upper)


def percentile(hist: list[float], p: float, dur_max: float) -> float | None:
    """`percentile_cont(p)` estimated from the histogram: the rank p * (n - 1) is found in
    its bucket and placed inside it (geometrically; linearly in bucket 0)."""
    n = sum(hist)
    if n <= 0:
        return None
    pos = p * (n - 1)
    seen = 0.0
    for k, count in enumerate(hist):
        if count and seen + count > pos:
            lo, hi = bucket_bounds(k, dur_max)
            t = (pos - seen + 0.5) / count
            value = lo + (hi - lo) * t if k == 0 or lo <= 0 else lo * (hi / lo) ** t
            return min(value, dur_max)
        seen += count
    return dur_max


def _dialect_sql(dialect: str) -> dict[str, str]:
    if dialect == "postgresql":
        return {
            "dur": "date_part('epoch', completed_at - started_at) * 1000",
            "wait": "date_part('epoch', started_at - created_at) * 1000",
            "code": "error->>'code'",
            "hour": "date_bin('1 hour', created_at, 'epoch')",
            "least": "LEAST",
            "greatest": "GREATEST({a}, {b})",
        }
    return {
        "dur": sqlite_ms("completed_at", "started_at"),
        "wait": sqlite_ms("started_at", "created_at"),
        "code": "json_extract(error, '$.code')",
        "hour": "strftime('%Y-%m-%d %H:00:00.000000', created_at)",
        "least": "MIN",
        "greatest": "COALESCE(MAX({a}, {b}), {a}, {b})",  # MAX(x, NULL) is NULL here
    }


def source_sql(dialect: str, where: str, bucket: str | None = None) -> str:
    """The per-run values the aggregates read, from `workflow_executions` WHERE `where`.
    `bucket`: an expression over `created_at` for the column `b` (default the hour)."""
    d = _dialect_sql(dialect)
    terminal = ", ".join(f"'{s}'" for s in TERMINAL)
    return f"""SELECT workflow_name AS w, COALESCE(workflow_version, '') AS v, status,
    {bucket or d["hour"]} AS b, dur,
    CASE WHEN dur IS NULL THEN NULL WHEN dur < 1 THEN 0
         ELSE CAST({d["least"]}({HISTOGRAM_BUCKETS - 1},
                   1 + floor({PER_OCTAVE} * ln(dur) / ln(2))) AS INTEGER) END AS idx,
    wait, retries, cpu_ms, bytes_sent, bytes_received, code
  FROM (SELECT workflow_name, workflow_version, status, created_at, cpu_ms, bytes_sent,
          bytes_received,
          CASE WHEN status IN ({terminal}) AND started_at IS NOT NULL
                    AND completed_at IS NOT NULL THEN {d["dur"]} END AS dur,
          CASE WHEN started_at IS NOT NULL THEN {d["wait"]} END AS wait,
          CASE WHEN status IN ({terminal}) THEN step_retries END AS retries,
          CASE WHEN status = 'failed' THEN {d["code"]} END AS code
        FROM workflow_executions WHERE {where}) raw"""


def aggregate_sql(source: str, keys: str) -> str:
    """The rollup's columns (SUM_COLUMNS, then dur_max) per `keys` over `source_sql` rows.
    Two levels: per key and histogram bucket first, so the 128 bucket columns are pivoted
    from a few rows per key instead of every run."""
    partials = [
        f"SUM(CASE WHEN status = '{s}' THEN 1 ELSE 0 END) AS n_{s}" for s in EXECUTION_STATUSES
    ]
    partials += [
        "COUNT(dur) AS dur_n",
        "COUNT(wait) AS wait_n",
        "COALESCE(SUM(wait), 0) AS wait_sum",
        "COALESCE(SUM(retries), 0) AS retries_sum",
        "COUNT(cpu_ms) AS cpu_n",
        "COALESCE(SUM(cpu_ms), 0) AS cpu_sum",
        "COUNT(bytes_sent) AS sent_n",
        "COALESCE(SUM(bytes_sent), 0) AS sent_sum",
        "COUNT(bytes_received) AS recv_n",
        "COALESCE(SUM(bytes_received), 0) AS recv_sum",
        "MAX(dur) AS dur_max",
    ]
    outer = [
        f"SUM(CASE WHEN idx = {k} THEN dur_n ELSE 0 END)" if c.startswith("h") else f"SUM({c})"
        for k, c in ((_bucket_of(c), c) for c in SUM_COLUMNS)
    ]
    outer.append("MAX(dur_max)")
    names = [*SUM_COLUMNS, "dur_max"]
    return f"""SELECT {keys}, {", ".join(f"{e} AS {n}" for e, n in zip(outer, names, strict=True))}
FROM (SELECT {keys}, idx, {", ".join(partials)} FROM ({source}) r GROUP BY {keys}, idx) p
GROUP BY {keys}"""


def _bucket_of(column: str) -> int:
    return int(column[1:]) if column.startswith("h") else -1


def _fold_statements(dialect: str, full: bool, dirty: str = "") -> list[str]:
    """Recompute the rollup keys that the query `dirty` selects (w, v, b); all keys if
    `full`. Only runs ended at or before :new are folded."""
    terminal = ", ".join(f"'{s}'" for s in TERMINAL)
    folded = f"status IN ({terminal}) AND completed_at <= :new"
    columns = ", ".join(("workflow_name", "workflow_version", "bucket_start", *SUM_COLUMNS))
    columns += ", dur_max"
    if full:
        return [
            "DELETE FROM execution_rollup_errors",
            "DELETE FROM execution_rollups",
            f"""INSERT INTO execution_rollups ({columns})
{aggregate_sql(source_sql(dialect, folded), "w, v, b")}""",
            f"""INSERT INTO execution_rollup_errors
  (workflow_name, workflow_version, bucket_start, code, n)
SELECT w, v, b, code, COUNT(*) FROM ({source_sql(dialect, folded)}) r
WHERE code IS NOT NULL GROUP BY w, v, b, code""",
        ]
    # The keys to recompute, then each key's rows (by workflow and creation time: the
    # index on (workflow_name, created_at)).
    cast = "d.b"
    if dialect == "postgresql":
        upper = "d.b + interval '1 hour'"
    else:
        upper = "strftime('%Y-%m-%d %H:%M:%S.000000', d.b, '+1 hour')"
    # Driven from the few dirty keys, through the index on (workflow_name, created_at).
    in_dirty = f"""id IN (SELECT e.id FROM dirty_keys d JOIN workflow_executions e
  ON e.workflow_name = d.w AND e.created_at >= {cast} AND e.created_at < {upper}
  WHERE COALESCE(e.workflow_version, '') = d.v)"""
    key_match = """EXISTS (SELECT 1 FROM dirty_keys d WHERE d.w = {t}.workflow_name
  AND d.v = {t}.workflow_version AND d.b = {t}.bucket_start)"""
    return [
        "DELETE FROM dirty_keys",
        f"INSERT INTO dirty_keys (w, v, b) {dirty}",
        "SELECT COUNT(*) FROM dirty_keys",  # none: nothing to recompute (see _run)
        "DELETE FROM execution_rollup_errors WHERE "
        + key_match.format(t="execution_rollup_errors"),
        "DELETE FROM execution_rollups WHERE " + key_match.format(t="execution_rollups"),
        f"""INSERT INTO execution_rollups ({columns})
{aggregate_sql(source_sql(dialect, f"{folded} AND {in_dirty}"), "w, v, b")}""",
        f"""INSERT INTO execution_rollup_errors
  (workflow_name, workflow_version, bucket_start, code, n)
SELECT w, v, b, code, COUNT(*) FROM ({source_sql(dialect, f"{folded} AND {in_dirty}")}) r
WHERE code IS NOT NULL GROUP BY w, v, b, code""",
    ]


@functools.cache  # a pass a second; the statements depend on the dialect only
def _increment_statements(dialect: str) -> tuple[str, ...]:
    """Add the runs that ended in (:old, :new] in their first attempt to their keys, except
    the keys in `dirty_keys` (recomputed from their rows in the same pass)."""
    d = _dialect_sql(dialect)
    terminal = ", ".join(f"'{s}'" for s in TERMINAL)
    not_dirty = f"""NOT EXISTS (SELECT 1 FROM dirty_keys d WHERE d.w = workflow_name
  AND d.v = COALESCE(workflow_version, '') AND d.b = {d["hour"]})"""
    new = f"""status IN ({terminal}) AND completed_at > :old AND completed_at <= :new
  AND attempt = 1 AND {not_dirty}"""
    key = "workflow_name, workflow_version, bucket_start"
    sums = [f"{c} = execution_rollups.{c} + excluded.{c}" for c in SUM_COLUMNS]
    sums.append(
        "dur_max = " + d["greatest"].format(a="execution_rollups.dur_max", b="excluded.dur_max")
    )
    columns = ", ".join((key, *SUM_COLUMNS, "dur_max"))
    # `WHERE true`: SQLite's parser needs it between a SELECT and an upsert clause.
    return (
        f"""INSERT INTO execution_rollups ({columns})
SELECT * FROM ({aggregate_sql(source_sql(dialect, new), "w, v, b")}) a WHERE true
ON CONFLICT ({key}) DO UPDATE SET {", ".join(sums)}""",
        f"""INSERT INTO execution_rollup_errors ({key}, code, n)
SELECT w, v, b, code, COUNT(*) FROM ({source_sql(dialect, new)}) r
WHERE code IS NOT NULL GROUP BY w, v, b, code
ON CONFLICT ({key}, code) DO UPDATE SET n = execution_rollup_errors.n + excluded.n""",
    )


@functools.cache
def _retried_keys(dialect: str) -> str:
    """The keys holding a run that ended in (:old, :new] in a later attempt: recomputed."""
    d = _dialect_sql(dialect)
    terminal = ", ".join(f"'{s}'" for s in TERMINAL)
    return f"""SELECT DISTINCT workflow_name AS w, COALESCE(workflow_version, '') AS v,
  {d["hour"]} AS b FROM workflow_executions
  WHERE status IN ({terminal}) AND completed_at > :old AND completed_at <= :new
    AND attempt > 1"""


def _temp_table(dialect: str) -> str:
    kind = "TEMPORARY TABLE IF NOT EXISTS"
    return f"CREATE {kind} dirty_keys (w VARCHAR(200), v VARCHAR(100), b {_ts(dialect)})"


def _ts(dialect: str) -> str:
    return "timestamptz" if dialect == "postgresql" else "TEXT"


def rebuild_sync(conn: Connection, now: datetime | None = None) -> None:
    """Rebuild every rollup from the stored rows (the migration's backfill)."""
    new = (now or utcnow()) - FOLD_LAG
    params = _bind_params(conn.dialect.name, {"new": new})
    for sql in _fold_statements(conn.dialect.name, full=True):
        conn.execute(text(sql), params)
    _set_watermark_sync(conn, params["new"])


def _set_watermark_sync(conn: Connection, new: Any) -> None:
    conn.execute(text("DELETE FROM analytics_watermark"))
    conn.execute(
        text("INSERT INTO analytics_watermark (id, folded_until) VALUES (1, :new)"), {"new": new}
    )


def _bind_params(dialect: str, params: dict[str, Any]) -> dict[str, Any]:
    if dialect != "sqlite":
        return params
    return {k: sqlite_text(v) for k, v in params.items()}


def sqlite_text(value: Any) -> Any:
    """A datetime in SQLite's stored form (naive UTC text), to compare as text."""
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def sqlite_ms(end: str, start: str) -> str:
    """`end - start` in ms on SQLite's `YYYY-MM-DD HH:MM:SS.ffffff` text, to the microsecond
    (julianday() keeps only milliseconds)."""
    seconds = f"(CAST(strftime('%s', {end}) AS INTEGER) - CAST(strftime('%s', {start}) AS INTEGER))"
    micros = f"(CAST(substr({end}, 21) AS REAL) - CAST(substr({start}, 21) AS REAL))"
    return f"({seconds} * 1000.0 + {micros} / 1000.0)"


class RollupStore(StoreBase):
    async def watermark(self, conn: AsyncConnection, lock: bool = False) -> datetime | None:
        """How far the rollups hold; `lock` (a pass): the row stays locked to the end of the
        transaction, so two passes take turns (a pass adds, so two at once would add twice;
        the second then reads the first's watermark and adds only what ended after it)."""
        sql = "SELECT folded_until FROM analytics_watermark"
        if lock and self.dialect == "postgresql":  # SQLite: the writer lock serialises passes
            sql += " FOR UPDATE"
        value = (await conn.execute(text(sql))).scalar()
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    async def fold(self, *, full: bool = False, lag: timedelta = FOLD_LAG) -> None:
        """Fold every run that ended since the watermark (up to now - `lag`); `full`:
        rebuild every key."""
        new = utcnow() - lag
        async with self._write() as conn:
            old = await self.watermark(conn, lock=True)
            if old is not None and old >= new:
                return
            full = full or old is None
            if not full:
                await conn.execute(text(_temp_table(self.dialect)))
            raw = {"new": new} if full else {"new": new, "old": old}
            params = _bind_params(self.dialect, raw)
            if full:
                await self._run(conn, _fold_statements(self.dialect, full=True), params)
            else:
                retried = _retried_keys(self.dialect)
                await self._run(conn, _fold_statements(self.dialect, False, retried), params)
                for sql in _increment_statements(self.dialect):
                    await conn.execute(text(sql), params)
            if old is not None:  # an UPDATE, so that a pass waiting on the lock reads it
                await conn.execute(
                    text("UPDATE analytics_watermark SET folded_until = :new"),
                    {"new": params["new"]},
                )
                return
            await conn.execute(text("DELETE FROM analytics_watermark"))
            await conn.execute(
                text("INSERT INTO analytics_watermark (id, folded_until) VALUES (1, :new)"),
                {"new": params["new"]},
            )

    async def refold_through(self, cutoff: datetime) -> None:
        """Recompute every key of an hour starting at or before `cutoff` from the rows still
        stored (after retention deleted some): a key with no rows left disappears."""
        async with self._write() as conn:
            mark = await self.watermark(conn)
            if mark is None:
                return
            await conn.execute(text(_temp_table(self.dialect)))
            dirty = """SELECT workflow_name, workflow_version, bucket_start
  FROM execution_rollups WHERE bucket_start <= :cutoff"""
            params = _bind_params(self.dialect, {"new": mark, "cutoff": cutoff})
            await self._run(conn, _fold_statements(self.dialect, full=False, dirty=dirty), params)

    async def _run(self, conn: AsyncConnection, statements: list[str], params: Any) -> None:
        for sql in statements:
            result = await conn.execute(text(sql), params)
            if sql.startswith("SELECT COUNT(*) FROM dirty_keys"):
                if not result.scalar():
                    return
                if self.dialect == "postgresql":  # the temporary table has no statistics
                    await conn.execute(text("ANALYZE dirty_keys"))


__all__ = ["RATIO", "RollupStore", "bucket_bounds", "percentile", "rebuild_sync"]
