"""Authentication at the edge: who is asking (key or dashboard session), may they, how often.

A pure ASGI middleware, so streams are checked before they open and every route is covered
by one table (app/auth/policy.py) instead of a dependency on each route."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import time
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import errors
from app.api.errors import error_answer
from app.auth.keys import DEFAULT_NAMESPACE, SCOPES, Principal, check_name, hash_token
from app.auth.policy import SAFE_METHODS, audit_action, required_scope
from app.config import Settings
from app.store.audit import AuditEntry, AuditStore
from app.store.keys import KeyRecord, KeyStore

log = logging.getLogger(__name__)

SESSION_COOKIE = "turnout_session"
CSRF_COOKIE = "turnout_csrf"
CSRF_HEADER = "x-csrf-token"
NAMESPACE_HEADER = "x-turnout-namespace"
# A key made with `turnout keys create` turns auth on within this long (no query per request).
NO_KEYS_TTL_S = 1.0


class Authenticator:
    """Sets `request.state.principal`, or answers 401/403/429 itself."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        probes = {"/readyz": settings.open_readyz, "/metrics": settings.open_metrics}
        self.open_paths = frozenset(p for p, is_open in probes.items() if is_open)
        self.auth_seen = settings.auth == "required"
        self.no_keys_until = 0.0  # "no key yet" is asked again after NO_KEYS_TTL_S
        # The check in flight: the requests that find it due share its answer (or error).
        self._asking: asyncio.Future[None] | None = None
        self.limiter: MovingWindowRateLimiter | None = None
        self.limit: RateLimitItemPerSecond | None = None
        if settings.rate_limit_per_s > 0:
            # A moving window of `burst` requests over burst/rate seconds: bursts up to
            # `burst`, and `rate` per second on average.
            window = max(1, math.ceil(settings.rate_limit_burst / settings.rate_limit_per_s))
            self.limit = RateLimitItemPerSecond(settings.rate_limit_burst, window)
            storage: Storage = (
                RedisStorage(
                    "async+" + settings.redis_url,
                    implementation="redispy",
                    key_prefix=f"{settings.key_prefix}:ratelimit",
                )
                if settings.redis_url
                else MemoryStorage()
            )
            self.limiter = MovingWindowRateLimiter(storage)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        runtime = getattr(scope["app"].state, "runtime", None)
        try:
            if self.settings.auth == "off" or runtime is None:  # not started: the app answers
                principal = _anonymous(scope)
            else:
                principal = await self._principal(scope, KeyStore(runtime.repo.engine))
        except errors.TurnoutError as exc:
            if isinstance(exc, errors.Unauthorized) and _wants_page(scope):
                response: Any = RedirectResponse(f"/ui/login?next={scope['path']}", 303)
            else:
                response = error_answer(exc)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        audited = audit_action(scope["method"], scope["path"])
        if audited is None or runtime is None:
            await self.app(scope, receive, send)
            return
        answer = Answer(send)
        try:
            await self.app(scope, receive, answer.send)
            if answer.status < 400:
                await self._audit(runtime, scope, principal, audited, answer)
        finally:  # the answer ends once its audit row is written: a read after it sees it
            await answer.release()

    async def _audit(
        self,
        runtime: Any,
        scope: Scope,
        principal: Principal,
        audited: tuple[str, str],
        answer: Answer,
    ) -> None:
        action, target = audited
        details: dict[str, Any] = {"status": answer.status}
        if action == "workflow.register":
            body = answer.json()
            target = f"workflow/{body.get('name')}@{body.get('version')}"
        elif action == "schedule.post":
            target = f"schedules/{answer.json().get('id')}"
        elif action == "subscription.post" and target == "subscriptions":
            target = f"subscriptions/{answer.json().get('id')}"
        client = scope.get("client")
        entry = AuditEntry(
            principal.name if principal.authenticated else (principal.label or principal.name),
            principal.namespace,
            action,
            target,
            client[0] if client else None,
            principal.label if principal.authenticated else None,
            details,
        )
        try:
            await AuditStore(runtime.repo.engine).append(entry)
        except Exception:  # the change is made: a lost audit row is logged, not an error
            log.exception("cannot write the audit row", extra={"action": action, "target": target})

    async def _principal(self, scope: Scope, keys: KeyStore) -> Principal:
        method, path = scope["method"], scope["path"]
        needed = required_scope(method, path, self.open_paths)
        if needed is None:  # open paths never fail, whatever credentials come with them
            return _anonymous(scope, authenticated=False)
        if not self.auth_seen and time.monotonic() >= self.no_keys_until:
            if self._asking is None or self._asking.done():
                self._asking = asyncio.ensure_future(self._ask(keys))
                self._asking.add_done_callback(_retrieved)
            await asyncio.shield(self._asking)
        if not self.auth_seen:
            return _anonymous(scope)
        headers = headers_of(scope)
        record = await self._identify(headers, method, keys)
        if record is None:
            raise errors.Unauthorized()
        principal = _principal_of(record, scope, headers)
        if not principal.allows(needed):
            raise errors.Forbidden(
                f"this key has scopes {', '.join(record.scopes)}; this request needs '{needed}'",
                {"loc": ["scope"], "code": "forbidden", "required": needed},
            )
        await self._count(record)
        return principal

    async def _ask(self, keys: KeyStore) -> None:
        self.auth_seen = await self._any_key(keys)
        self.no_keys_until = time.monotonic() + NO_KEYS_TTL_S

    @staticmethod
    async def _any_key(keys: KeyStore) -> bool:
        """Whether auth is on. A schema without the keys table cannot hold a key (the routes
        answer `schema_not_migrated`); a database that cannot answer opens nothing: a 503."""
        try:
            return await keys.any_exist()
        except Exception as exc:
            if "api_keys" in str(exc):
                return False
            raise errors.ServiceUnavailable() from None

    async def _identify(
        self, headers: dict[str, str], method: str, keys: KeyStore
    ) -> KeyRecord | None:
        auth = headers.get("authorization", "")
        if auth:
            kind, _, token = auth.partition(" ")
            if kind.lower() != "bearer" or not token.strip():
                raise errors.Unauthorized("the Authorization header must be 'Bearer <key>'")
            record = await keys.find_live(hash_token(token.strip()))
            if record is None:
                raise errors.Unauthorized("this API key is not valid (unknown or revoked)")
            return record
        session = cookies_of(headers).get(SESSION_COOKIE)
        if not session:
            return None
        found = await keys.find_session(hash_token(session))
        if found is None:
            raise errors.Unauthorized("the dashboard session has ended; log in again")
        record, csrf = found
        if method not in SAFE_METHODS and not hmac.compare_digest(
            headers.get(CSRF_HEADER, ""), csrf
        ):
            raise errors.Forbidden(
                "a change from the dashboard needs its X-CSRF-Token header",
                {"loc": ["header", "X-CSRF-Token"], "code": "csrf_failed"},
            )
        return record

    async def _count(self, record: KeyRecord) -> None:
        if self.limiter is None or self.limit is None:
            return
        if await self.limiter.hit(self.limit, "key", record.name):
            return
        stats = await self.limiter.get_window_stats(self.limit, "key", record.name)
        raise errors.RateLimited(max(1, math.ceil(stats.reset_time - time.time())))


