"""The analytics read from the hourly rollups: the whole hours of the range from
`execution_rollups`, the partial hours at its edges and whatever is not folded yet (live
runs, runs ended after the watermark) from the executions, merged per key in Python."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.base import StoreBase
from app.store.rollups import (
    LIVE,
    SUM_COLUMNS,
    TERMINAL,
    RollupStore,
    aggregate_sql,
    percentile,
    source_sql,
    sqlite_text,
)
from app.store.tables import EXECUTION_STATUSES, HISTOGRAM_BUCKETS

if TYPE_CHECKING:
    from app.store.analytics import Window

# Up to this many executions in the range, the analytics are computed exactly from the rows
# (percentile_cont); above it, from the rollups.
EXACT_LIMIT = 20_000
PERCENTILES = (0.5, 0.95, 0.99)
TOP_ERRORS = 5
HOUR = timedelta(hours=1)


def _hours(window: Window) -> tuple[datetime, datetime]:
    since = window.since.astimezone(UTC)
    floor = since.replace(minute=0, second=0, microsecond=0)
    first = floor if floor == since else floor + HOUR
    last = window.until.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return first, last


class RollupReader(StoreBase):
    async def summary(self, window: Window, exact_limit: int) -> list[dict[str, Any]] | None:
        """Per workflow and version, or None when the rows should answer exactly."""
        merged = await self._read(window, ("w", "v"), None, exact_limit)
        if merged is None:
            return None
        accs, errors = merged
        items = []
        for key, acc in accs.items():
            top = sorted(errors.get(key, Counter()).items(), key=lambda c: (-c[1], c[0]))
            ended = sum(acc[f"n_{s}"] for s in TERMINAL)
            items.append(
                {
                    "workflow": key[0],
                    "version": key[1] or None,
                    **_summary(acc),
                    "queueWaitMs": {"mean": _mean(acc["wait_sum"], acc["wait_n"])},
                    "retriesPerRun": _mean(acc["retries_sum"], ended),
                    "usage": {
                        "cpuMsMean": _mean(acc["cpu_sum"], acc["cpu_n"]),
                        "bytesSentMean": _mean(acc["sent_sum"], acc["sent_n"]),
                        "bytesReceivedMean": _mean(acc["recv_sum"], acc["recv_n"]),
                    },
                    "topErrors": [{"code": c, "count": n} for c, n in top[:TOP_ERRORS]],
                }
            )
        items.sort(key=lambda i: (i["workflow"], i["version"] or ""))
        return items

    async def timeseries(
        self, window: Window, bucket_s: int, exact_limit: int
    ) -> list[dict[str, Any]] | None:
        merged = await self._read(window, ("b",), bucket_s, exact_limit)
        if merged is None:
            return None
        accs, _ = merged
        points = []
        for (start,), acc in sorted(accs.items(), key=lambda kv: _epoch(kv[0][0])):
            points.append(
                {
                    "start": datetime.fromtimestamp(_epoch(start), UTC),
                    **_summary(acc),
                    "queueWaitMs": {"mean": _mean(acc["wait_sum"], acc["wait_n"])},
                    "usage": {"cpuMsMean": _mean(acc["cpu_sum"], acc["cpu_n"])},
                }
            )
        return points

    async def _read(
        self, window: Window, keys: tuple[str, ...], bucket_s: int | None, exact_limit: int
    ) -> tuple[dict[Any, dict[str, float]], dict[Any, Counter[str]]] | None:
        first, last = _hours(window)
        if first >= last:
            return None  # no whole hour in the range
        async with self.engine.connect() as conn:
            if self.dialect == "postgresql":  # one snapshot: the watermark and its rollups
                conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            mark = await RollupStore(self.engine).watermark(conn)
            if mark is None:
                return None  # never folded
            params = self._params(window, first, last, mark)
            accs: dict[Any, dict[str, float]] = {}
            errors: dict[Any, Counter[str]] = {}
            for sql in self._queries(window, keys, bucket_s):
                await self._merge(conn, sql, params, keys, accs, errors)
        total = sum(acc[f"n_{s}"] for acc in accs.values() for s in EXECUTION_STATUSES)
        if total <= exact_limit:
            return None
        return accs, errors

    def _queries(
        self, window: Window, keys: tuple[str, ...], bucket_s: int | None
    ) -> tuple[str, str, str, str]:
        name = " AND workflow_name = :workflow" if window.workflow is not None else ""
        live = ", ".join(f"'{s}'" for s in LIVE)
        terminal = ", ".join(f"'{s}'" for s in TERMINAL)
        raw_bucket = self._bucket("created_at", bucket_s) if bucket_s else None
        parts = [
            f"created_at >= :since AND created_at < :first{name}",
            f"created_at >= :last AND created_at < :until{name}",
            f"created_at >= :first AND created_at < :last{name} AND status IN ({live})",
            f"created_at >= :first AND created_at < :last{name} AND status IN ({terminal})"
            " AND completed_at > :mark",
        ]
        raw = " UNION ALL ".join(source_sql(self.dialect, p, raw_bucket) for p in parts)
        group = ", ".join(keys)
        if bucket_s:
            rolled_key = f"{self._bucket('bucket_start', bucket_s)} AS b"
        else:
            rolled_key = "workflow_name AS w, workflow_version AS v"
        rolled_where = f"bucket_start >= :first AND bucket_start < :last{name}"
        sums = ", ".join(f"SUM({c}) AS {c}" for c in SUM_COLUMNS)
        return (
            aggregate_sql(raw, group),
            f"""SELECT {group}, {sums}, MAX(dur_max) AS dur_max FROM (
  SELECT {rolled_key}, * FROM execution_rollups WHERE {rolled_where}) r GROUP BY {group}""",
            f"""SELECT {group}, code, COUNT(*) AS n FROM ({raw}) r
