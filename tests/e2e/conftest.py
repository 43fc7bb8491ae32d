"""End-to-end tests reuse the API tests' real uvicorn server and client."""

from tests.api.conftest import api_settings, api_url, client

__all__ = ["api_settings", "api_url", "client"]
