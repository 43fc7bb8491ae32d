"""A test's missing prerequisite (a server binary, a browser): a skip on a developer's
machine, a failure in CI, where a skipped chaos or browser test would pass unseen."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing(what: str, fix: str) -> NoReturn:
    """Skip the test because `what` is missing, or fail it when CI is set."""
    message = f"{what} is missing ({fix})"
    if in_ci():
        pytest.fail(f"{message}; with CI=true that is a failure, not a skip", pytrace=False)
    pytest.skip(message)
