"""Shared test settings: quiet TensorFlow, one thread, deterministic seeds."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import sys

import pytest


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Drop Keras' global graph state between tests (only when a test imported TensorFlow)."""
    yield
    if "tensorflow" in sys.modules:
        sys.modules["tensorflow"].keras.backend.clear_session()
