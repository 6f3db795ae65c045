"""The search algorithms' cores: explicit JSON state and numpy, no TensorFlow or Keras.

Each core is `propose` / `observe` (or `init` / `update`) over a state that `get_state()`
returns as JSON, random state included; the KerasTuner oracles in `tfnas.tuners` adapt
them. Importing a module here does not import TensorFlow.
"""
