"""Shared test settings: quiet TensorFlow, one thread, deterministic seeds."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def repo_root(pytestconfig) -> Path:
    """The checkout's root (pytest's rootdir), for repository files that are not package data."""
    return Path(pytestconfig.rootpath)


@pytest.fixture(scope="session")
def shared_data(repo_root) -> Path:
    """The published phone measurements beside the checkout (``../shared/data``); skip without them."""
    folder = repo_root.parent / "shared" / "data"
    if not folder.is_dir():
        pytest.skip("shared/data is not beside this checkout")
    return folder


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Drop Keras' global graph state between tests (only when a test imported TensorFlow)."""
    yield
    if "tensorflow" in sys.modules:
        sys.modules["tensorflow"].keras.backend.clear_session()
