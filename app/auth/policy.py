"""Which scope each request needs, as data: the method and path decide (pure)."""

from __future__ import annotations

import re

# Paths anyone may reach, even with auth on: liveness, the API's own docs, the login page and
# the dashboard's static assets (none of them holds data).
OPEN_PATHS = frozenset({"/healthz", "/docs", "/redoc", "/openapi.json", "/ui/login"})
OPEN_PREFIXES = ("/static/", "/ui/static/")

CONTROL_VERBS = re.compile(r"^(/api/workflow)?/execution/[^/]+/(pause|resume|cancel|retry|input)$")
SEED_CANCEL = re.compile(r"^(/api/workflow)?/execution/[^/]+$")
RUN_PATHS = re.compile(r"^(/api/workflow/run|/workflow/runs?|/workflows/[^/]+/run|/events)$")
ADMIN_PREFIXES = ("/keys", "/audit", "/secrets", "/schedules", "/ui/audit", "/ui/schedules")

# Methods that change nothing: the browser session needs no CSRF token for them.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def required_scope(method: str, path: str, open_paths: frozenset[str] = frozenset()) -> str | None:
    """The scope a request needs, or None when the path is open to anyone."""
    if path in OPEN_PATHS or path in open_paths or path.startswith(OPEN_PREFIXES):
        return None
    if path.startswith(ADMIN_PREFIXES):
        return "admin"
    if method in SAFE_METHODS or path == "/ui/logout":
        return "read"
    if RUN_PATHS.match(path):
        return "run"
    if CONTROL_VERBS.match(path) or (method == "DELETE" and SEED_CANCEL.match(path)):
        return "control"
    # Everything else that writes: the registry (register, delete) and whatever comes later.
    return "admin"


CONTROL_TARGET = re.compile(
    r"^(?:/api/workflow)?/execution/(?P<id>[^/]+)(?:/(?P<verb>pause|resume|cancel|retry|input))?$"
)
WORKFLOW_TARGET = re.compile(r"^/workflows(?:/(?P<name>[^/]+))?$")
CIRCUIT_RESET = re.compile(r"^/circuits/(?P<host>[^/]+)/reset$")


def audit_action(method: str, path: str) -> tuple[str, str] | None:
    """What an audited request did and to what: `("execution.cancel", "execution/<id>")`.

    Audited: every control verb and human input, registry changes, key, schedule and
    subscription changes (and redeliveries), circuit breaker resets."""
    if method in SAFE_METHODS:
        return None
    control = CONTROL_TARGET.match(path)
    if control is not None:
        verb = control["verb"] or ("cancel" if method == "DELETE" else None)
        return (f"execution.{verb}", f"execution/{control['id']}") if verb else None
    workflow = WORKFLOW_TARGET.match(path)
    if workflow is not None:
        if method == "POST" and workflow["name"] is None:
            return "workflow.register", "workflow"
        if method == "DELETE" and workflow["name"]:
            return "workflow.delete", f"workflow/{workflow['name']}"
        return None
    circuit = CIRCUIT_RESET.match(path)
    if circuit is not None and method == "POST":
        return "circuit.reset", f"circuit/{circuit['host']}"
    if path.startswith("/subscriptions") and path.endswith("/redeliver"):
        return "subscription.redeliver", path.lstrip("/").removesuffix("/redeliver")
    for prefix in ("/keys", "/schedules", "/secrets", "/subscriptions"):
        if path.startswith(prefix):
            kind = prefix[1:-1]
            return f"{kind}.{method.lower()}", path.lstrip("/")
    return None
