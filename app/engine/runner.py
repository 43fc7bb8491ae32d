"""The DAG runner: the one code path that runs an execution, in a request or on a worker."""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from app.auth.masking import Masker
from app.engine.limits import Limits, RunBudget, step_cost
from app.engine.state import OutcomeKind, RunObserver, RunOutcome, StepBook, StepState, utcnow
from app.engine.status import STEP_DONE, StepStatus
from app.engine.steps import StepExecutor, StepInterrupted, StepSpec, error_dict
from app.engine.stops import CANCELS_RUNNING, REQUEUES_RUNNING, RunControl, StopKind
from app.errors import ExpressionError, OutputNotJSON
from app.jsonvalue import NotJSON, normalise
from app.nodes.base import Services
from app.nodes.registry import NodeRegistry
from app.observability.usage import recorded_output_size
from app.workflows.graph import CompiledNode, CompiledWorkflow

log = logging.getLogger(__name__)

# Statuses a step may be found in after an interruption, and that must run again.
_RERUN = frozenset({StepStatus.RUNNING, StepStatus.PENDING, StepStatus.CANCELLED})


class Runner:
    """Walks a compiled workflow: ready nodes run concurrently up to `maxConcurrency`."""

    def __init__(
        self,
        services: Services,
        registry: NodeRegistry,
        *,
        cancel_grace_s: float = 5.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.services = services
        self.registry = registry
        self.cancel_grace_s = cancel_grace_s
        self.rand = rand

    async def run(
        self,
        workflow: CompiledWorkflow,
        input_data: Any,
        *,
        execution_id: str,
        observer: RunObserver,
        control: RunControl | None = None,
        steps: Mapping[str, StepState] | None = None,
        attempt: int = 1,
        secrets: Mapping[str, str] | None = None,
        namespace: str = "default",
    ) -> RunOutcome:
        """Run to a resting point; the outcome carries every step as the run left it (the
        steps given are values: they are not changed)."""
        walk = _Walk(
            self,
            workflow,
            input_data,
            execution_id=execution_id,
            observer=observer,
            control=control or RunControl(),
            steps=steps or {},
            attempt=attempt,
            secrets=secrets or {},
            namespace=namespace,
        )
        return await walk.run()


def run_limits(workflow: CompiledWorkflow, settings: Any) -> Limits:
    """The workflow's own limits, each defaulting to the service-wide one."""
    own = workflow.definition.limits
    return Limits(
        max_steps=(own and own.max_steps) or settings.max_steps,
        max_output_bytes=(own and own.max_output_bytes) or settings.max_output_bytes,
        max_duration_ms=(own and own.max_duration_ms) or settings.max_duration_ms,
    )


class _Walk:
    """The state of one run of the runner (one call to `Runner.run`); its book holds the
    current steps, which change only through it."""

    def __init__(
        self,
        runner: Runner,
        workflow: CompiledWorkflow,
        input_data: Any,
        *,
        execution_id: str,
        observer: RunObserver,
        control: RunControl,
        steps: Mapping[str, StepState],
        attempt: int,
        secrets: Mapping[str, str],
        namespace: str = "default",
    ) -> None:
        self.runner = runner
        self.masker = Masker(secrets.values())
        self.workflow = workflow
        self.observer = observer
        self.control = control
        self.steps = StepBook(steps, observer)
        self.scope: dict[str, Any] = {
            "input": input_data,
            "execution": {"id": execution_id, "attempt": attempt},
            "secrets": dict(secrets),
        }
        self.order = {node_id: i for i, node_id in enumerate(workflow.nodes)}
        self.executor = StepExecutor(
            execution_id=execution_id,
            services=runner.services,
            registry=runner.registry,
            control=control,
            steps=self.steps,
            rand=runner.rand,
            masker=self.masker,
            namespace=namespace,
        )
        self.running: dict[asyncio.Task[Any], str] = {}  # each ends with its step's last value
        self.ready: list[tuple[int, str]] = []
        self.missing: dict[str, int] = {}
        self.failed_first: dict[str, Any] | None = None
        self.stopped_by_failure = False
        self.budget = RunBudget(run_limits(workflow, runner.services.settings))

    def _step(self, node_id: str) -> StepState:
        step = self.steps.get(node_id)
        return step if step is not None else self.steps.add(StepState(node_id, node_id))

    def _prepare(self) -> None:
        """Count unmet dependencies; completed steps keep their outputs and never re-run."""
        for node_id in self.workflow.nodes:
            step = self._step(node_id)
            if step.status == StepStatus.COMPLETED:
                self.scope[node_id] = step.output
                self.budget.spend(self._cost(node_id), step.output)
            elif step.status == StepStatus.SKIPPED:
                self.scope[node_id] = None
            elif step.status == StepStatus.FAILED and self.failed_first is None:
                self.failed_first = step.error  # failed for good earlier (onFailure=continue)
        for node_id, node in self.workflow.nodes.items():
            self.missing[node_id] = sum(
                1 for dep in node.deps if self.steps[dep].status not in STEP_DONE
            )
            if self.missing[node_id] == 0 and self.steps[node_id].status not in STEP_DONE:
                heapq.heappush(self.ready, (self.order[node_id], node_id))

    async def run(self) -> RunOutcome:
        self._prepare()
        stop_task = asyncio.ensure_future(self.control.changed())
        try:
            while True:
                if not self.control.stopping:
                    await self._schedule()
                if self.control.kind in CANCELS_RUNNING:
                    await self._cancel_running()
                if not self.running:
                    break
                done, _ = await asyncio.wait(
                    [*self.running, stop_task],
                    timeout=self.budget.seconds_left(),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if self.budget.out_of_time():
                    self._over_limit()
                if stop_task in done:
                    stop_task = asyncio.ensure_future(self.control.changed())
                for task in done:
                    if task in self.running:
                        await self._finished(task)
        finally:
            stop_task.cancel()
            if self.running:
                await self._cancel_running()
        outcome = await self._outcome()
        outcome.steps = self.steps.snapshot()
        return outcome

    async def _schedule(self) -> None:
        limit = self.workflow.definition.max_concurrency
        while self.ready and len(self.running) < limit and not self.control.stopping:
            _, node_id = heapq.heappop(self.ready)
            node = self.workflow.nodes[node_id]
            step = self._step(node_id)
            skip_reason = self._skip_reason(node)
            if skip_reason is None and node.when is not None:
                try:
                    if not node.when.evaluate(self.scope):
                        skip_reason = "condition"
                except ExpressionError as exc:
                    error = error_dict(exc, node_id)
                    failed = step.evolve(status=StepStatus.FAILED, error=error)
                    await self.steps.change(failed, "step.failed", {"error": error}, durable=True)
                    await self._done(node_id)
                    continue
            if skip_reason is not None:
                skipped = step.evolve(
                    status=StepStatus.SKIPPED,
                    state={**step.state, "skipReason": skip_reason},
                    completed_at=utcnow(),
                )
                await self.steps.change(
                    skipped, "step.skipped", {"reason": skip_reason}, durable=False
                )
                await self._done(node_id)
                continue
            if not self.budget.spend(1):
                self._over_limit()
                break
            task = asyncio.ensure_future(self.executor.run(self._spec(node), step, self.scope))
            self.running[task] = node_id

    def _skip_reason(self, node: CompiledNode) -> str | None:
        if not node.deps:
            return None
        statuses = [self.steps[dep].status for dep in node.deps]
        if any(s == StepStatus.FAILED for s in statuses):
            return "upstream_failed"
        if all(s == StepStatus.SKIPPED for s in statuses):
            return "upstream_skipped"
        return None

    @staticmethod
    def _spec(node: CompiledNode) -> StepSpec:
        definition = node.definition
        return StepSpec(
            node.id,
            node.node_type,
            node.params,
            node.raw_params,
            definition.retry,
            definition.timeout,
        )

    async def _finished(self, task: asyncio.Task[Any]) -> None:
        node_id = self.running.pop(task)
        step = self.steps[node_id]
        exc = task.exception() if not task.cancelled() else None
        if isinstance(exc, StepInterrupted) or task.cancelled():
            self.steps.revise(step.evolve(status=StepStatus.PENDING))
            return
        if exc is not None:  # a bug in the runner's own hooks: fail the step, keep going
            log.error("step %s crashed the runner hook", node_id, exc_info=exc)
            error = error_dict(exc, node_id)
            step = self.steps.revise(step.evolve(status=StepStatus.FAILED, error=error))
        if step.status in STEP_DONE:
            await self._done(node_id)

    async def _done(self, node_id: str) -> None:
        step = self.steps[node_id]
        if step.status == StepStatus.FAILED:
            if self.failed_first is None:
                self.failed_first = step.error
            if self.workflow.definition.on_failure == "stop":
                self.stopped_by_failure = True
                self.control.request(StopKind.CANCEL, "a step failed")
                return
        self.scope[node_id] = step.output if step.status == StepStatus.COMPLETED else None
        completed = step.status == StepStatus.COMPLETED
        if completed:
            # Completed just now: its usage holds the output's size (the same JSON text).
            size = recorded_output_size(step.state, step.attempt)
            if not self.budget.spend(self._cost(node_id) - 1, step.output, size):
                self._over_limit()
                return
        for child in self.workflow.dependents.get(node_id, ()):
            self.missing[child] -= 1
            if self.missing[child] == 0:
                heapq.heappush(self.ready, (self.order[child], child))

    async def _cancel_running(self) -> None:
        """Cancel in-flight steps; give them a grace period to unwind."""
        kind = self.control.kind
        tasks = list(self.running)
        for task in tasks:
            task.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=self.runner.cancel_grace_s)
            for task in stuck:  # ignored cancellation: abandon it, its writes are fenced off
                log.warning("step %s ignored cancellation", self.running.get(task))
        self.running.clear()
        # Steps (and foreach items) that were in flight: ended, or kept to run again.
        for step in self.steps:
            if step.status != StepStatus.RUNNING:
                continue
            if kind == StopKind.PAUSE_ABORT:
                # Shown as cancelled while paused (never left `running`); it re-runs on
                # resume as the same attempt.
                step = step.evolve(state={**step.state, "interrupted": True})
            if kind not in REQUEUES_RUNNING or kind == StopKind.PAUSE_ABORT:
                step = step.evolve(status=StepStatus.CANCELLED, completed_at=utcnow())
            await self.steps.change(step, None, {}, durable=False)

    def _cost(self, node_id: str) -> int:
        return step_cost(self.workflow.nodes[node_id].definition.type, self.steps[node_id].output)

    def _over_limit(self) -> None:
        """A limit is passed: the run stops and fails with `limit_exceeded`."""
        self.stopped_by_failure = True
        self.control.request(StopKind.CANCEL, "a run limit was exceeded")

    async def _outcome(self) -> RunOutcome:
        outcome = await self._unmasked_outcome()
        if self.masker:
            outcome.result = self.masker.mask(outcome.result)
            outcome.error = self.masker.mask(outcome.error)
        return outcome

    async def _unmasked_outcome(self) -> RunOutcome:
        if self.budget.exceeded is not None:
            return RunOutcome(OutcomeKind.FAILED, error=self.budget.exceeded)
        failed_stop = self.stopped_by_failure
        kind = self.control.kind
        interrupted = [s.key for s in self.steps if s.status in _RERUN and s.attempt > 0]
        if failed_stop or (kind is None and self.failed_first is not None and self._all_done()):
            return RunOutcome(OutcomeKind.FAILED, error=self.failed_first)
        if kind == StopKind.CANCEL:
            by = self.control.by
            reason = f"cancelled by {by}" if by else (self.control.reason or "cancelled")
            return RunOutcome(OutcomeKind.CANCELLED, error={"code": "cancelled", "message": reason})
        if kind == StopKind.TIMEOUT:
            reason = self.control.reason or "the execution timed out"
            return RunOutcome(OutcomeKind.FAILED, error={"code": "timeout", "message": reason})
        if self._all_done():
            if self.failed_first is not None:
                return RunOutcome(OutcomeKind.FAILED, error=self.failed_first)
            return self._completed()
        if kind in (StopKind.PAUSE, StopKind.PAUSE_ABORT):
            return RunOutcome(OutcomeKind.PAUSED, interrupted_steps=interrupted)
        if kind in (StopKind.INTERRUPT, StopKind.DRAIN):
            return RunOutcome(OutcomeKind.INTERRUPTED, interrupted_steps=interrupted)
        return self._waiting()

    def _all_done(self) -> bool:
        return all(self.steps[n].status in STEP_DONE for n in self.workflow.nodes)

    def _completed(self) -> RunOutcome:
        if self.workflow.definition.output is None:
            sinks = [n for n in self.workflow.nodes if not self.workflow.dependents.get(n)]
            return RunOutcome(OutcomeKind.COMPLETED, result={n: self.scope.get(n) for n in sinks})
        try:
            result = self.workflow.output.render(self.scope)
            result = normalise(result, max_depth=self.runner.services.settings.max_json_depth)
        except ExpressionError as exc:
            return RunOutcome(
                OutcomeKind.FAILED, error={"code": exc.code, "message": f"output: {exc.message}"}
            )
        except NotJSON as exc:
            dot = "." if exc.path and isinstance(exc.path[0], str) else ""
            message = f"output{dot}{exc.describe('')}"
            return RunOutcome(
                OutcomeKind.FAILED, error={"code": OutputNotJSON.code, "message": message}
            )
        return RunOutcome(OutcomeKind.COMPLETED, result=result)

    def _waiting(self) -> RunOutcome:
        waits = [s for s in self.steps if s.status == StepStatus.WAITING]
        wakes = [datetime.fromisoformat(s.state["wakeAt"]) for s in waits if s.state.get("wakeAt")]
        return RunOutcome(
            OutcomeKind.WAITING,
            wake_at=min(wakes) if wakes else None,
            waiting_for=[
                {"nodeId": s.node_id, "reason": s.state.get("waitReason"), **_wait_data(s)}
                for s in waits
            ],
        )


def _wait_data(step: StepState) -> Mapping[str, Any]:
    data = step.state.get("waitData")
    return data if isinstance(data, Mapping) else {}
