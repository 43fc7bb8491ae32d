"""`GET /node-types`: every type with its params JSON Schema and complexity facts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import jsonschema
import pytest
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.main import create_app
from app.nodes.base import BaseNode, NodeContext, Params
from app.nodes.builtin import builtin_types
from app.nodes.registry import NodeRegistry
from app.runtime import build_runtime
from tests.servers import run_server
from tests.support.nodes import SleepNode

BUILTINS = {
    "transform",
    "condition",
    "http.request",
    "delay",
    "foreach",
    "human.input",
    "noop",
    "fail",
}


def by_name(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in body["items"]}


async def test_node_types_lists_every_builtin_with_its_params_schema(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/node-types")

    assert response.status_code == 200
    types = by_name(response.json())
    assert set(types) >= BUILTINS
    http = types["http.request"]
    assert http["description"]
    assert {"url", "method", "acceptStatus", "followRedirects"} <= set(
        http["paramsSchema"]["properties"]
    )
    assert http["paramsSchema"]["required"] == ["url"]
    circuit = jsonschema.Draft202012Validator(http["paramsSchema"])
    for good in (False, True, {"failures": 2}, {"windowMs": 1000, "cooldownMs": 5000}):
        assert circuit.is_valid({"url": "https://a.example/", "circuitBreaker": good})
    for bad in ("yes", {"failures": 0}, {"cooldown": 5}):
        assert not circuit.is_valid({"url": "https://a.example/", "circuitBreaker": bad})
    # The schema is a usable JSON Schema: it accepts good params and rejects bad ones.
    validator = jsonschema.Draft202012Validator(types["delay"]["paramsSchema"])
    assert validator.is_valid({"ms": 10})
    assert not validator.is_valid({"ms": -1})
    assert not validator.is_valid({"ms": 10, "extra": 1})


async def test_node_types_show_the_facts_the_analyzer_counts(client: httpx.AsyncClient) -> None:
    types = by_name((await client.get("/node-types")).json())

    assert types["http.request"]["complexity"] == {
        "external": True,
        "loop": False,
        "human": False,
        "estimatedDurationMs": 500.0,
    }
    assert types["foreach"]["complexity"]["loop"] is True
    assert types["human.input"]["complexity"]["human"] is True
    assert types["transform"]["complexity"] == {
        "external": False,
        "loop": False,
        "human": False,
        "estimatedDurationMs": 1.0,
    }


class EchoParams(Params):
    text: str


class EchoOutput(BaseModel):
    echoed: str


class EchoNode(BaseNode):
    """Echoes its text back (a plugin that declares an output model)."""

    name: ClassVar[str] = "test.echo"
    params_model: ClassVar[type[BaseModel]] = EchoParams
    output_model: ClassVar[type[BaseModel]] = EchoOutput
    external: ClassVar[bool] = True
    default_estimate_ms: ClassVar[float] = 42.0

    async def run(self, ctx: NodeContext, params: EchoParams) -> Any:
        return {"echoed": params.text}


@pytest.fixture
def plugin_api_url(settings: Settings, engine: AsyncEngine) -> Iterator[str]:
    registry = NodeRegistry([*builtin_types(), SleepNode(), EchoNode()])
    runtime = build_runtime(settings, role="api", registry=registry)
    with run_server(create_app(settings, runtime=runtime)) as url:
        yield url


async def test_node_types_include_plugin_types(plugin_api_url: str) -> None:
    async with httpx.AsyncClient(base_url=plugin_api_url) as c:
        types = by_name((await c.get("/node-types")).json())

    sleep = types["test.sleep"]
    assert set(sleep["paramsSchema"]["properties"]) == {"ms", "value"}
    assert sleep["complexity"]["external"] is False
    assert sleep["outputSchema"] is None
    echo = types["test.echo"]
    assert echo["description"] == "Echoes its text back (a plugin that declares an output model)."
    assert echo["paramsSchema"]["required"] == ["text"]
    assert echo["outputSchema"]["properties"]["echoed"]["type"] == "string"
    assert echo["complexity"] == {
        "external": True,
        "loop": False,
        "human": False,
        "estimatedDurationMs": 42.0,
    }


async def test_openapi_documents_node_types_response(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()

    ok = spec["paths"]["/node-types"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/NodeTypeList")
