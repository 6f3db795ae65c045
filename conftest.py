"""Test-wide settings: quiet TensorFlow, the TensorFlow backend, and deterministic seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# KerasTuner prints every trial; tests read results, not logs.
os.environ.setdefault("KERASTUNER_VERBOSE", "0")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_everything():
    import keras

    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session()
