"""The observability tests talk to a real uvicorn, like the API tests."""

from __future__ import annotations

from tests.api.conftest import api_settings, api_url, client

__all__ = ["api_settings", "api_url", "client"]
