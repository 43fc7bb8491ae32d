"""Composition tests talk to a real uvicorn server, as the API tests do."""

from tests.api.conftest import api_settings, api_url, client

__all__ = ["api_settings", "api_url", "client"]
