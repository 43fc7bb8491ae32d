"""`http.request`: one outbound call through the shared httpx client, behind the SSRF guard.

Redirects are followed by hand (at most 5) so that `AddressGuard` vets every hop. Requests are
built as bare `httpx.Request`s, not with `client.build_request`, so the shared client's cookie
jar never sends one execution's cookies on another's behalf. The body is streamed and capped.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Annotated, Any, ClassVar, Literal, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator
from pydantic.alias_generators import to_camel

from app.circuits.breakers import Outcome, Ticket, default_policy
from app.circuits.policy import CircuitPolicy
from app.errors import ParamsInvalid, StepError
from app.nodes.base import BaseNode, NodeContext, Params, step_error
from app.nodes.ssrf import AddressGuard
from app.observability import tracing, usage

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
Scalar = str | int | float | bool

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRYABLE_STATUSES = frozenset({408, 429})  # plus every 5xx
DEFAULT_PORTS = {"http": 80, "https": 443}
USER_AGENT = "turnout"
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class CircuitOverride(Params):
    """A node's own breaker thresholds; a missing one is the service's (TURNOUT_CIRCUIT_*)."""

    model_config = ConfigDict(alias_generator=to_camel)

    failures: int | None = Field(default=None, ge=1, le=10_000)
    window_ms: int | None = Field(default=None, ge=1, le=86_400_000)
    cooldown_ms: int | None = Field(default=None, ge=1, le=86_400_000)

    def policy(self, default: CircuitPolicy) -> CircuitPolicy:
        return CircuitPolicy(
            self.failures or default.failures,
            self.window_ms or default.window_ms,
            self.cooldown_ms or default.cooldown_ms,
        )


class HttpParams(Params):
    model_config = ConfigDict(alias_generator=to_camel)

    method: Method = "GET"
    url: str = Field(min_length=1, max_length=8192)
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    json_: Any = Field(default=None, alias="json")
    body: str | None = None
    accept_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(default_factory=list)
    timeout: int | None = Field(default=None, ge=1, le=3_600_000)
    follow_redirects: bool = False
    circuit_breaker: StrictBool | CircuitOverride = True

    @field_validator("method", mode="before")
    @classmethod
    def upper_method(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def http_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a valid URL: {exc}") from exc
        if url.scheme not in DEFAULT_PORTS:
            raise ValueError("url must start with http:// or https://")
        if not url.host:
            raise ValueError("url has no host")
        return value

    @field_validator("headers")
    @classmethod
    def header_syntax(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not HEADER_NAME.match(name):
                raise ValueError(f"invalid header name {name!r}")
            if any(c in text for c in "\r\n\0"):
                raise ValueError(f"header {name!r} contains a line break or NUL")
        return value

    @model_validator(mode="after")
    def one_body(self) -> Self:
        if self.has_json and self.body is not None:
            raise ValueError("json and body are mutually exclusive")
        return self

    @property
    def has_json(self) -> bool:
        return "json_" in self.model_fields_set  # `"json": null` sends a JSON null


def label(method: str, url: httpx.URL) -> str:
    """How errors name the request: no query string or credentials, which may hold secrets."""
    port = f":{url.port}" if url.port else ""
    return f"{method} {url.scheme}://{url.host}{port}{url.path}"


def build_request(ctx: NodeContext, params: HttpParams, timeout_ms: int) -> httpx.Request:
    settings = ctx.services.settings
    headers = httpx.Headers(params.headers)
    headers.setdefault("user-agent", USER_AGENT)
    if settings.http_send_idempotency_key:
        headers.setdefault("idempotency-key", ctx.idempotency_key)
    content: bytes | None = params.body.encode() if params.body is not None else None
    if params.has_json:
        try:
            content = json.dumps(params.json_, ensure_ascii=False, allow_nan=False).encode()
        except ValueError as exc:
            raise ParamsInvalid(f"json is not serialisable: {exc}") from exc
        headers.setdefault("content-type", "application/json")
    url = httpx.URL(params.url)
    if params.query:
        url = url.copy_merge_params(params.query)
    timeout = httpx.Timeout(timeout_ms / 1000).as_dict()
    tracing.inject(headers)  # the step's span, when tracing is on
    return httpx.Request(
        params.method, url, headers=headers, content=content, extensions={"timeout": timeout}
    )


def timeouts(request: httpx.Request) -> dict[str, float | None]:
    value = request.extensions.get("timeout")
    return dict(value) if isinstance(value, dict) else {}


def redirect_request(request: httpx.Request, response: httpx.Response) -> httpx.Request:
    """The next hop, as browsers and httpx do it: 303 (and 301/302 after POST) become GET."""
    try:
        url = request.url.join(response.headers["location"])
    except httpx.InvalidURL as exc:
        raise step_error(
            f"bad redirect location: {exc}", code="http_redirect", retryable=False
        ) from exc
    if url.scheme not in DEFAULT_PORTS:
        raise step_error(
            f"redirect to unsupported scheme '{url.scheme}'", code="http_redirect", retryable=False
        )
    status, method = response.status_code, request.method
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method = "GET"
    headers = httpx.Headers(request.headers)
    headers.pop("host", None)
    content: bytes | None = request.content or None
    if method != request.method:
        content = None
        for name in ("content-length", "content-type", "transfer-encoding"):
            headers.pop(name, None)
    old, new = request.url, url
    if (old.scheme, old.host, old.port) != (new.scheme, new.host, new.port):
        headers.pop("authorization", None)  # credentials are for the origin they were set for
        headers.pop("cookie", None)
    return httpx.Request(
        method, url, headers=headers, content=content, extensions={"timeout": timeouts(request)}
    )


async def read_capped(response: httpx.Response, cap: int) -> bytes:
    """The decoded body, refused as soon as it grows past `cap` bytes."""
    declared = response.headers.get("content-length", "")
    too_large = declared.isdigit() and int(declared) > cap
    received = 0
    chunks: list[bytes] = []
    if not too_large:
        async for chunk in response.aiter_bytes():
            received += len(chunk)
            if received > cap:
                too_large = True
                break
            chunks.append(chunk)
    if too_large:
        raise step_error(
            f"response from {response.url.host} is larger than {cap} bytes "
            "(TURNOUT_HTTP_MAX_RESPONSE_BYTES)",
            code="http_response_too_large",
            retryable=False,
        )
    return b"".join(chunks)


async def exchange(
    client: httpx.AsyncClient,
    request: httpx.Request,
    guard: AddressGuard,
    *,
    follow: bool,
    cap: int,
    first_vetted: bool = False,
) -> tuple[httpx.Response, bytes]:
    """Send, vetting each hop's address, and return the final response and its body."""
    hops = 0
    while True:
        url = request.url
        if hops or not first_vetted:
            await guard.vet(url.host, url.port or DEFAULT_PORTS[url.scheme])
        hook = guard.connect_check(url.host)
        if hook is not None:
            request.extensions["trace"] = hook
        response = await client.send(request, stream=True, follow_redirects=False)
        usage.add_bytes(sent=len(request.content or b""))
        try:
            location = response.headers.get("location")
            if not (follow and response.status_code in REDIRECT_STATUSES and location):
                raw = await read_capped(response, cap)
                usage.add_bytes(received=len(raw))
                return response, raw
            if hops == MAX_REDIRECTS:
                raise step_error(
                    f"more than {MAX_REDIRECTS} redirects", code="http_redirect", retryable=False
                )
            hops += 1
            request = redirect_request(request, response)
        finally:
            await response.aclose()


