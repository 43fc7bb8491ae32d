"""`workflow`: runs a registered workflow as a child execution; the step waits durably."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from app.nodes.base import BaseNode, NodeContext, Params, Suspend, step_error
from app.nodes.compose import ChildView, composition

CHILD_WAIT = "child_workflow"


class WorkflowParams(Params):
    workflow: str = Field(min_length=1, max_length=200, description="a registered workflow")
    version: str = Field(
        default="latest", min_length=1, max_length=100, description="a version, or latest"
    )
    input: Any = Field(default_factory=dict, description="the child's input")


def child_view(state: Mapping[str, Any]) -> dict[str, Any] | None:
    """The child a step started (the current attempt's), from its stored state."""
    child = state.get("child")
    if not isinstance(child, dict) or "id" not in child:
        return None
    return {
        "executionId": child["id"],
        "workflow": child.get("workflow"),
        "version": child.get("version"),
        "attempt": child.get("attempt"),
    }


class WorkflowNode(BaseNode):
    """Each attempt starts one child (keyed by parent, step and attempt, so a re-run of the
    same attempt finds it again); the output is the child's result."""

    name: ClassVar[str] = "workflow"
    params_model: ClassVar[type[BaseModel]] = WorkflowParams
    # A child is a call outside this run: the analyzer counts it, and it is written at once.
    external: ClassVar[bool] = True
    waits: ClassVar[bool] = True
    default_estimate_ms: ClassVar[float] = 1000.0

    @staticmethod
    def event_facts(state: Mapping[str, Any]) -> dict[str, Any]:
        """The step's `completed`, `failed` and `retrying` events name its child."""
        child = child_view(state)
        return {"childExecutionId": child["executionId"]} if child else {}

    async def run(self, ctx: NodeContext, params: WorkflowParams) -> Any:
        comp = composition(ctx, self.name)
        version = None if params.version == "latest" else params.version
        known = ctx.state.get("child")
        if isinstance(known, dict) and known.get("attempt") == ctx.attempt and "id" in known:
            child = await comp.child(str(known["id"]))
        else:
            child = await comp.start_child(ctx, params.workflow, version, params.input)
            ctx.state["child"] = {
                "id": child.id,
                "attempt": ctx.attempt,
                "workflow": child.workflow,
                "version": child.version,
            }
        return finished(child, ctx.node_id)


def finished(child: ChildView, node_id: str) -> Any:
    """The child's result when it completed; a step failure when it failed or was cancelled;
    else the step parks until the child ends."""
    if child.status == "completed":
        return child.result
    if child.status in ("failed", "cancelled"):
        error = child.error or {}
        reason = error.get("message") or child.status
        code = error.get("code") or child.status
        raise step_error(
            f"child execution {child.id} ({child.workflow}) {child.status}: [{code}] {reason}",
            code="child_failed",
            retryable=True,
        )
    raise Suspend(
        CHILD_WAIT,
        data={
            "childExecutionId": child.id,
            "workflow": child.workflow,
            "version": child.version,
            "nodeId": node_id,
        },
    )
