"""`python -m bench`: run the workloads, print the table (stdout) and progress (stderr)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from bench import peer, peers
from bench.config import (
    DEFAULT_WORKLOADS,
    SUBMITTERS_HELP,
    WORKLOADS,
    Progress,
    Sizes,
    positive,
)
from bench.report import machine, table, write_json
from bench.scale import w6_scale
from bench.services import (
    DEFAULT_PG,
    DEFAULT_REDIS,
    Namespace,
    Services,
    bench_database,
)
from bench.stats import Metric, Target
from bench.throughput import w4_throughput
from bench.workloads import (
    Bench,
    w1_immediate,
    w2_queued_latency,
    w3_sequential,
    w5_fan_out,
    w7_commit_ceiling,
)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, under 2 minutes")
    parser.add_argument(
        "--only", default=",".join(DEFAULT_WORKLOADS),
        help=f"comma-separated workloads out of {','.join(WORKLOADS)} (PEER = Prefect)",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, help="repeats of each workload (default 3, quick 1)")
    parser.add_argument("--json", type=Path, help="write the raw samples here")
    parser.add_argument("--w4-submitters", type=positive, help=SUBMITTERS_HELP)
    parser.add_argument(
        "--heartbeat-overhead", action="store_true",
        help="also run W3 with heartbeats every 50 ms and every 60 s, to show their cost",
    )  # fmt: skip
    parser.add_argument(
        "--peers", default="", help=f"also run these peers beside Turnout: {','.join(peers.PEERS)}"
    )
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", DEFAULT_PG))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS", DEFAULT_REDIS))
    args = parser.parse_args(argv)
    args.workloads = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    unknown = sorted(set(args.workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workloads: {', '.join(unknown)}")
    try:
        args.peer_names = peers.wanted(args.peers)
    except ValueError as exc:
        parser.error(str(exc))
    return args


async def run(args: argparse.Namespace, progress: Progress) -> list[Metric]:
    sizes = Sizes.for_mode(args.quick, args.repeat, args.w4_submitters)
    metrics: list[Metric] = []
    wanted = args.workloads
    if "W6" in wanted:
        metrics += w6_scale(sizes, progress)
    served = [w for w in wanted if w not in ("W6", "PEER")]
    if served:
        ns = Namespace(args.pg, args.redis)
        progress(f"database {ns.database}, Redis prefix {ns.key_prefix}")
        async with bench_database(ns):
            services = Services(ns)
            b = Bench(ns, services, sizes, progress)
            try:
                steps = {
                    "W1": w1_immediate, "W2": w2_queued_latency, "W3": w3_sequential,
                    "W5": w5_fan_out, "W4": w4_throughput, "W7": w7_commit_ceiling,
                }  # fmt: skip
                for name, workload in steps.items():
                    if name in served:
                        metrics += await workload(b)
                    if name == "W3" and "W3" in served and args.heartbeat_overhead:
                        for heartbeat_ms in (50, 60_000):
                            metrics += await w3_sequential(b, heartbeat_ms)
            finally:
                await services.close()
    if "PEER" in wanted:
        metrics += await peer.run_peer(sizes, progress)
        link_peer(metrics)
    if args.peer_names:
        metrics += await peers.run_peers(args.peer_names, args.pg, sizes, progress)
        peers.link_peers(metrics)
    return metrics


PEER_W2 = "Prefect 3: 3-task flow call -> completed"


def link_peer(metrics: list[Metric]) -> None:
    """Turnout's W3 and W2 rows get the peer's matching rows as baselines."""
    by_name = {m.name: m for m in metrics}
    pairs = (
        (
            "overhead per step",
            "Prefect 3: overhead per task",
            Target("ratio_max", 0.05, "<= 1/20 of Prefect's"),
        ),
        (
            "queued, 3 steps: POST -> completed (SSE)",
            "Prefect 3: 3-task flow call -> completed",
            None,
        ),
    )
    for ours, theirs, target in pairs:
        if ours in by_name and theirs in by_name and by_name[theirs].samples:
            by_name[ours].baseline = by_name[theirs]
            if target is not None:
                by_name[ours].targets = (*by_name[ours].targets, target)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    progress = Progress()
    info = machine()
    progress(
        f"{info['cores']} cores, {info['memory_gib']} GiB; workloads {','.join(args.workloads)}"
    )
    metrics = asyncio.run(run(args, progress))
    print(f"Turnout benchmark, {info['date']}, {info['cores']} cores, {info['memory_gib']} GiB")
    print(f"command: python -m bench {' '.join(argv)}".rstrip())
    print()
    print(table(metrics))
    if args.json is not None:
        write_json(args.json, metrics, ["python", "-m", "bench", *argv])
        progress(f"raw numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