def headers_of(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def cookies_of(headers: dict[str, str]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header is no session
        return {}
    return {k: m.value for k, m in jar.items()}


def _wants_page(scope: Scope) -> bool:
    path: str = scope["path"]
    return scope["method"] == "GET" and (path == "/" or path.startswith("/ui"))


def _label(headers: dict[str, str]) -> str | None:
    label = headers.get("x-actor", "").strip()[:200]
    return label or None


def _anonymous(scope: Scope, *, authenticated: bool = True) -> Principal:
    """Auth off: everyone may do everything in `default`, as before keys existed."""
    headers = headers_of(scope)
    return Principal(
        "api",
        _chosen_namespace(scope, headers) or DEFAULT_NAMESPACE,
        frozenset(SCOPES) if authenticated else frozenset(),
        label=_label(headers),
        authenticated=False,
    )


def _principal_of(record: KeyRecord, scope: Scope, headers: dict[str, str]) -> Principal:
    namespace = record.namespace
    if "admin" in record.scopes:
        namespace = _chosen_namespace(scope, headers) or namespace
    return Principal(
        record.name, namespace, frozenset(record.scopes), label=_label(headers), authenticated=True
    )


def _chosen_namespace(scope: Scope, headers: dict[str, str]) -> str | None:
    """An admin's (or, with auth off, anyone's) choice: X-Turnout-Namespace or ?namespace=."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("namespace")
    chosen = headers.get(NAMESPACE_HEADER) or (values[0] if values else None)
    if not chosen:
        return None
    try:
        return check_name("namespace", chosen)
    except ValueError as exc:
        raise errors.RequestInvalid(str(exc)) from None


class Answer:
    """Passes a response through, keeping its status and the start of its body."""

    LIMIT = 64 * 1024

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 500
        self.body = b""
        self._last: Message | None = None

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
        elif message["type"] == "http.response.body":
            if len(self.body) < self.LIMIT:
                self.body += message.get("body", b"")
            if not message.get("more_body", False):
                self._last = message  # held back until the audit row is written
                return
        await self._send(message)

    async def release(self) -> None:
        """Send the answer's last part (held back by `send`), once."""
        last, self._last = self._last, None
        if last is not None:
            await self._send(last)

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


def _retrieved(asked: asyncio.Future[None]) -> None:
    """Its error is each waiter's (a 503); retrieved here when none waits any more."""
    if not asked.cancelled():
        asked.exception()
