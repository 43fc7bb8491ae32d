"""The peer's side (Prefect 3), run by `bench.peer` in its own virtualenv: prints JSON.

W3: one flow of 40 sequential tasks, each computing fib(10). W2: one flow of 3 trivial
tasks. Each flow is called in-process against Prefect's local server (ephemeral mode, SQLite
under a temporary PREFECT_HOME): every flow and task run is recorded by the server, as a
deployment's would be, but without the queue and worker pickup a deployment adds, so the
comparison favours the peer. This file imports nothing from Turnout."""

from __future__ import annotations

import json
import sys
import time

from prefect import flow, task


def fib(n: int) -> int:
    return n if n <= 1 else fib(n - 1) + fib(n - 2)


@task
def fib_task(n: int) -> int:
    return fib(n)


@task
def add_one(x: int) -> int:
    return x + 1


@flow
def forty_steps(n: int = 10) -> int:
    value = 0
    for _ in range(40):
        value = fib_task(n)
    return value


@flow
def three_steps(x: int = 1) -> int:
    return add_one(add_one(add_one(x)))


def timed(call: object, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main() -> None:
    w3_runs, w2_runs = int(sys.argv[1]), int(sys.argv[2])
    three_steps()  # warm-up: starts the local server, creates the flows
    forty_steps()
    result = {"w3_ms": timed(forty_steps, w3_runs), "w2_ms": timed(three_steps, w2_runs)}
    print("PEER-RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
