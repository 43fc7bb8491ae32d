"""The built-in node types, as instances ready for a `NodeRegistry`."""

from __future__ import annotations

from app.nodes.base import NodeType
from app.nodes.basic import FailNode, NoopNode
from app.nodes.condition import ConditionNode
from app.nodes.delay import DelayNode
from app.nodes.foreach import ForeachNode
from app.nodes.http import HttpRequestNode
from app.nodes.human import HumanInputNode
from app.nodes.transform import TransformNode
from app.nodes.wait_event import WaitEventNode
from app.nodes.workflow import WorkflowNode


def builtin_types() -> list[NodeType]:
    return [
        TransformNode(),
        ConditionNode(),
        NoopNode(),
        FailNode(),
        DelayNode(),
        HttpRequestNode(),
        ForeachNode(),
        HumanInputNode(),
        WorkflowNode(),
        WaitEventNode(),
    ]
