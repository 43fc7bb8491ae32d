"""Which scope each request needs, as data: the method and path decide (pure)."""

from __future__ import annotations

import re

# Paths anyone may reach, even with auth on: liveness, the API's own docs, the login page and
# the dashboard's static assets (none of them holds data).
OPEN_PATHS = frozenset({"/healthz", "/docs", "/redoc", "/openapi.json", "/ui/login"})
OPEN_PREFIXES = ("/static/", "/ui/static/")

CONTROL_VERBS = re.compile(r"^(/api/workflow)?/execution/[^/]+/(pause|resume|cancel|retry|input)$")
SEED_CANCEL = re.compile(r"^(/api/workflow)?/execution/[^/]+$")
RUN_PATHS = re.compile(r"^(/api/workflow/run|/workflow/run|/workflows/[^/]+/run)$")
ADMIN_PREFIXES = ("/keys", "/audit", "/secrets", "/schedules")

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
