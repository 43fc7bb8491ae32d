"""The dashboard's circuit breakers page: what `GET /circuits` answers, refreshed every 3 s,
with a reset button (the API's admin-only, audited `POST /circuits/{host}/reset`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.api.deps import CircuitsDep, get_namespace
from app.ui.pages import templates

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/circuits", response_class=HTMLResponse)
async def circuits_page(
    request: Request, circuits: CircuitsDep, part: bool = False
) -> HTMLResponse:
    views = await circuits.views(get_namespace(request))
    context = {
        "circuits": [v.to_dict() for v in views],
        "shared": circuits.store.shared,
        "default": circuits.default.to_dict(),
    }
    name = "_circuits.html" if part else "circuits.html"
    return templates.TemplateResponse(request, name, context)
