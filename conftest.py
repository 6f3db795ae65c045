"""Test-wide settings: quiet TensorFlow, the TensorFlow backend, and deterministic seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# KerasTuner prints every trial; tests read results, not logs.
os.environ.setdefault("KERASTUNER_VERBOSE", "0")

import gc  # noqa: E402
import itertools  # noqa: E402

import pytest  # noqa: E402

# A full garbage collection costs ~0.14 s once TensorFlow is loaded (its heap is large):
# after every test that is ~2.5 minutes of a suite run. Python's own collector frees
# cycles anyway; a full collection every few tests keeps the workers' memory flat.
_TESTS = itertools.count(1)
_FULL_COLLECTION_EVERY = 20


@pytest.fixture(autouse=True)
def _seed_everything():
    import keras

    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session(free_memory=False)
    if next(_TESTS) % _FULL_COLLECTION_EVERY == 0:
        gc.collect()
