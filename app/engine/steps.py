"""Running one step: render params, call the node, retry, time out, record (no HTTP, no SQL)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from app.auth.masking import Masker
from app.engine import retry
from app.engine.state import RunObserver, StepBook, StepState, item_key, utcnow
from app.engine.status import StepStatus
from app.engine.stops import RunControl
from app.errors import (
    OutputNotJSON,
    ParamsInvalid,
    StepError,
    StepTimeout,
    TurnoutError,
)
from app.expressions.templates import Template, compile_template
from app.jsonvalue import NotJSON, normalise
from app.nodes.base import NodeContext, NodeType, Services, Suspend
from app.nodes.registry import NodeRegistry
from app.nodes.template import RetryPolicy
from app.observability.steps import observe_step
from app.observability.usage import measured, output_size

__all__ = ["RunObserver", "StepExecutor", "StepInterrupted", "StepSpec", "error_dict"]

log = logging.getLogger(__name__)


class StepInterrupted(Exception):
    """The step stopped because the run is pausing or handing over; it will run again."""


def error_dict(exc: BaseException, node_id: str) -> dict[str, Any]:
    if isinstance(exc, TurnoutError):
        return {"code": exc.code, "message": exc.message, "nodeId": node_id}
    # Unexpected errors come from node code: keep the message, never the traceback.
    return {"code": "node_error", "message": f"{type(exc).__name__}: {exc}", "nodeId": node_id}


def validate_params(node_type: NodeType, params: Any) -> Any:
    try:
        return node_type.params_model.model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(params)'}: {e['msg']}" for e in exc.errors()
        )
        raise ParamsInvalid(f"params invalid for '{node_type.name}': {problems}") from exc


def _event_facts(spec: StepSpec, state: Mapping[str, Any]) -> Mapping[str, Any]:
    """What a node type adds to its step's events (a `workflow` step: its child's id)."""
    facts = getattr(spec.node_type, "event_facts", None)
    return facts(state) if facts is not None else {}


class StepSpec:
    """What is needed to run a node (or a foreach item) whatever its origin."""

    __slots__ = ("node_id", "node_type", "params", "raw_params", "retry", "timeout_ms")

    def __init__(
        self,
        node_id: str,
        node_type: NodeType,
        params: Template,
        raw_params: Mapping[str, Any],
        retry_policy: RetryPolicy | None,
        timeout_ms: int | None,
    ) -> None:
        self.node_id = node_id
        self.node_type = node_type
        self.params = params
        self.raw_params = raw_params
        self.retry = retry_policy
        self.timeout_ms = timeout_ms


class _AttemptState(dict[str, Any]):
    """The node's state during one attempt (`ctx.state`, also where the usage is recorded).
    Each write revises the running step in the book, so a checkpoint taken mid-attempt holds
    what the node has written so far (a delay's `dueAt`); `close` ends that and gives the
    state the step keeps."""

    __slots__ = ("_book", "_step")

    def __init__(self, data: Mapping[str, Any], book: StepBook, step: StepState) -> None:
        super().__init__(data)
        self._book: StepBook | None = book
        self._step = step

    def close(self) -> dict[str, Any]:
        self._book = None
        return dict(self)

    def _revised(self) -> None:
        if self._book is not None:
            self._book.revise(self._step.evolve(state=dict(self)))

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._revised()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._revised()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._revised()

    def setdefault(self, key: str, default: Any = None) -> Any:
        value = super().setdefault(key, default)
        self._revised()
        return value

    def pop(self, key: str, *default: Any) -> Any:
        value = super().pop(key, *default)
        self._revised()
        return value


class StepExecutor:
    """Runs steps with retry and timeout; every transition is a new value in the book (which
    reports it to the observer)."""

    def __init__(
        self,
        *,
        execution_id: str,
        services: Services,
        registry: NodeRegistry,
        control: RunControl,
        steps: StepBook,
        rand: Callable[[], float] = random.random,
        masker: Masker | None = None,
        namespace: str = "default",
    ) -> None:
        self.masker = masker or Masker()
        self.execution_id = execution_id
        self.namespace = namespace
        self.services = services
        self.registry = registry
        self.control = control
        self.steps = steps
        self.rand = rand

    async def run(self, spec: StepSpec, step: StepState, scope: Mapping[str, Any]) -> StepState:
        """Run until the step completes, fails for good, or waits: its last value. Raises
        StepInterrupted (the book then holds the step as the interruption left it)."""
        durable = spec.node_type.external
        # The node's own state for this attempt: written by the node and the usage record,
        # it becomes the step's state when the attempt ends, however it ends.
        state = dict(step.state)
        # Interrupted (shutdown, pause?abort) or parked (answered input, due delay): the same
        # attempt goes on.
        resumed_attempt = step.status in (StepStatus.RUNNING, StepStatus.WAITING) or bool(
            state.pop("interrupted", False)
        )
        while True:
            attempt = step.attempt
            if not resumed_attempt or attempt == 0:
                attempt += 1
            resumed_attempt = False
            step = await self.steps.change(
                step.evolve(
                    status=StepStatus.RUNNING,
                    attempt=attempt,
                    started_at=utcnow(),
                    completed_at=None,
                    error=None,
                    state=dict(state),
                ),
                "step.started",
                {"attempt": attempt},
                durable=False,
            )
            working = _AttemptState(state, self.steps, step)
            try:
                with observe_step(self.execution_id, spec.node_type.name, step, working) as usage:
                    output = await measured(self._attempt(spec, step, scope, working), usage)
                    usage.output_bytes = output_size(output)
            except Suspend as suspend:
                return await self._park(step, working.close(), suspend)
            except (asyncio.CancelledError, StepInterrupted):
                # As the attempt left it; reported by whoever stops it.
                self.steps.revise(step.evolve(state=working.close()))
                raise
            except Exception as exc:
                if not isinstance(exc, StepError):
                    log.warning("step %s raised", step.key, exc_info=exc)
                failed = step.evolve(state=working.close())
                step, again = await self._retry_or_fail(spec, failed, exc)
                state = dict(step.state)
                if again:
                    continue
                return step
            done = step.evolve(
                status=StepStatus.COMPLETED,
                completed_at=utcnow(),
                output=output,
                state=self.masker.mask(working.close()) if self.masker else working.close(),
            )
            data = {"durationMs": done.duration_ms, **_event_facts(spec, done.state)}
            return await self.steps.change(done, "step.completed", data, durable=durable)

    async def _attempt(
        self, spec: StepSpec, step: StepState, scope: Mapping[str, Any], state: dict[str, Any]
    ) -> Any:
        rendered = spec.params.render(scope)
        if spec.raw_params:
            rendered = {**rendered, **spec.raw_params}
        params = validate_params(spec.node_type, rendered)
        ctx = NodeContext(
            execution_id=self.execution_id,
            node_id=spec.node_id,
            step_key=step.key,
            attempt=step.attempt,
            services=self.services,
            scope=scope,
            state=state,
            namespace=self.namespace,
        )
        if spec.node_type.loop:
            ctx.run_items = self._item_runner(spec.node_id, scope)
        if spec.timeout_ms is None:
            return self._json_output(await spec.node_type.run(ctx, params))
        try:
            async with asyncio.timeout(spec.timeout_ms / 1000):
                output = await spec.node_type.run(ctx, params)
        except TimeoutError as exc:
            raise StepTimeout(f"step timed out after {spec.timeout_ms} ms") from exc
        return self._json_output(output)

    def _json_output(self, output: Any) -> Any:
        """The step boundary: what a node returns becomes a step output only if it is JSON
        (a secret's value in it, e.g. a peer's echo, becomes `***`)."""
        try:
            return self.masker.mask(
                normalise(output, max_depth=self.services.settings.max_json_depth)
            )
        except NotJSON as exc:
            raise OutputNotJSON(exc.describe("output")) from exc

    async def _park(self, step: StepState, state: dict[str, Any], suspend: Suspend) -> StepState:
        state["waitReason"] = suspend.reason
        state["wakeAt"] = suspend.until.isoformat() if suspend.until else None
        state["waitData"] = self.masker.mask(suspend.data)
        parked = step.evolve(status=StepStatus.WAITING, state=state)
        # A parked step is what lets the worker go: it must be on disk first.
        return await self.steps.change(parked, None, {}, durable=True)

    async def _retry_or_fail(
        self, spec: StepSpec, step: StepState, exc: Exception
    ) -> tuple[StepState, bool]:
        """The step after a failed attempt, and whether it runs again."""
        error = self.masker.mask(error_dict(exc, spec.node_id))
        retryable = getattr(exc, "retryable", True)
        decision = retry.decide(
            spec.retry,
            step.attempt,
            retryable=retryable,
            rand=self.rand(),
            not_before_ms=getattr(exc, "retry_after_ms", None),
        )
        step = step.evolve(error=error, completed_at=utcnow())
        facts = _event_facts(spec, step.state)
        if not decision.retry:
            failed = step.evolve(status=StepStatus.FAILED)
            return await self.steps.change(
                failed, "step.failed", {"error": error, **facts}, durable=True
            ), False
        step = await self.steps.change(
            step,
            "step.retrying",
            {
                "error": error,
                "attempt": step.attempt,
                "delayMs": round(decision.delay_ms, 1),
                **facts,
            },
            durable=spec.node_type.external,
        )
        if await self.control.sleep(decision.delay_ms / 1000):
            raise StepInterrupted
        return step, True

    def _item_runner(
        self, node_id: str, scope: Mapping[str, Any]
    ) -> Callable[[list[Any], int, Mapping[str, Any]], Any]:
        async def run_items(
            items: list[Any], concurrency: int, template: Mapping[str, Any]
        ) -> list[Any]:
            return await self._run_items(node_id, scope, items, concurrency, template)

        return run_items

    async def _run_items(
        self,
        node_id: str,
        scope: Mapping[str, Any],
        items: list[Any],
        concurrency: int,
        template: Mapping[str, Any],
    ) -> list[Any]:
        spec = self._item_spec(node_id, template)
        limit = asyncio.Semaphore(concurrency)
        outputs: list[Any] = [None] * len(items)

        async def one(index: int, item: Any) -> None:
            key = item_key(node_id, index)
            step = self.steps.get(key)
            if step is not None and step.status == StepStatus.COMPLETED:
                outputs[index] = step.output  # done before an interruption: never re-run
                return
            async with limit:
                if self.control.stopping:
                    raise StepInterrupted
                if step is None:
                    step = self.steps.add(StepState(key, node_id, item_index=index))
                step = await self.run(spec, step, {**scope, "item": item, "index": index})
            if step.status != StepStatus.COMPLETED:
                message = (step.error or {}).get("message", "item did not complete")
                raise StepError(f"item {index} failed: {message}")
            outputs[index] = step.output

        tasks = [asyncio.ensure_future(one(index, item)) for index, item in enumerate(items)]
        if not tasks:
            return outputs
        try:
            _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()
        if pending:
            await asyncio.wait(pending)
        for task in tasks:  # the first failure in item order explains the step's failure
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return outputs

    def _item_spec(self, node_id: str, template: Mapping[str, Any]) -> StepSpec:
        type_name = str(template.get("type", ""))
        node_type = self.registry.get(type_name)
        if node_type is None:
            raise StepError(f"unknown node type '{type_name}' in foreach template")
        params = dict(template.get("params") or {})
        raw = {k: params.pop(k) for k in node_type.raw_params if k in params}
        policy = template.get("retry")
        return StepSpec(
            node_id,
            node_type,
            compile_template(params),
            raw,
            RetryPolicy.model_validate(policy) if policy else None,
            template.get("timeout"),
        )
