"""Choice points: where a hypermodel leaves a decision to the search.

Each choice point registers its decision as a KerasTuner hyperparameter, so the
`{name: value}` dict of a trial is the architecture. With ordinary
`keras_tuner.HyperParameters` (fixed mode) only the chosen standard Keras layers are built;
with `SupernetHyperParameters` (supernet mode) every candidate is built into a
`LayerChoice` / `InputChoice` and mixed by the strategy's rule.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import random
import re
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import keras_tuner
import numpy as np

from tfnas.blocks.supernet import (
    REDUCTIONS,
    InputChoice,
    LayerChoice,
    _check_same_output_shapes,
    mixing_rule_of,
    reduce_tensors,
)

LayerFactory = Callable[[], keras.layers.Layer]


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"A choice name must be a non-empty string. Received: name={name!r}")


def _check_registered_values(hp: keras_tuner.HyperParameters, name: str, values: list) -> None:
    """The same name must always mean the same candidates."""
    for existing in hp.space:
        if existing.name == name and hasattr(existing, "values"):
            if list(existing.values) != list(values):
                raise ValueError(
                    f"The choice {name!r} is registered twice with different candidates: "
                    f"first {list(existing.values)}, now {list(values)}. Give each distinct "
                    "choice its own name; reuse a name only for one shared decision."
                )


def _make_layer(name: str, key: str, factory: LayerFactory) -> keras.layers.Layer:
    layer = factory()
    if not isinstance(layer, keras.layers.Layer):
        raise TypeError(
            f"Candidate {key!r} of choice {name!r} must return a keras.layers.Layer when "
            f"called. Received: {layer!r} of type {type(layer).__name__}"
        )
    return layer


def _check_candidates(name: str, candidates: Any) -> list[str]:
    if not isinstance(candidates, Mapping):
        raise TypeError(
            f"candidates of choice {name!r} must be a dict of name -> layer factory. "
            f"Received: candidates={candidates!r}"
        )
    if not candidates:
        raise ValueError(f"Choice {name!r} needs at least one candidate. Received: candidates={{}}")
    for key, factory in candidates.items():
        if not isinstance(key, str) or not key:
            raise ValueError(
                f"Candidate names of choice {name!r} must be non-empty strings. Received: {key!r}"
            )
        if isinstance(factory, keras.layers.Layer):
            # A layer is callable too, but calling it without inputs fails deep in Keras.
            raise TypeError(
                f"Candidate {key!r} of choice {name!r} must be a factory that returns a new "
                f"layer, not a layer instance: each build (and each supernet candidate) needs "
                f"its own weights. Pass a factory such as `lambda: keras.layers.Conv2D(...)`. "
                f"Received: {factory!r}"
            )
        if not callable(factory):
            raise TypeError(
                f"Candidate {key!r} of choice {name!r} must be a callable returning a Keras "
                f"layer (e.g. `lambda: keras.layers.Conv2D(16, 3)`). Received: {factory!r}"
            )
    return list(candidates)


def _inactive_error(name: str) -> ValueError:
    return ValueError(
        f"Choice {name!r} was built inside a conditional scope whose condition does not hold "
        "for this architecture. Build it only when the condition holds (as `input_choice` "
        "and `repeat` do)."
    )


def _shape_key(shape) -> str:
    return re.sub(r"\s+", "", str(tuple(shape)))


class _FixedChoice:
    """Fixed-mode result of `layer_choice`: applies the chosen layer to its input.

    Calling it checks that all candidates agree on the output shape, so a space that could
    not form a supernet fails at the first build, not in a later weight-sharing search. The
    check is symbolic but builds every candidate, so it runs once per choice name, input
    shape and candidates (see `_checked_key`): a later build with other candidates under the
    same name is checked again.
    """

    def __init__(self, name: str, key: str, layer, candidates: Mapping[str, LayerFactory]):
        self.name = name
        self.value = key
        self.layer = layer
        self._candidates = candidates

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, keras.KerasTensor):
            checked_key = _checked_key(self.name, inputs.shape, self._candidates, self._layers)
            if checked_key is None or checked_key not in _CHECKED_SHAPES:
                shapes = {
                    key: layer.compute_output_spec(inputs).shape
                    for key, layer in self._layers().items()
                }
                _check_same_output_shapes(self.name, shapes)
                if checked_key is not None:
                    _CHECKED_SHAPES.add(checked_key)
        return self.layer(inputs, *args, **kwargs)

    def _layers(self) -> dict[str, keras.layers.Layer]:
        """The chosen layer and a new instance of every other candidate.

        Python's `random` state is restored afterwards: Keras draws each new initializer's
        default seed from it, and these extra candidates are made only when this process
        has not checked the shapes yet, so without the restore a trial's initial weights
        would depend on what the process built before (the first trial after a resume, or
        of a KerasTuner worker, would differ from an uninterrupted search's).
        """
        state = random.getstate()
        try:
            return {
                key: self.layer if key == self.value else _make_layer(self.name, key, factory)
                for key, factory in self._candidates.items()
            }
        finally:
            random.setstate(state)


# The shape checks passed: (choice name, input shape, what the candidates are).
_CHECKED_SHAPES: set[tuple] = set()


class _Unknown(Exception):
    """A factory whose candidates cannot be told apart from another's without building."""


def _checked_key(name, shape, candidates, make_layers) -> tuple | None:
    """The key of a shape check in `_CHECKED_SHAPES`, None to check at every build.

    Candidates are identified by their factories (code, defaults and closure values, the
    globals they read taken as constant: no layer is created, and a build of a cell space
    has hundreds of candidates), else by the configs of new instances (layer names
    removed), else not at all.
    """
    try:
        what = tuple((key, _fingerprint(factory)) for key, factory in candidates.items())
    except _Unknown:
        try:
            configs = [
                (key, type(layer).__module__, type(layer).__qualname__, layer.get_config())
                for key, layer in make_layers().items()
            ]
        except NotImplementedError:  # A custom layer without get_config.
            return None
        what = json.dumps(_without_names(configs), default=repr)
    return name, _shape_key(shape), what


def _fingerprint(value, depth: int = 0):
    """A hashable value equal for factories that build the same layers, or `_Unknown`."""
    if depth > 8:
        raise _Unknown
    if value is None or isinstance(value, (bool, int, float, str, np.generic)):
        return type(value).__name__, value
    if isinstance(value, (tuple, list)):
        return type(value).__name__, tuple(_fingerprint(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return "dict", tuple((k, _fingerprint(v, depth + 1)) for k, v in value.items())
    if isinstance(value, (type, types.BuiltinFunctionType)):
        return "named", value.__module__, value.__qualname__
    if isinstance(value, functools.partial):
        parts = (value.func, value.args, value.keywords)
        return "partial", _fingerprint(parts, depth + 1)
    if isinstance(value, types.FunctionType):
        try:
            closure = [cell.cell_contents for cell in value.__closure__ or ()]
        except ValueError:  # An empty cell.
            raise _Unknown from None
        parts = (value.__defaults__, value.__kwdefaults__, closure)
        return "function", value.__code__, _fingerprint(parts, depth + 1)
    raise _Unknown


def _without_names(config):
    """`config` without its "name" keys, which differ between builds of the same layers."""
    if isinstance(config, dict):
        return {key: _without_names(value) for key, value in config.items() if key != "name"}
    if isinstance(config, (list, tuple)):
        return [_without_names(value) for value in config]
    return config


def layer_choice(
    hp: keras_tuner.HyperParameters,
    name: str,
    candidates: Mapping[str, LayerFactory],
    *,
    default: str | None = None,
    shared_factory: Callable[[list[str]], list[keras.layers.Layer]] | None = None,
):
    """A choice among named candidate layers.

    Args:
        hp: the trial's hyperparameters (fixed mode) or `SupernetHyperParameters`.
        name: the hyperparameter name. Calling again with the same name (e.g. in every
            cell) shares one decision; each call still builds its own weights.
        candidates: an ordered dict of candidate name -> zero-argument callable returning a
            fresh `keras.layers.Layer`. Every candidate must produce the same output shape.
        default: the candidate used before the search chooses (default: the first).
        shared_factory: optional, for supernets whose rule computes a choice from weights
            its candidates share (`MixingRule.shares_weights`, e.g. Single-Path NAS's
            super-kernel): called with the candidate names, returns one candidate layer per
            name, the candidates sharing their weights. Other rules build `candidates`.

    Returns:
        A callable to apply to a tensor. In fixed mode it applies only the chosen standard
        Keras layer (available as `.layer`); in supernet mode it is a `LayerChoice` layer.

    Example:

    ```python
    x = tfnas.blocks.layer_choice(hp, "op0", {
        "conv3x3": lambda: keras.layers.Conv2D(16, 3, padding="same"),
        "skip": lambda: keras.layers.Identity(),
    })(x)
    ```
    """
    _check_name(name)
    keys = _check_candidates(name, candidates)
    if default is not None and default not in keys:
        raise ValueError(
            f"default of choice {name!r} must be one of {keys}. Received: default={default!r}"
        )
    _check_registered_values(hp, name, keys)
    rule = mixing_rule_of(hp)
    if rule is None:
        key = hp.Choice(name, keys, default=default)
        if key is None:
            raise _inactive_error(name)
        return _FixedChoice(name, key, _make_layer(name, key, candidates[key]), candidates)
    hp.Choice(name, keys, default=default)
    if shared_factory is not None and rule.shares_weights:
        layers = list(shared_factory(keys))
    else:
        layers = [_make_layer(name, key, candidates[key]) for key in keys]
    return LayerChoice(name, layers, [{name: key} for key in keys], rule, name=_layer_name(name))


def _layer_name(choice_name: str) -> str:
    """A Keras-safe, unique layer name for a choice's supernet layer."""
    safe = re.sub(r"[^0-9A-Za-z_]", "_", choice_name)
    return f"choice_{safe}_{keras.backend.get_uid('tfnas_choice')}"


def _announce_scope(hp: keras_tuner.HyperParameters, name: str, values: list) -> None:
    """Opens, and leaves empty, the scope of a branch this build does not take.

    KerasTuner finds conditional choices by recording the scopes a build opens but does not
    activate (`hp.inactive_scopes`), then rebuilding with each of them active. Branches
    skipped in fixed mode must therefore still announce their scope.
    """
    with hp.conditional_scope(name, values):
        pass


def _subset_value(subset: Sequence[int]) -> str:
    return ",".join(str(i) for i in subset)


def input_choice(
    hp: keras_tuner.HyperParameters,
    name: str,
    inputs: Sequence[Any],
    n_chosen: int = 1,
    *,
    reduction: str = "sum",
):
    """Chooses `n_chosen` of `len(inputs)` inputs (the edges of a cell DAG) and reduces them.

    The decision is one hyperparameter whose values are the index subsets, written
    "0,2". An input may be a tensor or a zero-argument callable returning one; callables
    run inside `hp.conditional_scope(name, subsets containing it)`, so the choices they
    make (the operation on that edge) belong to the architecture only when the input is
    chosen, and in fixed mode the callables of unchosen inputs are never built.

    Args:
        hp: the trial's hyperparameters or `SupernetHyperParameters`.
        name: the hyperparameter name.
        inputs: candidate tensors or callables producing them.
        n_chosen: how many inputs to keep, 1 <= n_chosen <= len(inputs).
        reduction: "sum", "mean" or "concat" of the chosen inputs.

    Returns:
        The reduced tensor.
    """
    _check_name(name)
    if not isinstance(inputs, Sequence) or isinstance(inputs, str) or not inputs:
        raise ValueError(
            f"inputs of input choice {name!r} must be a non-empty list. Received: inputs={inputs!r}"
        )
    if not isinstance(n_chosen, int) or not 1 <= n_chosen <= len(inputs):
        raise ValueError(
            f"n_chosen of input choice {name!r} must be an int in [1, {len(inputs)}]. "
            f"Received: n_chosen={n_chosen!r}"
        )
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"Unknown reduction for input choice {name!r}. Received: reduction={reduction!r}; "
            f"expected one of {REDUCTIONS}."
        )
    subsets = list(itertools.combinations(range(len(inputs)), n_chosen))
    values = [_subset_value(subset) for subset in subsets]
    _check_registered_values(hp, name, values)
    chosen_value = hp.Choice(name, values)
    rule = mixing_rule_of(hp)

    def materialize(index: int):
        scope = [_subset_value(s) for s in subsets if index in s]
        with hp.conditional_scope(name, scope):
            candidate = inputs[index]
            return candidate() if callable(candidate) else candidate

    if rule is None:
        if chosen_value is None:
            raise _inactive_error(name)
        chosen = [int(i) for i in chosen_value.split(",")]
        tensors = [materialize(i) for i in chosen]
        for index in set(range(len(inputs))) - set(chosen):
            _announce_scope(hp, name, [_subset_value(s) for s in subsets if index in s])
        if reduction != "concat":
            _check_same_output_shapes(name, {str(i): t.shape for i, t in zip(chosen, tensors)})
        return reduce_tensors(tensors, reduction)
    tensors = [materialize(i) for i in range(len(inputs))]
    layer = InputChoice(
        name,
        subsets,
        [{name: value} for value in values],
        n_chosen,
        reduction,
        rule,
        name=_layer_name(name),
    )
    return layer(tensors)


def attribute_choice(
    hp: keras_tuner.HyperParameters,
    name: str,
    factory: Callable[..., keras.layers.Layer],
    *,
    shared_factory: Callable[[list[dict]], list[keras.layers.Layer]] | None = None,
    **attributes: Sequence[Any],
):
    """A layer whose integer (or other) attributes are searched: width, kernel, expansion.

    Each attribute given as a list becomes the hyperparameter `f"{name}/{attribute}"`;
    scalars are passed through unchanged.

    Args:
        hp: the trial's hyperparameters or `SupernetHyperParameters`.
        name: the prefix of the attribute hyperparameters.
        factory: called with one keyword per attribute, returns a fresh Keras layer.
        shared_factory: optional, for supernet mode: called with the list of attribute
            combinations (dicts), returns one candidate layer per combination, the
            candidates sharing their weights (e.g. `tfnas.blocks.shared.mbconv_views`).
            Without it each combination gets its own weights.
        **attributes: attribute name -> list of candidate values (or a fixed value).

    Returns:
        In fixed mode, the standard Keras layer the factory builds for the chosen values;
        in supernet mode a `LayerChoice` over every combination (candidates must then agree
        on their output shape).

    Example:

    ```python
    conv = tfnas.blocks.attribute_choice(
        hp, "conv1", lambda kernel_size: keras.layers.Conv2D(16, kernel_size, padding="same"),
        kernel_size=[3, 5, 7])
    x = conv(x)
    ```
    """
    _check_name(name)
    if not callable(factory):
        raise TypeError(f"factory of choice {name!r} must be callable. Received: {factory!r}")
    if not attributes:
        raise ValueError(f"Choice {name!r} needs at least one attribute. Received: none")
    searched = {}
    fixed = {}
    for attribute, values in attributes.items():
        if isinstance(values, (list, tuple)):
            if not values:
                raise ValueError(
                    f"Attribute {attribute!r} of choice {name!r} needs at least one value. "
                    f"Received: {attribute}={values!r}"
                )
            searched[attribute] = list(values)
        else:
            fixed[attribute] = values
    for attribute, values in searched.items():
        _check_registered_values(hp, f"{name}/{attribute}", values)
    chosen = {
        attribute: hp.Choice(f"{name}/{attribute}", values)
        for attribute, values in searched.items()
    }
    rule = mixing_rule_of(hp)
    if rule is None:
        if any(value is None for value in chosen.values()):
            raise _inactive_error(name)
        return _make_layer(name, str(chosen), lambda: factory(**fixed, **chosen))
    combos = [dict(zip(searched, combo)) for combo in itertools.product(*searched.values())]
    if shared_factory is not None:
        layers = list(shared_factory([{**fixed, **combo} for combo in combos]))
    else:
        layers = [
            _make_layer(name, str(combo), lambda c=combo: factory(**fixed, **c)) for combo in combos
        ]
    values = [{f"{name}/{a}": v for a, v in combo.items()} for combo in combos]
    return LayerChoice(name, layers, values, rule, name=_layer_name(name))


def repeat(
    hp: keras_tuner.HyperParameters,
    name: str,
    depths: Sequence[int],
    block: Callable[[int, Any], Any],
    inputs,
):
    """Stacks `block(i, x)` a searched number of times (a depth / repeat choice).

    Blocks beyond the smallest depth are built inside `hp.conditional_scope`, so the
    choices of an inactive block never appear in an architecture.

    Args:
        hp: the trial's hyperparameters or `SupernetHyperParameters`.
        name: the hyperparameter name of the depth.
        depths: candidate depths (ints >= 0).
        block: `block(index, tensor) -> tensor` builds block `index` on `tensor`. Blocks
            must keep the shape of their input for depths to be interchangeable, except
            the blocks below `min(depths)`.
        inputs: the input tensor.

    Returns:
        The output tensor. In supernet mode all `max(depths)` blocks are built and an
        `InputChoice` picks the output after the chosen depth.
    """
    _check_name(name)
    if (
        not isinstance(depths, Sequence)
        or not depths
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in depths)
        or len(set(depths)) != len(depths)
    ):
        raise ValueError(
            f"depths of {name!r} must be a non-empty list of distinct ints >= 0. "
            f"Received: depths={depths!r}"
        )
    depths = sorted(depths)
    _check_registered_values(hp, name, depths)
    depth = hp.Choice(name, depths)
    rule = mixing_rule_of(hp)
    if rule is None and depth is None:
        raise _inactive_error(name)
    built_depth = depth if rule is None else depths[-1]
    x = inputs
    outputs = {0: x}
    for index in range(built_depth):
        scope = (
            hp.conditional_scope(name, [d for d in depths if d > index])
            if index >= depths[0]
            else contextlib.nullcontext()
        )
        with scope:
            x = block(index, x)
        outputs[index + 1] = x
    if rule is None:
        for index in range(built_depth, depths[-1]):
            _announce_scope(hp, name, [d for d in depths if d > index])
        return x
    layer = InputChoice(
        name,
        [(i,) for i in range(len(depths))],
        [{name: d} for d in depths],
        1,
        "sum",
        rule,
        name=_layer_name(name),
    )
    return layer([outputs[d] for d in depths])
