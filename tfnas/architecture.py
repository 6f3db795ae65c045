"""`Architecture`: the hyperparameter values of a space, as plain JSON.

The `{name: value}` dict that KerasTuner stores in every trial is the architecture
encoding. `Architecture` adds strict validation against the space (every choice the build
asks for must have a value, every value must be one of its candidates, no value may be
left unused), JSON in and out (no pickle, no eval), and the model and its costs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import keras
import keras_tuner

from tfnas import cost

FORMAT = "tfnas.architecture"
VERSION = 1
_JSON_SCALARS = (str, int, float, bool)


class _StrictHyperParameters(keras_tuner.HyperParameters):
    """Hyperparameters that refuse missing or unknown values instead of using defaults."""

    def _register(self, hyperparameter, overwrite=False):
        name = hyperparameter.name
        if self._conditions_are_active(hyperparameter.conditions):
            if name not in self.values:
                raise ValueError(
                    f"The architecture is missing the choice {name!r}. Received values for: "
                    f"{sorted(self.values)}"
                )
            _check_value(hyperparameter, self.values[name])
        return super()._register(hyperparameter, overwrite=False)


def _check_value(hyperparameter, value) -> None:
    name = hyperparameter.name
    if isinstance(hyperparameter, keras_tuner.engine.hyperparameters.Choice):
        values = list(hyperparameter.values)
        if value not in values or isinstance(value, bool) != isinstance(values[0], bool):
            raise ValueError(
                f"Unknown operation/value for choice {name!r}. Received: {value!r}; "
                f"expected one of {list(hyperparameter.values)}."
            )
    elif isinstance(hyperparameter, keras_tuner.engine.hyperparameters.Boolean):
        if not isinstance(value, bool):
            raise ValueError(f"Choice {name!r} is a Boolean. Received: {value!r}")
    elif isinstance(hyperparameter, keras_tuner.engine.hyperparameters.Fixed):
        if value != hyperparameter.value:
            raise ValueError(
                f"Choice {name!r} is fixed to {hyperparameter.value!r}. Received: {value!r}"
            )
    elif hasattr(hyperparameter, "min_value"):
        low, high = hyperparameter.min_value, hyperparameter.max_value
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not low <= value <= high
        ):
            raise ValueError(f"Value of {name!r} must be in [{low}, {high}]. Received: {value!r}")


def _build_fn(hypermodel) -> Callable[[keras_tuner.HyperParameters], Any]:
    if isinstance(hypermodel, keras_tuner.HyperModel):
        return hypermodel.build
    if callable(hypermodel):
        return hypermodel
    raise TypeError(
        "hypermodel must be a keras_tuner.HyperModel or a build(hp) function. "
        f"Received: {hypermodel!r}"
    )


def _check_values(values: Any) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise ValueError(f"Architecture values must be a dict. Received: {values!r}")
    for name, value in values.items():
        if not isinstance(name, str) or not isinstance(value, _JSON_SCALARS):
            raise ValueError(
                "Architecture values map names to str, int, float or bool. "
                f"Received: {name!r}: {value!r}"
            )
    return dict(values)


class Architecture:
    """One point of a search space: the hyperparameter values of its choices.

    Args:
        hypermodel: the space (a `keras_tuner.HyperModel` or a `build(hp)` function).
        values: `{hyperparameter name: value}`, as in `trial.hyperparameters.values`.
        validate: build once now to check the values against the space (missing choice,
            unknown operation, unused value).

    Example:

    ```python
    space = tfnas.spaces.NasBench201Space((8, 8, 1), 10, channels=8, cells_per_stage=1)
    arch = tfnas.Architecture(space, best_hp.values)
    open("architecture.json", "w").write(arch.to_json())
    model = tfnas.Architecture.from_json(space, open("architecture.json").read()).build()
    ```
    """

    def __init__(self, hypermodel, values: Mapping[str, Any], *, validate: bool = True):
        self._build = _build_fn(hypermodel)
        self.values = _check_values(values)
        self._model = None
        if validate:
            self._model = self.build()

    @classmethod
    def from_hyperparameters(cls, hypermodel, hp: keras_tuner.HyperParameters, **kwargs):
        """The architecture of a trial: only the active hyperparameters."""
        active = {name: value for name, value in hp.values.items() if hp.is_active(name)}
        return cls(hypermodel, active, **kwargs)

    def hyperparameters(self) -> keras_tuner.HyperParameters:
        """Strict hyperparameters holding these values (a build with them is validated)."""
        hp = _StrictHyperParameters()
        hp.values = dict(self.values)
        return hp

    def build(self) -> keras.Model:
        """Builds the fixed-mode model (standard Keras layers only), freshly initialized."""
        hp = self.hyperparameters()
        model = self._build(hp)
        unused = sorted(set(self.values) - {p.name for p in hp.space if hp.is_active(p)})
        if unused:
            raise ValueError(
                f"The architecture names choices the space does not have (or that are inactive "
                f"here): {unused}. Space choices: {sorted(p.name for p in hp.space)}"
            )
        return model

    def _costs_model(self) -> keras.Model:
        if self._model is None:
            self._model = self.build()
        return self._model

    def count_params(self) -> int:
        """All weights of the built model."""
        return cost.count_params(self._costs_model())

    def count_flops(self) -> int:
        """Multiply-adds of one forward pass (see `tfnas.cost.count_flops`)."""
        return cost.count_flops(self._costs_model())

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "values": dict(sorted(self.values.items()))}

    def to_json(self, indent: int | None = 2) -> str:
        """Plain JSON: `{"format": "tfnas.architecture", "version": 1, "values": {...}}`."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, hypermodel, text: str, **kwargs) -> Architecture:
        """Parses `to_json` output (or a bare `{name: value}` object) and validates it."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError) as error:
            shown = text if len(str(text)) <= 80 else str(text)[:77] + "..."
            raise ValueError(f"Invalid architecture JSON ({error}). Received: {shown!r}") from None
        if isinstance(data, dict) and data.get("format") == FORMAT:
            if data.get("version") != VERSION:
                raise ValueError(
                    f"Unsupported architecture version. Received: version={data.get('version')!r}; "
                    f"expected {VERSION}."
                )
            data = data.get("values")
        return cls(hypermodel, data, **kwargs)

    def __eq__(self, other):
        return isinstance(other, Architecture) and self.values == other.values

    def __hash__(self):
        return hash(json.dumps(self.values, sort_keys=True))

    def __repr__(self):
        return f"Architecture({self.values!r})"
