"""Log lines written while a step runs carry the step's execution, node and attempt."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import httpx
import pytest
from pydantic import BaseModel

from app.config import Settings
from app.engine.runner import Runner
from app.nodes.base import BaseNode, NodeContext, Params, Services
from app.nodes.builtin import builtin_types
from app.nodes.registry import NodeRegistry
from app.workflows.graph import compile_workflow
from tests.support.nodes import MemoryObserver


class ChattyNode(BaseNode):
    name: ClassVar[str] = "test.chatty"
    params_model: ClassVar[type[BaseModel]] = Params

    async def run(self, ctx: NodeContext, params: Any) -> Any:
        logging.getLogger("plugin.chatty").info("working")
        return {}


async def test_a_log_line_written_inside_a_step_names_the_step(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = NodeRegistry([*builtin_types(), ChattyNode()])
    workflow = {"nodes": [{"id": "talk", "type": "test.chatty"}]}
    async with httpx.AsyncClient() as client:
        runner = Runner(Services(Settings(), client), registry)
        with caplog.at_level(logging.INFO, logger="plugin.chatty"):
            await runner.run(
                compile_workflow(workflow, registry, max_nodes=10),
                {},
                execution_id="exec-42",
                observer=MemoryObserver(),
                attempt=1,
            )
            logging.getLogger("plugin.chatty").info("after the run")
    inside, after = [r for r in caplog.records if r.name == "plugin.chatty"][:2]
    assert (inside.execution_id, inside.node_id, inside.attempt) == ("exec-42", "talk", 1)  # type: ignore[attr-defined]
    assert not hasattr(after, "node_id")
