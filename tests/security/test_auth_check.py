"""Whether auth is on is asked of the database once per interval, not once per request."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app import errors
from app.api.auth import Authenticator
from app.config import Settings
from app.store.database import make_engine
from app.store.keys import KeyStore


class CountingKeys(KeyStore):
    """The real store (real database), counting how often it is asked."""

    asked = 0

    async def any_exist(self) -> bool:
        type(self).asked += 1
        await asyncio.sleep(0.05)  # a slow answer: every request below arrives meanwhile
        return await super().any_exist()


async def _no_app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("not called")


async def test_concurrent_requests_share_one_check(settings: Settings, engine: AsyncEngine) -> None:
    auth = Authenticator(_no_app, settings)
    keys = CountingKeys(engine)
    scope = {"type": "http", "method": "GET", "path": "/executions", "headers": []}
    found = await asyncio.gather(*(auth._principal(scope, keys) for _ in range(20)))
    assert CountingKeys.asked == 1  # not twenty
    assert all(not p.authenticated for p in found)  # no key: open, as before keys existed


class UnreachableKeys(CountingKeys):
    asked = 0


async def test_a_failed_check_is_every_waiters_503_at_once(settings: Settings) -> None:
    auth = Authenticator(_no_app, settings)
    down = make_engine("postgresql+asyncpg://postgres@127.0.0.1:1/turnout")  # nothing listens
    keys = UnreachableKeys(down)
    scope = {"type": "http", "method": "GET", "path": "/executions", "headers": []}
    try:
        found = await asyncio.gather(
            *(auth._principal(scope, keys) for _ in range(20)), return_exceptions=True
        )
        assert all(isinstance(f, errors.ServiceUnavailable) for f in found)
        assert UnreachableKeys.asked == 1  # shared, not twenty in a row
        with pytest.raises(errors.ServiceUnavailable):  # the next request asks again
            await auth._principal(scope, keys)
        assert UnreachableKeys.asked == 2
    finally:
        await down.dispose()
