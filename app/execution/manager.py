"""The ExecutionManager: validates a run request, asks the analyzer, picks the track."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from app.config import Settings
from app.engine.status import Status
from app.errors import IdempotencyConflict, InputInvalid, WorkflowNotFound
from app.execution.complexity import Complexity, ComplexityAnalyzer
from app.execution.secrets import SecretResolver
from app.execution.strategies import (
    ImmediateExecutionStrategy,
    QueuedExecutionStrategy,
    Started,
)
from app.metrics import EXECUTIONS_SUBMITTED
from app.nodes.registry import NodeRegistry
from app.store.history import HistoryStore
from app.store.records import ExecutionRecord, NewExecution, ParentLink, WorkflowRecord
from app.store.repository import Repository
from app.workflows.cache import compile_cached
from app.workflows.flow import KeyInvalid, flow_spec
from app.workflows.graph import CompiledWorkflow
from app.workflows.problems import Problem, validate_input

log = logging.getLogger(__name__)

Mode = Literal["auto", "immediate", "queued"]


@dataclass(slots=True)
class RunRequest:
    """A request to run a workflow, as the API hands it over (already shape-checked)."""

    workflow: dict[str, Any] | None = None
    workflow_id: str | None = None
    version: str | None = None
    input: Any = field(default_factory=dict)
    mode: Mode = "auto"
    timeout_ms: int | None = None
    priority: int = 0
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    namespace: str = "default"
    # Set by the scheduler: the fire this run is (one execution per schedule and slot).
    schedule_id: uuid.UUID | None = None
    schedule_slot: datetime | None = None
    parent: ParentLink | None = None  # set when a `workflow` step starts this run

    def fingerprint(self) -> str:
        """What an Idempotency-Key is bound to: the same key must come with the same body."""
        body = {
            "workflow": self.workflow,
            "workflowId": self.workflow_id,
            "version": self.version,
            "input": self.input,
            "mode": self.mode,
            "timeout": self.timeout_ms,
            "priority": self.priority,
            "tags": self.tags,
        }
        raw = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(slots=True)
class Memo:
    """What the runs of one request share, looked up once: each compiled workflow (by
    namespace: its secrets are checked once) and its definition as stored, the registered
    workflows, their history."""

    share: bool = False
    compiled: dict[tuple[str, int], CompiledWorkflow] = field(default_factory=dict)
    dumped: dict[int, dict[str, Any]] = field(default_factory=dict)
    workflows: dict[tuple[str, str, str | None], WorkflowRecord | None] = field(
        default_factory=dict
    )
    history: dict[tuple[str | None, str | None], dict[str, float] | None] = field(
        default_factory=dict
    )


# A validated request: its row, its compiled workflow, its analysis and its track.
Prepared = tuple[NewExecution, CompiledWorkflow, Complexity, Literal["immediate", "queued"]]


@dataclass(slots=True)
class Submission:
    started: Started
    complexity: Complexity
    mode: Literal["immediate", "queued"]


class ExecutionManager:
    """Every run request goes through here, whatever the track."""

    def __init__(
        self,
        *,
        settings: Settings,
        repo: Repository,
        registry: NodeRegistry,
        analyzer: ComplexityAnalyzer,
        immediate: ImmediateExecutionStrategy,
        queued: QueuedExecutionStrategy,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.registry = registry
        self.analyzer = analyzer
        self.immediate = immediate
        self.queued = queued

    async def submit(self, request: RunRequest) -> Submission:
        fingerprint = request.fingerprint() if request.idempotency_key else None
        if request.idempotency_key:
            existing = await self.repo.get_by_idempotency_key(request.idempotency_key)
            if existing is not None:
                # Another namespace's key is a conflict, not its execution (nothing leaks).
                if existing.namespace != request.namespace:
                    raise IdempotencyConflict("this Idempotency-Key is already in use")
                self._check_same_request(existing.request_hash, fingerprint)
                return _replay(existing)
        prepared = await self.prepare(request, fingerprint)
        new, compiled, complexity, chosen = prepared
        strategy = self.immediate if chosen == "immediate" else self.queued
        started = await strategy.start(new, compiled)
        if not started.created:  # lost an idempotency race to an identical request
            self._check_same_request(started.record.request_hash, fingerprint)
        EXECUTIONS_SUBMITTED.labels(mode=chosen).inc()
        log.info(
            "execution submitted",
            extra={
                "execution_id": str(started.record.id),
                "mode": chosen,
                "status": started.record.status,
            },
        )
        return Submission(started, complexity, chosen)

    def _flow(self, compiled: CompiledWorkflow, input_value: Any) -> dict[str, Any] | None:
        """The flow-control spec, keys evaluated over this input (a bad key is a 422)."""
        definition = compiled.definition
        try:
            return flow_spec(
                definition.concurrency,
                definition.rate_limit,
                input_value,
                self.settings.namespace_concurrency,
            )
        except KeyInvalid as exc:
            problem = Problem(("workflow", exc.where, "key"), "bad_key", exc.message)
            raise InputInvalid(exc.message, [problem.to_dict()]) from None

    async def prepare(
        self, request: RunRequest, fingerprint: str | None, memo: Memo | None = None
    ) -> Prepared:
        """Validate a request and decide its row and track; raises a 4xx domain error.
        `memo` keeps what a bulk request's runs share (compiled workflows, history)."""
        memo = memo if memo is not None else Memo()
        definition, workflow_id, version = await self._resolve(request, memo)
        compiled = await self._compile(request.namespace, definition, memo)
        problems = validate_input(compiled.definition.input_schema, request.input)
        if problems:
            raise InputInvalid(
                "the input does not match the workflow's inputSchema",
                [p.to_dict() for p in problems],
            )
        history_key = (workflow_id, version)
        if history_key not in memo.history:
            memo.history[history_key] = await self._history(workflow_id, version)
        flow = self._flow(compiled, request.input)
        complexity = self.analyzer.analyze(compiled, memo.history[history_key])
        chosen = self._choose(request.mode, complexity)
        new = NewExecution(
            id=uuid.uuid4(),
            workflow_name=compiled.definition.name,
            workflow_id=workflow_id,
            workflow_version=version,
            status="pending",
            execution_mode=chosen,
            requested_mode=request.mode,
            input=request.input,
            definition=memo.dumped[id(compiled)],
            complexity=complexity.to_dict(),
            priority=request.priority,
            tags=request.tags,
            metadata=request.metadata,
            idempotency_key=request.idempotency_key,
            request_hash=fingerprint,
            timeout_ms=request.timeout_ms,
            progress_total=len(compiled.nodes),
            namespace=request.namespace,
            schedule_id=request.schedule_id,
            schedule_slot=request.schedule_slot,
            parent=request.parent,
            flow=flow,
        )
        return new, compiled, complexity, chosen

    async def _compile(
        self, namespace: str, definition: dict[str, Any], memo: Memo
    ) -> CompiledWorkflow:
        """Compile a definition (once per process: app/workflows/cache.py) and check its
        secrets in the namespace once per request."""
        compiled = compile_cached(definition, self.registry, max_nodes=self.settings.max_nodes)
        key = (namespace, id(compiled))  # memo.compiled keeps it alive: the id stays its own
        if key not in memo.compiled:
            resolver = SecretResolver(self.repo.engine, self.settings.secret_key)
            await resolver.resolve(namespace, definition)  # an unknown secret is a 422
            memo.compiled[key] = compiled
            if id(compiled) not in memo.dumped:
                memo.dumped[id(compiled)] = compiled.definition.model_dump(
                    by_alias=True, exclude_none=True
                )
        return compiled

    @staticmethod
    def _check_same_request(stored: str | None, fingerprint: str | None) -> None:
        if stored != fingerprint:
            raise IdempotencyConflict(
                "this Idempotency-Key was already used with a different request body"
            )

    def _choose(self, mode: Mode, complexity: Complexity) -> Literal["immediate", "queued"]:
        if mode == "auto":
            return "queued" if complexity.queue else "immediate"
        return mode

    async def _history(self, name: str | None, version: str | None) -> dict[str, float] | None:
        """What past runs of a registered version measured: each node's median duration."""
        runs = self.settings.analyzer_history_runs
        if name is None or version is None or runs <= 0:
            return None
        return await HistoryStore(self.repo.engine).node_medians(name, version, runs) or None

    async def _resolve(
        self, request: RunRequest, memo: Memo
    ) -> tuple[dict[str, Any], str | None, str | None]:
        if request.workflow is not None:
            return request.workflow, None, None
        assert request.workflow_id is not None
        key = (request.namespace, request.workflow_id, request.version)
        if key not in memo.workflows:
            memo.workflows[key] = await self.repo.get_workflow(
                request.workflow_id, request.version, request.namespace
            )
        stored = memo.workflows[key]
        if stored is None:
            raise WorkflowNotFound(
                f"no registered workflow '{request.workflow_id}'"
                + (f" version '{request.version}'" if request.version else "")
            )
        return stored.definition, stored.name, stored.version


def _replay(existing: ExecutionRecord) -> Submission:
    """The answer a repeated request (same Idempotency-Key) gets: the same execution."""
    mode: Literal["immediate", "queued"] = (
        "queued" if existing.execution_mode == "queued" else "immediate"
    )
    # An immediate run that is still going (the first request is in flight) answers 202.
    finished = mode == "immediate" and existing.status not in (Status.PENDING, Status.RUNNING)
    complexity = Complexity.from_dict(existing.complexity or {})
    return Submission(Started(existing, finished, created=False), complexity, mode)
