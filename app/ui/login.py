"""The dashboard's login (a key in a form, never in a URL, becomes an HttpOnly session cookie)
and its audit log page.

Changes made from the dashboard carry the session's CSRF token in `X-CSRF-Token`; the token is
also in a readable cookie (double submit), checked against the session by app.api.auth."""

from __future__ import annotations

import html
import secrets
from datetime import timedelta
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.api.auth import CSRF_COOKIE, SESSION_COOKIE, cookies_of, headers_of
from app.api.deps import RepoDep, SettingsDep
from app.auth.keys import hash_token
from app.store.audit import AuditFilter, AuditStore
from app.store.keys import KeyStore
from app.ui.pages import templates

router = APIRouter(prefix="/ui", include_in_schema=False)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Log in · Turnout</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/ui/static/dashboard.css"></head>
<body><main id="main" class="login">
<h1>Turnout</h1>
<form method="post" action="/ui/login">
<input type="hidden" name="next" value="{next}">
<label for="key">API key</label>
<input id="key" name="key" type="password" autocomplete="off" required autofocus>
<button type="submit">Log in</button>
<p role="alert" class="problem">{problem}</p>
</form></main></body></html>
"""


def _page(next_path: str, problem: str = "", status: int = 200) -> HTMLResponse:
    body = PAGE.format(next=html.escape(next_path), problem=html.escape(problem))
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _safe_next(value: str | None) -> str:
    """Only a path on this site (no `//host`, no scheme): no open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/ui/"
    return value


@router.get("/login", response_class=HTMLResponse)
async def login_page(next: str | None = None) -> HTMLResponse:
    return _page(_safe_next(next))


@router.post("/login", response_model=None)
async def login(request: Request, repo: RepoDep, settings: SettingsDep) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0].strip()
    next_path = _safe_next((form.get("next") or [""])[0])
    keys = KeyStore(repo.engine)
    record = await keys.find_live(hash_token(key)) if key else None
    if record is None:
        return _page(next_path, "This key is not valid (unknown or revoked).", 401)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    ttl = settings.session_ttl_s
    await keys.create_session(hash_token(token), record.id, csrf, timedelta(seconds=ttl))
    response = RedirectResponse(next_path, status_code=303)
    secure = settings.session_cookie_secure
    response.set_cookie(
        SESSION_COOKIE, token, max_age=ttl, httponly=True, samesite="lax", secure=secure
    )
    response.set_cookie(
        CSRF_COOKIE, csrf, max_age=ttl, httponly=False, samesite="lax", secure=secure
    )
    return response


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(
    request: Request,
    repo: RepoDep,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    cursor: int | None = None,
) -> HTMLResponse:
    """The audit log (admin keys only, by app/auth/policy.py)."""
    flt = AuditFilter(actor or None, action or None, target or None)
    items, next_cursor = await AuditStore(repo.engine).list(flt, limit=100, before_id=cursor)
    context = {"items": items, "next_cursor": next_cursor, "query": flt}
    return templates.TemplateResponse(request, "audit.html", context)


@router.post("/logout", response_model=None)
async def logout(request: Request, repo: RepoDep) -> Response:
    token = cookies_of(headers_of(request.scope)).get(SESSION_COOKIE)
    if token:
        await KeyStore(repo.engine).end_session(hash_token(token))
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return response