def decode_body(response: httpx.Response, raw: bytes) -> Any:
    ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json" or ctype.endswith("+json"):
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            pass  # a mislabelled body still reaches the workflow, as text
    try:
        return raw.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        return raw.decode("utf-8", errors="replace")


def target(url: httpx.URL) -> str:
    """The breaker's key: `host:port`, the port always written (`[v6]:port` for IPv6)."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{host}:{url.port or DEFAULT_PORTS[url.scheme]}"


def breaker_policy(ctx: NodeContext, params: HttpParams) -> CircuitPolicy | None:
    if params.circuit_breaker is False or ctx.services.circuits is None:
        return None
    default = default_policy(ctx.services.settings)
    if isinstance(params.circuit_breaker, CircuitOverride):
        return params.circuit_breaker.policy(default)
    return default


async def admit(
    ctx: NodeContext, params: HttpParams, request: httpx.Request, guard: AddressGuard, ms: int
) -> Ticket | None:
    """The breaker's ticket for this call (None: no breaker). The address guard runs first,
    so a refused host never gets a breaker: `GET /circuits` cannot tell about private hosts."""
    policy = breaker_policy(ctx, params)
    if policy is None or ctx.services.circuits is None:
        return None
    url = request.url
    circuits, name = ctx.services.circuits, target(url)
    try:
        await guard.vet(url.host, url.port or DEFAULT_PORTS[url.scheme])
    except StepError as exc:
        if exc.code == "http_network":  # the name does not resolve: the target fails
            ticket = await circuits.admit(ctx.namespace, name, policy, ms)
            if ticket is not None:
                await ticket.report("failure")
        raise
    return await circuits.admit(ctx.namespace, name, policy, ms)


def outcome_of(exc: BaseException | None) -> Outcome:
    """What the call says about the target. A failure: a timeout, a connection error, a 5xx
    not listed in `acceptStatus`. Any other answer (2xx, 4xx, an accepted status) is a
    success: a 4xx is the caller's problem, not the target's. An attempt cut short
    (cancelled, refused by the address guard, a bad redirect, a body too large) says nothing."""
    if exc is None:
        return "success"
    code = getattr(exc, "code", None)
    if code in ("http_timeout", "http_network"):
        return "failure"
    if code == "http_status":
        return "failure" if getattr(exc, "status", 0) >= 500 else "success"
    return "abandoned"


def check_status(response: httpx.Response, body: Any, accept: list[int], name: str) -> None:
    status = response.status_code
    if 200 <= status < 300 or status in accept:
        return
    text = body if isinstance(body, str) else json.dumps(body)
    snippet = f": {text[:200]}" if text else ""
    error = step_error(
        f"{name} answered {status} {response.reason_phrase}{snippet}",
        code="http_status",
        retryable=status >= 500 or status in RETRYABLE_STATUSES,
    )
    error.status = status  # type: ignore[attr-defined]  # read by the circuit breaker
    raise error


class HttpRequestNode(BaseNode):
    """Output `{status, headers, body}`; non-2xx fails unless listed in `acceptStatus`."""

    name: ClassVar[str] = "http.request"
    params_model: ClassVar[type[BaseModel]] = HttpParams
    external: ClassVar[bool] = True
    default_estimate_ms: ClassVar[float] = 500.0

    async def run(self, ctx: NodeContext, params: HttpParams) -> Any:
        settings = ctx.services.settings
        timeout_ms = params.timeout or settings.http_default_timeout_ms
        guard = AddressGuard(
            allow_private=settings.http_allow_private, allowlist=settings.http_allowlist
        )
        request = build_request(ctx, params, timeout_ms)
        ticket = await admit(ctx, params, request, guard, timeout_ms)
        if ticket is None:
            return await self._call(ctx, params, request, guard, timeout_ms, first_vetted=False)
        error: BaseException | None = None
        try:
            return await self._call(ctx, params, request, guard, timeout_ms, first_vetted=True)
        except BaseException as exc:  # re-raised: only its meaning for the breaker is taken
            error = exc
            raise
        finally:
            await ticket.report(outcome_of(error))

    async def _call(
        self,
        ctx: NodeContext,
        params: HttpParams,
        request: httpx.Request,
        guard: AddressGuard,
        timeout_ms: int,
        *,
        first_vetted: bool,
    ) -> Any:
        settings = ctx.services.settings
        name = label(params.method, request.url)
        try:
            # httpx timeouts are per operation; this bounds the whole call, redirects included.
            async with asyncio.timeout(timeout_ms / 1000):
                response, raw = await exchange(
                    ctx.services.http,
                    request,
                    guard,
                    follow=params.follow_redirects,
                    cap=settings.http_max_response_bytes,
                    first_vetted=first_vetted,
                )
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise step_error(
                f"{name} timed out after {timeout_ms} ms", code="http_timeout", retryable=True
            ) from exc
        except httpx.TransportError as exc:
            raise step_error(
                f"{name} failed: {type(exc).__name__}: {exc}", code="http_network", retryable=True
            ) from exc
        except httpx.HTTPError as exc:  # e.g. a body that fails to decompress
            raise step_error(
                f"{name} failed: {type(exc).__name__}: {exc}", code="http_error", retryable=False
            ) from exc
        body = decode_body(response, raw)
        check_status(response, body, params.accept_status, name)
        headers = {key.lower(): value for key, value in response.headers.items()}
        return {"status": response.status_code, "headers": headers, "body": body}
