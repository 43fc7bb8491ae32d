"""Order a dependency graph, or find a cycle in it (pure; no recursion, any size)."""

from __future__ import annotations

import heapq
from collections.abc import Mapping

Graph = Mapping[str, frozenset[str]]  # node id -> the ids it depends on


def topological_order(graph: Graph, rank: Mapping[str, int]) -> tuple[list[str] | None, set[str]]:
    """Kahn's algorithm, lowest `rank` first among the ready; (None, stuck ids) on a cycle."""
    waiting = {node_id: len(deps) for node_id, deps in graph.items()}
    dependents: dict[str, list[str]] = {node_id: [] for node_id in graph}
    for node_id, deps in graph.items():
        for dep in deps:
            dependents[dep].append(node_id)
    ready = [(rank[node_id], node_id) for node_id, deps in graph.items() if not deps]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node_id = heapq.heappop(ready)[1]
        order.append(node_id)
        for child in dependents[node_id]:
            waiting[child] -= 1
            if not waiting[child]:
                heapq.heappush(ready, (rank[child], child))
    if len(order) < len(graph):
        return None, {node_id for node_id, n in waiting.items() if n}
    return order, set()


def find_cycle(graph: Graph, stuck: set[str], rank: Mapping[str, int]) -> list[str]:
    """One cycle among `stuck` nodes, each feeding the next, starting at the lowest rank."""

    # Every stuck node waits on a stuck dependency: walking those must loop.
    def first(ids: set[str] | list[str]) -> str:
        return min(ids, key=rank.__getitem__)

    node_id = first(stuck)
    seen: dict[str, int] = {}
    walk: list[str] = []
    while node_id not in seen:
        seen[node_id] = len(walk)
        walk.append(node_id)
        node_id = first({dep for dep in graph[node_id] if dep in stuck})
    cycle = walk[seen[node_id] :][::-1]  # reversed: each node feeds the next
    start = cycle.index(first(cycle))
    return cycle[start:] + cycle[:start]