WHERE code IS NOT NULL GROUP BY {group}, code""",
            f"""SELECT {group}, code, SUM(n) AS n FROM (
  SELECT {rolled_key}, code, n FROM execution_rollup_errors WHERE {rolled_where}) r
GROUP BY {group}, code""",
        )

    def _bucket(self, column: str, bucket_s: int) -> str:
        if self.dialect == "postgresql":
            return f"date_bin(make_interval(secs => {bucket_s}), {column}, 'epoch')"
        return f"(CAST(strftime('%s', {column}) AS INTEGER) / {bucket_s}) * {bucket_s}"

    def _params(
        self, window: Window, first: datetime, last: datetime, mark: datetime
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "since": window.since,
            "until": window.until,
            "first": first,
            "last": last,
            "mark": mark,
        }
        if self.dialect == "sqlite":
            params = {k: sqlite_text(v) for k, v in params.items()}
        if window.workflow is not None:
            params["workflow"] = window.workflow
        return params

    async def _merge(
        self,
        conn: AsyncConnection,
        sql: str,
        params: dict[str, Any],
        keys: tuple[str, ...],
        accs: dict[Any, dict[str, float]],
        errors: dict[Any, Counter[str]],
    ) -> None:
        for row in (await conn.execute(text(sql), params)).mappings():
            key = tuple(row[k] for k in keys)
            if "code" in row:
                errors.setdefault(key, Counter())[row["code"]] += int(row["n"])
                continue
            acc = accs.setdefault(key, dict.fromkeys((*SUM_COLUMNS, "dur_max"), 0.0))
            for column in SUM_COLUMNS:
                acc[column] += float(row[column] or 0)
            acc["dur_max"] = max(acc["dur_max"], float(row["dur_max"] or 0))


def _epoch(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp())
    return int(value)


def _summary(acc: dict[str, Any]) -> dict[str, Any]:
    counts = {s: int(acc[f"n_{s}"]) for s in EXECUTION_STATUSES}
    ended = sum(counts[s] for s in TERMINAL)
    hist = [acc[f"h{k}"] for k in range(HISTOGRAM_BUCKETS)]
    dur_max = acc["dur_max"] or 0.0
    return {
        "counts": counts,
        "total": sum(counts.values()),
        "successRate": round(counts["completed"] / ended, 4) if ended else None,
        "durationMs": {
            f"p{round(p * 100)}": _round(percentile(hist, p, dur_max)) for p in PERCENTILES
        },
    }


def _mean(total: float, n: float) -> float | None:
    return round(total / n, 3) if n else None


def _round(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None
