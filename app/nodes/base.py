"""What a node type is: a params model, an async `run`, and facts for the analyzer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from app.errors import StepError

if TYPE_CHECKING:
    import httpx

    from app.circuits.breakers import CircuitBreakers
    from app.config import Settings
    from app.nodes.compose import Composition


class Params(BaseModel):
    """Base of every params model: unknown keys are a validation error."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def step_error(message: str, *, code: str, retryable: bool) -> StepError:
    """A StepError with its own code and retry decision (what nodes raise on failure)."""
    error = StepError(message)
    error.code = code
    error.retryable = retryable
    return error


class Suspend(Exception):
    """Raised by a node to park its step in `waiting` (durable delay, human input)."""

    def __init__(
        self, reason: str, *, until: datetime | None = None, data: Mapping[str, Any] | None = None
    ) -> None:
        self.reason = reason
        self.until = until
        self.data = dict(data or {})
        super().__init__(reason)


@dataclass(slots=True)
class Services:
    """Shared resources built once per process and handed to every node."""

    settings: Settings
    http: httpx.AsyncClient
    queued: bool = False  # True when running on a worker (durable delays allowed)
    # Child workflows and events (`workflow`, `wait.event`); None where nothing composes.
    composition: Composition | None = None
    circuits: CircuitBreakers | None = None  # http.request's breakers (app/circuits)


ItemRunner = Callable[[list[Any], int, Mapping[str, Any]], Awaitable[list[Any]]]


@dataclass(slots=True)
class NodeContext:
    """What a running step can see: who it is, its scope, its persisted state."""

    execution_id: str
    node_id: str
    step_key: str
    attempt: int
    services: Services
    scope: Mapping[str, Any]
    state: dict[str, Any] = field(default_factory=dict)
    run_items: ItemRunner | None = None
    namespace: str = "default"  # the execution's (circuit breakers are per namespace)

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and recovery: pass it to outside systems."""
        return f"{self.execution_id}:{self.step_key}"


class NodeType(Protocol):
    """A step type. Built-ins live in `app.nodes`; plugins come from `turnout.nodes`."""

    name: ClassVar[str]
    params_model: ClassVar[type[BaseModel]]
    external: ClassVar[bool]  # calls outside systems (analyzer; checkpointed at once)
    loop: ClassVar[bool]
    human: ClassVar[bool]
    # Params that are not rendered as templates before `run` (foreach's node template).
    raw_params: ClassVar[frozenset[str]]
    # Params that hold a bare expression (condition.expr), checked at validation.
    expression_params: ClassVar[frozenset[str]]

    def estimate_ms(self, params: Mapping[str, Any]) -> float:
        """Expected duration, for the complexity analyzer's critical path."""
        ...

    async def run(self, ctx: NodeContext, params: Any) -> Any:
        """Do the work; return the step's output (JSON-serialisable)."""
        ...


class BaseNode:
    """Defaults for built-in node types; subclasses set `name` and `params_model`."""

    name: ClassVar[str]
    params_model: ClassVar[type[BaseModel]]
    external: ClassVar[bool] = False
    loop: ClassVar[bool] = False
    human: ClassVar[bool] = False
    # Parks durably on something outside the run (a child, an event): the analyzer queues it.
    waits: ClassVar[bool] = False
    raw_params: ClassVar[frozenset[str]] = frozenset()
    expression_params: ClassVar[frozenset[str]] = frozenset()
    default_estimate_ms: ClassVar[float] = 1.0

    def estimate_ms(self, params: Mapping[str, Any]) -> float:
        return self.default_estimate_ms
