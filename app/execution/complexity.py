"""The ComplexityAnalyzer (pure): should this workflow run in the request, or on the queue?"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from app.nodes.base import NodeType
from app.workflows.graph import CompiledNode, CompiledWorkflow

if TYPE_CHECKING:
    from app.config import Settings

# Up to this many nodes the width of the DAG is computed exactly (Dilworth); above it, the
# widest level of a longest-path layering is used, a lower bound that is exact for most shapes.
EXACT_WIDTH_MAX_NODES = 120


class TypeLookup(Protocol):
    def get(self, name: str) -> NodeType | None: ...


@dataclass(frozen=True, slots=True)
class ComplexityThresholds:
    """The seed's rule; every number is a setting (`TURNOUT_COMPLEXITY_*`)."""

    max_nodes: int = 10
    max_duration_ms: float = 30_000
    queue_human_input: bool = True
    queue_external_loops: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> ComplexityThresholds:
        return cls(
            max_nodes=settings.complexity_max_nodes,
            max_duration_ms=settings.complexity_max_duration_ms,
            queue_human_input=settings.complexity_queue_human_input,
            queue_external_loops=settings.complexity_queue_external_loops,
        )


@dataclass(frozen=True, slots=True)
class Complexity:
    score: int
    node_count: int
    external_calls: int
    loops: int
    parallel_paths: int
    human_input: bool
    estimated_duration_ms: float
    reasons: tuple[str, ...] = field(default_factory=tuple)
    queue: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "nodeCount": self.node_count,
            "externalCalls": self.external_calls,
            "loops": self.loops,
            "parallelPaths": self.parallel_paths,
            "humanInput": self.human_input,
            "estimatedDurationMs": round(self.estimated_duration_ms, 3),
            "reasons": list(self.reasons),
            "recommendedMode": "queued" if self.queue else "immediate",
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Complexity:
        return cls(
            score=int(data.get("score", 0)),
            node_count=int(data.get("nodeCount", 0)),
            external_calls=int(data.get("externalCalls", 0)),
            loops=int(data.get("loops", 0)),
            parallel_paths=int(data.get("parallelPaths", 0)),
            human_input=bool(data.get("humanInput", False)),
            estimated_duration_ms=float(data.get("estimatedDurationMs", 0.0)),
            reasons=tuple(data.get("reasons", ())),
            queue=data.get("recommendedMode") == "queued",
        )


class ComplexityAnalyzer:
    """Scores a compiled workflow and decides its track by the configured rule."""

    def __init__(
        self, thresholds: ComplexityThresholds | None = None, *, registry: TypeLookup | None = None
    ) -> None:
        self.thresholds = thresholds or ComplexityThresholds()
        self.registry = registry

    def analyze(
        self, workflow: CompiledWorkflow, history: Mapping[str, float] | None = None
    ) -> Complexity:
        nodes = workflow.nodes
        external = loops = 0
        human = False
        waits: list[str] = []  # durable waits on something outside the run (child, event)
        for node in nodes.values():
            kind = node.node_type
            inner = self._template_type(node)
            external += int(kind.external or (inner is not None and inner.external))
            loops += int(kind.loop)
            human = human or kind.human or (inner is not None and inner.human)
            if getattr(kind, "waits", False) and kind.name not in waits:
                waits.append(kind.name)
        estimate = critical_path_ms(workflow, history or {})
        width = dag_width(workflow)
        measured = bool(history) and any(n in (history or {}) for n in nodes)
        reasons = self._reasons(len(nodes), estimate, human, external, loops, measured)
        reasons += [f"waits durably ({name})" for name in waits]
        score = (
            len(nodes) + 5 * external + 10 * loops + 20 * int(human) + width + int(estimate / 1000)
        )
        queue = bool(reasons)
        if not queue:
            source = " (measured from past runs)" if measured else ""
            reasons = [f"simple: {len(nodes)} nodes, estimated {estimate:.0f} ms{source}"]
        return Complexity(
            score=score,
            node_count=len(nodes),
            external_calls=external,
            loops=loops,
            parallel_paths=width,
            human_input=human,
            estimated_duration_ms=estimate,
            reasons=tuple(reasons),
            queue=queue,
        )

    def _reasons(
        self,
        count: int,
        estimate: float,
        human: bool,
        external: int,
        loops: int,
        measured: bool = False,
    ) -> list[str]:
        t = self.thresholds
        reasons = []
        if count > t.max_nodes:
            reasons.append(f"{count} nodes > {t.max_nodes}")
        if estimate > t.max_duration_ms:
            source = " (measured from past runs)" if measured else ""
            reasons.append(
                f"estimated {estimate / 1000:.1f} s{source} > {t.max_duration_ms / 1000:.1f} s"
            )
        if human and t.queue_human_input:
            reasons.append("needs human input")
        if external and loops and t.queue_external_loops:
            reasons.append(f"external calls ({external}) together with loops ({loops})")
        return reasons

    def _template_type(self, node: CompiledNode) -> NodeType | None:
        """The node type a loop runs per item (foreach's `node` template), if known."""
        if not node.node_type.loop or self.registry is None:
            return None
        for value in node.raw_params.values():
            if isinstance(value, Mapping) and isinstance(value.get("type"), str):
                return self.registry.get(value["type"])
        return None


def critical_path_ms(workflow: CompiledWorkflow, history: Mapping[str, float]) -> float:
    """Longest path by estimated duration; measured durations of past runs win over guesses."""
    finish: dict[str, float] = {}
    for node_id, node in workflow.nodes.items():  # insertion order is topological
        own = history.get(node_id, node.estimate_ms)
        finish[node_id] = own + max((finish[d] for d in node.deps), default=0.0)
    return max(finish.values(), default=0.0)


def dag_width(workflow: CompiledWorkflow) -> int:
    """The most nodes that can run at the same time (largest set of independent nodes)."""
    if not workflow.nodes:
        return 0
    if len(workflow.nodes) <= EXACT_WIDTH_MAX_NODES:
        return _exact_width(workflow)
    level: dict[str, int] = {}
    counts: dict[int, int] = {}
    for node_id, node in workflow.nodes.items():
        level[node_id] = 1 + max((level[d] for d in node.deps), default=-1)
        counts[level[node_id]] = counts.get(level[node_id], 0) + 1
    return max(counts.values())


def _exact_width(workflow: CompiledWorkflow) -> int:
    """Dilworth: max antichain = n - maximum matching on the reachability relation."""
    ids = list(workflow.nodes)
    index = {node_id: i for i, node_id in enumerate(ids)}
    reach = [0] * len(ids)  # bitset of descendants
    for node_id in reversed(ids):
        bits = 0
        for child in workflow.dependents.get(node_id, ()):
            bits |= (1 << index[child]) | reach[index[child]]
        reach[index[node_id]] = bits
    successors = [[j for j in range(len(ids)) if reach[i] >> j & 1] for i in range(len(ids))]
    match_of: list[int] = [-1] * len(ids)

    def augment(u: int, seen: list[bool]) -> bool:
        for v in successors[u]:
            if not seen[v]:
                seen[v] = True
                if match_of[v] == -1 or augment(match_of[v], seen):
                    match_of[v] = u
                    return True
        return False

    matching = sum(augment(u, [False] * len(ids)) for u in range(len(ids)))
    return len(ids) - matching
