"""Analytics over stored executions, computed in SQL: counts, success rate, duration
percentiles (`percentile_cont` on Postgres; the same linear interpolation from window
functions on SQLite), queue wait, retries, usage, top error codes; and time series.
Large ranges are read from the hourly rollups instead (app/store/rollup_reader.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from app.engine.status import Status
from app.store.base import StoreBase
from app.store.rollup_reader import EXACT_LIMIT, RollupReader
from app.store.rollups import sqlite_ms

STATUSES = tuple(str(s) for s in Status)
TERMINAL = ("completed", "failed", "cancelled")
PERCENTILES = (0.5, 0.95, 0.99)
TOP_ERRORS = 5


@dataclass(slots=True, frozen=True)
class Window:
    since: datetime
    until: datetime
    workflow: str | None = None


def _runs_cte(dialect: str, window: Window, bucket_s: int | None = None) -> str:
    if dialect == "postgresql":
        # date_part() is double precision; EXTRACT() is numeric, several times slower to
        # sort and average over a million rows.
        dur = "date_part('epoch', completed_at - started_at) * 1000"
        wait = "date_part('epoch', started_at - created_at) * 1000"
        code = "error->>'code'"
        bucket = f"date_bin(make_interval(secs => {bucket_s}), created_at, 'epoch')"
    else:
        dur = sqlite_ms("completed_at", "started_at")
        wait = sqlite_ms("started_at", "created_at")
        code = "json_extract(error, '$.code')"
        bucket = f"(CAST(strftime('%s', created_at) AS INTEGER) / {bucket_s}) * {bucket_s}"
    name = " AND workflow_name = :workflow" if window.workflow is not None else ""
    terminal = ", ".join(f"'{s}'" for s in TERMINAL)
    return f"""runs AS (
  SELECT workflow_name AS w, COALESCE(workflow_version, '') AS v, status,
    {bucket if bucket_s else "NULL"} AS b,
    CASE WHEN status IN ({terminal}) AND started_at IS NOT NULL AND completed_at IS NOT NULL
         THEN {dur} END AS dur,
    CASE WHEN started_at IS NOT NULL THEN {wait} END AS wait,
    CASE WHEN status IN ({terminal}) THEN step_retries END AS retries,
    cpu_ms, bytes_sent, bytes_received,
    CASE WHEN status = 'failed' THEN {code} END AS code
  FROM workflow_executions
  WHERE created_at >= :since AND created_at < :until{name}
)"""


def _counts() -> str:
    return ", ".join(f"SUM(CASE WHEN status = '{s}' THEN 1 ELSE 0 END) AS n_{s}" for s in STATUSES)


def _percentiles(dialect: str, keys: str) -> str:
    """`p50, p95, p99` of `dur` per `keys`: one SELECT over the `runs` CTE."""
    if dialect == "postgresql":
        wanted = ", ".join(
            f"percentile_cont({p}) WITHIN GROUP (ORDER BY dur) AS p{_label(p)}" for p in PERCENTILES
        )
        return f"SELECT {keys}, {wanted} FROM runs WHERE dur IS NOT NULL GROUP BY {keys}"
    # percentile_cont: the value at position p * (n - 1) of the sorted values, interpolated
    # linearly between its two neighbours.
    parts = []
    for p in PERCENTILES:
        pos = f"({p} * (n - 1))"
        lo = f"CAST({pos} AS INTEGER)"
        parts.append(
            f"SUM(CASE WHEN rn = {lo} THEN dur * (1 - ({pos} - {lo})) "
            f"WHEN rn = {lo} + 1 THEN dur * ({pos} - {lo}) ELSE 0 END) AS p{_label(p)}"
        )
    return f"""SELECT {keys}, {", ".join(parts)} FROM (
  SELECT {keys}, dur, ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY dur) - 1 AS rn,
         COUNT(*) OVER (PARTITION BY {keys}) AS n
  FROM runs WHERE dur IS NOT NULL
) ranked GROUP BY {keys}"""


def _inline_percentiles(dialect: str) -> str:
    """On Postgres the percentiles are ordered-set aggregates of the same GROUP BY."""
    if dialect != "postgresql":
        return ""
    return "".join(
        f", percentile_cont({p}) WITHIN GROUP (ORDER BY dur) AS p{_label(p)}" for p in PERCENTILES
    )


def _label(p: float) -> str:
    return str(round(p * 100))


class AnalyticsStore(StoreBase):
    """Read-only aggregate queries (no rows leave the database, only their summaries).

    Ranges holding more than `exact_limit` executions are answered from the hourly rollups
    (app/store/rollups.py: exact counts and means, percentiles within one histogram bucket);
    smaller ones exactly from the rows."""

    def __init__(self, engine: Any, exact_limit: int = EXACT_LIMIT) -> None:
        super().__init__(engine)
        self.exact_limit = exact_limit

    async def workflow_stats(self, window: Window) -> list[dict[str, Any]]:
        rolled = await RollupReader(self.engine).summary(window, self.exact_limit)
        if rolled is not None:
            return rolled
        cte = _runs_cte(self.dialect, window)
        summary = f"""WITH {cte}
