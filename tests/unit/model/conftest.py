"""Model directories for the scorer tests, trained once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_model import train_into


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory written once per session; copy it before changing it."""
    directory = tmp_path_factory.mktemp("model")
    train_into(directory, seed=11)
    return directory


@pytest.fixture
def model_dir(trained_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the session's model directory."""
    directory = tmp_path / "model"
    directory.mkdir()
    for path in trained_dir.iterdir():
        (directory / path.name).write_bytes(path.read_bytes())
    return directory
