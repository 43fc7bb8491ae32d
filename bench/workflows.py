"""The workflow definitions the workloads run (plain JSON, as a client would send them)."""

from __future__ import annotations

from typing import Any


def three_steps(name: str = "bench-3") -> dict[str, Any]:
    """W1, W2, W4: three trivial sequential transforms."""
    return {
        "name": name,
        "nodes": [
            {"id": "a", "type": "transform", "params": {"x": "{{ input.x }}"}},
            {"id": "b", "type": "transform", "params": {"x": "{{ a.x + 1 }}"}},
            {"id": "c", "type": "transform", "params": {"x": "{{ b.x + 1 }}"}},
        ],
        "output": {"x": "{{ c.x }}"},
    }


def fib_chain(steps: int = 40, n: int = 10) -> dict[str, Any]:
    """W3: `steps` sequential `bench.fib` steps (each after the previous one)."""
    nodes: list[dict[str, Any]] = []
    for i in range(steps):
        node: dict[str, Any] = {"id": f"f{i}", "type": "bench.fib", "params": {"n": n}}
        if i:
            node["dependsOn"] = [f"f{i - 1}"]
        nodes.append(node)
    return {"name": f"bench-fib-{steps}", "nodes": nodes}


def fan_out(items: int = 1000, concurrency: int = 50) -> dict[str, Any]:
    """W5: one foreach of `items` transform items, `concurrency` at a time."""
    return {
        "name": f"bench-foreach-{items}",
        "nodes": [
            {
                "id": "each",
                "type": "foreach",
                "params": {
                    "items": "{{ input.items }}",
                    "concurrency": concurrency,
                    "node": {
                        "type": "transform",
                        "params": {"i": "{{ item }}", "n": "{{ index }}"},
                    },
                },
            }
        ],
        "output": {"count": "{{ len(each) }}"},
    }


def chain(count: int) -> dict[str, Any]:
    """W6: a chain where every node reads the previous node's output."""
    nodes: list[dict[str, Any]] = [{"id": "n0", "type": "transform", "params": {"v": 0}}]
    nodes += [
        {"id": f"n{i}", "type": "transform", "params": {"v": f"{{{{ n{i - 1}.v }}}}"}}
        for i in range(1, count)
    ]
    return {"name": f"bench-chain-{count}", "nodes": nodes}


def wide(count: int) -> dict[str, Any]:
    """W6: `count` independent nodes (one level; the widest DAG)."""
    nodes = [{"id": f"n{i}", "type": "transform", "params": {"v": i}} for i in range(count)]
    return {"name": f"bench-wide-{count}", "nodes": nodes}