SELECT w, v, {_counts()}, AVG(wait) AS wait_mean, AVG(retries) AS retries_mean,
       AVG(cpu_ms) AS cpu_mean, AVG(bytes_sent) AS sent_mean, AVG(bytes_received) AS recv_mean
       {_inline_percentiles(self.dialect)}
FROM runs GROUP BY w, v"""
        percentiles = f"WITH {cte} {_percentiles(self.dialect, 'w, v')}"
        errors = f"""WITH {cte}
SELECT w, v, code, COUNT(*) AS n FROM runs WHERE code IS NOT NULL GROUP BY w, v, code"""
        params = _params(window, self.dialect)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(text(summary), params)).mappings().all()
            if self.dialect == "postgresql":  # computed in the same pass
                pct = {(r["w"], r["v"]): r for r in rows}
            else:
                pct = {
                    (r["w"], r["v"]): r
                    for r in (await conn.execute(text(percentiles), params)).mappings()
                }
            codes: dict[tuple[str, str], list[tuple[str, int]]] = {}
            for r in (await conn.execute(text(errors), params)).mappings():
                codes.setdefault((r["w"], r["v"]), []).append((r["code"], int(r["n"])))
        items = []
        for r in rows:
            key = (r["w"], r["v"])
            top = sorted(codes.get(key, []), key=lambda c: (-c[1], c[0]))[:TOP_ERRORS]
            items.append(
                {
                    "workflow": r["w"],
                    "version": r["v"] or None,
                    **_summary(r, pct.get(key)),
                    "queueWaitMs": {"mean": _num(r["wait_mean"])},
                    "retriesPerRun": _num(r["retries_mean"]),
                    "usage": {
                        "cpuMsMean": _num(r["cpu_mean"]),
                        "bytesSentMean": _num(r["sent_mean"]),
                        "bytesReceivedMean": _num(r["recv_mean"]),
                    },
                    "topErrors": [{"code": c, "count": n} for c, n in top],
                }
            )
        items.sort(key=lambda i: (i["workflow"], i["version"] or ""))
        return items

    async def workflow_timeseries(self, window: Window, bucket_s: int) -> list[dict[str, Any]]:
        if bucket_s % 3600 == 0:  # whole hours: the rollups can answer
            reader = RollupReader(self.engine)
            rolled = await reader.timeseries(window, bucket_s, self.exact_limit)
            if rolled is not None:
                return rolled
        cte = _runs_cte(self.dialect, window, bucket_s)
        summary = f"""WITH {cte}
SELECT b, {_counts()}, AVG(wait) AS wait_mean, AVG(cpu_ms) AS cpu_mean
       {_inline_percentiles(self.dialect)}
FROM runs GROUP BY b ORDER BY b"""
        percentiles = f"WITH {cte} {_percentiles(self.dialect, 'b')}"
        params = _params(window, self.dialect)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(text(summary), params)).mappings().all()
            if self.dialect == "postgresql":
                pct = {r["b"]: r for r in rows}
            else:
                pct = {
                    r["b"]: r for r in (await conn.execute(text(percentiles), params)).mappings()
                }
        points = []
        for r in rows:
            start = r["b"]
            if not isinstance(start, datetime):
                start = datetime.fromtimestamp(int(start), UTC)
            points.append(
                {
                    "start": start,
                    **_summary(r, pct.get(r["b"])),
                    "queueWaitMs": {"mean": _num(r["wait_mean"])},
                    "usage": {"cpuMsMean": _num(r["cpu_mean"])},
                }
            )
        return points


def _params(window: Window, dialect: str) -> dict[str, Any]:
    params: dict[str, Any] = {"since": window.since, "until": window.until}
    if dialect == "sqlite":  # stored as naive UTC text: compare the same canonical form
        for key in ("since", "until"):
            value = params[key].astimezone(UTC) if params[key].tzinfo else params[key]
            params[key] = value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if window.workflow is not None:
        params["workflow"] = window.workflow
    return params


def _summary(row: Any, pct: Any) -> dict[str, Any]:
    counts = {s: int(row[f"n_{s}"] or 0) for s in STATUSES}
    ended = sum(counts[s] for s in TERMINAL)
    return {
        "counts": counts,
        "total": sum(counts.values()),
        "successRate": round(counts["completed"] / ended, 4) if ended else None,
        "durationMs": {
            f"p{_label(p)}": _num(pct[f"p{_label(p)}"]) if pct is not None else None
            for p in PERCENTILES
        },
    }


def _num(value: Any) -> float | None:
    return round(float(value), 3) if value is not None else None
