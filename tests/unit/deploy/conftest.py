"""Fixtures of the deployment checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from deploy_checks import require


@pytest.fixture
def tool() -> Callable[[str], Path]:
    """Return a function that finds a checker or skips, saying how to install it."""
    return require
