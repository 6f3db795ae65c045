"""FBNet-style latency lookup tables: per-candidate latency, measured on the user's device.

FBNet (Wu et al. 2018, section 3.2) and ProxylessNAS (Cai et al. 2018, section 3.3) model a
network's latency as the sum of the latencies of its operators, each measured on the target
device in isolation:

    LAT(a) = sum_l LAT(op_l(a))

and, with architecture weights w_l (softmax, Gumbel-softmax or binary gates) over the
candidates of layer l, the expected latency sum_l sum_k w_lk LAT(op_lk), which is
differentiable in w.

Here every candidate of every `LayerChoice` of a space's supernet is exported to its
standard Keras form (`tfnas.blocks.shared.exportable`), wrapped in a one-operation model at
the exact input shape it sees in the network, converted to `.tflite` and timed by a runner
(`tfnas.latency.runners`). Operations are keyed by a signature (the layer's config with
layer names made canonical, plus the input shape), so identical blocks (all the stride-1
blocks of a stage) are measured once, and the table is stored as JSON together with the
fingerprint of the device and runtime (a table from another fingerprint is refused).

Deliberate addition to the papers: what the per-operator table does not cover (the stem, the
head, the interpreter's per-invoke overhead that every isolated measurement includes once
per operator) is a fitted term. A few whole random networks are measured end to end and

    LAT(a) ~ scale * sum_l t_l(a) + per_op_ms * n_ops(a) + fixed_ms

is fitted by least squares (t_l: the table's isolated latencies, n_ops: the number of table
operations the network runs). `predict` and `expected_latency` use the fitted per-candidate
latency `scale * t + per_op_ms` plus `fixed_ms`, so the gradient of `expected_latency` in a
candidate's weight is that candidate's fitted latency.

Example:

```python
runner = tfnas.latency.LocalRunner(runtime="interpreter")
table = tfnas.latency.build_table(space, runner, "table.json")
table.predict(architecture_values)               # milliseconds
table = tfnas.latency.LookupTable.load("table.json", runner=runner, space=space)
loss = ce + 0.1 * table.expected_latency({"stage1/block0": keras.ops.softmax(alpha)})
```
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import keras_tuner
import numpy as np

from tfnas import files, validation
from tfnas.latency import tflite
from tfnas.latency.runners import Runner

FORMAT = "tfnas.latency_table"
VERSION = 1


@dataclasses.dataclass
class Operation:
    """One candidate operation in isolation: a standard Keras layer at a fixed input shape.

    Attributes:
        signature: the key in the table (hash of the canonical layer config and input shape).
        input_shape: the input shape without the batch dimension.
        layer: the standard Keras layer (or nested model) the candidate exports to.
        description: where it first appears, e.g. "stage1/block0 kernel_size=3 expansion=6".
    """

    signature: str
    input_shape: tuple
    layer: keras.layers.Layer
    description: str

    def model(self) -> keras.Model:
        """A model of just this operation, batch 1 (as it is measured)."""
        inputs = keras.Input(self.input_shape, batch_size=1)
        return keras.Model(inputs, self.layer(inputs), name=f"op_{self.signature}")


def _canonical_names(config: Any) -> Any:
    """`config` with every layer name replaced by its order of appearance ("n0", "n1", ...).

    Layer names carry Keras's global counters ("conv2d_17"), which differ between builds of
    the same operation; functional configs refer to layers by these names.
    """
    names: dict[str, str] = {}

    def collect(value):
        if isinstance(value, dict):
            name = value.get("name")
            if isinstance(name, str) and name not in names:
                names[name] = f"n{len(names)}"
            for item in value.values():
                collect(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                collect(item)

    def rename(value):
        if isinstance(value, dict):
            return {key: rename(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [rename(item) for item in value]
        if isinstance(value, str):
            return names.get(value, value)
        return value

    collect(config)
    return rename(config)


def operation_signature(layer: keras.layers.Layer, input_shape: Sequence) -> str:
    """The table key of `layer` applied to inputs of `input_shape` (without batch).

    Two layers get the same signature when they compute the same operation (same class and
    config, names aside) on the same input shape.
    """
    config = _canonical_names(keras.saving.serialize_keras_object(layer))
    text = json.dumps(
        {"layer": config, "input_shape": [None if d is None else int(d) for d in input_shape]},
        sort_keys=True,
        default=repr,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _describe(choice_name: str, values: Mapping[str, Any]) -> str:
    parts = []
    for name, value in values.items():
        short = name[len(choice_name) + 1 :] if name.startswith(choice_name + "/") else name
        parts.append(f"{short}={value}" if short != choice_name else str(value))
    return f"{choice_name} {' '.join(parts)}"


def _build_fn(hypermodel) -> Callable:
    if isinstance(hypermodel, keras_tuner.HyperModel):
        return hypermodel.build
    if callable(hypermodel):
        return hypermodel
    raise TypeError(
        "space must be a keras_tuner.HyperModel or a build(hp) function. "
        f"Received: space of type {type(hypermodel).__name__}"
    )


def _hyperparameter_values(hp) -> list:
    return list(getattr(hp, "values", None) or [])


def space_operations(space) -> tuple[list[dict], dict[str, Operation], list]:
    """The choices of `space` and the operations they need, from its built supernet.

    Every `LayerChoice` of the supernet (whatever form the space takes: attribute choices per
    block or one choice over joint operations) contributes one entry per candidate.

    Args:
        space: a `keras_tuner.HyperModel` or `build(hp)` function built with tfnas choices.

    Returns:
        `(choices, operations, hyperparameters)`: `choices` is the table's layout (per
        `LayerChoice`: its name, its candidates' values and signatures, and the conditions
        under which it is active), `operations` maps signatures to `Operation`s, and
        `hyperparameters` is the space's `hp.space` (for sampling architectures).
    """
    from tfnas.blocks.rules.single_path import SinglePath
    from tfnas.blocks.shared import exportable
    from tfnas.blocks.supernet import LayerChoice, SupernetHyperParameters

    build = _build_fn(space)
    hp = SupernetHyperParameters(SinglePath())
    supernet = build(hp)
    by_name = {p.name: p for p in hp.space}
    choices, operations = [], {}
    layers = [
        layer
        for layer in supernet._flatten_layers(include_self=False)
        if isinstance(layer, LayerChoice)
    ]
    if not layers:
        raise ValueError(
            "The space has no layer choices, so a latency table has nothing to measure. "
            f"Received: space {getattr(space, 'name', None) or type(space).__name__!r}."
        )
    for choice in layers:
        input_shape = tuple(choice.built_input_shape[1:])
        conditions = []
        for decision in choice.decision_names:
            for condition in getattr(by_name.get(decision), "conditions", []):
                entry = {"name": condition.name, "values": list(condition.values)}
                if entry not in conditions:
                    conditions.append(entry)
        candidates = []
        for values, candidate in zip(choice.candidate_values, choice.candidates):
            layer = exportable(candidate)
            signature = operation_signature(layer, input_shape)
            if signature not in operations:
                operations[signature] = Operation(
                    signature, input_shape, layer, _describe(choice.choice_name, values)
                )
            candidates.append({"values": dict(values), "signature": signature})
        choices.append(
            {
                "name": choice.choice_name,
                "input_shape": list(input_shape),
                "conditions": conditions,
                "candidates": candidates,
            }
        )
    parents = {c["name"] for choice in choices for c in choice["conditions"]}
    for choice in choices:
        choice["parent_values"] = {
            name: _hyperparameter_values(by_name.get(name))
            for name in sorted({c["name"] for c in choice["conditions"]} & parents)
        }
    return choices, operations, list(hp.space)


def random_architecture(hyperparameters: Sequence, rng: np.random.Generator) -> dict:
    """Uniformly random values of a space's hyperparameters, only the active ones.

    Args:
        hyperparameters: a space's `hp.space` (parents come before their children).
        rng: the random generator.
    """
    values: dict[str, Any] = {}
    for hyperparameter in hyperparameters:
        if not all(c.is_active(values) for c in hyperparameter.conditions):
            continue
        options = _hyperparameter_values(hyperparameter)
        if not options:
            raise ValueError(
                "Random architectures need Choice hyperparameters only. Received: "
                f"{hyperparameter.name!r} of type {type(hyperparameter).__name__}."
            )
        value = options[int(rng.integers(len(options)))]
        values[hyperparameter.name] = value.item() if isinstance(value, np.generic) else value
    return values


def _fingerprints_differ(expected: Mapping, found: Mapping) -> list[str]:
    keys = sorted(set(expected) | set(found))
    return [k for k in keys if expected.get(k) != found.get(k)]


class LookupTable:
    """Per-operation latencies of one device and runtime, and a space's layout over them.

    Args:
        fingerprint: the device/runtime fingerprint (a runner's `fingerprint()` plus the
            precision, "quantize").
        operations: `{signature: {"ms": ..., "input_shape": ..., "description": ...}}`.
        choices: the layout of the space (see `space_operations`); needed by `predict`
            and `expected_latency`.
        fit: `{"scale", "per_op_ms", "fixed_ms", ...}`, the term for what the table does not
            cover (default: scale 1, no offsets).
        networks: the whole networks measured for the fit (`{"values", "ms"}`).
        path: the file it was loaded from, named in errors.

    Example:

    ```python
    table = LookupTable.load("table.json", runner=LocalRunner(), space=space)
    table.predict({"stage1/depth": 2, "stage1/block0/kernel_size": 5, ...})
    ```
    """

    def __init__(
        self,
        fingerprint: Mapping[str, Any],
        operations: Mapping[str, Mapping[str, Any]] | None = None,
        choices: Sequence[Mapping[str, Any]] | None = None,
        fit: Mapping[str, Any] | None = None,
        networks: Sequence[Mapping[str, Any]] | None = None,
        path: str | None = None,
    ):
        self.fingerprint = dict(fingerprint)
        self.operations = {k: dict(v) for k, v in (operations or {}).items()}
        self.choices = copy.deepcopy(list(choices or []))
        self.fit = {"scale": 1.0, "per_op_ms": 0.0, "fixed_ms": 0.0, **dict(fit or {})}
        self.networks = [dict(n) for n in networks or []]
        self.path = path

    # ---- files -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "fingerprint": self.fingerprint,
            "fit": self.fit,
            "operations": self.operations,
            "choices": self.choices,
            "networks": self.networks,
        }

    def save(self, path: str | os.PathLike) -> str:
        """Writes the table as JSON (atomically: a killed process leaves the old file)."""
        path = os.fspath(path)
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        files.write_json_atomically(path, self.to_dict(), indent=1)
        self.path = path
        return path

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        runner: Runner | None = None,
        fingerprint: Mapping[str, Any] | None = None,
        quantize: str | None = None,
        space=None,
    ) -> LookupTable:
        """Reads a table, refusing one measured on another device or runtime.

        Args:
            path: the JSON file `build_table` / `tfnas-latency-table` wrote.
            runner: the runner the table must come from (its fingerprint is compared).
            fingerprint: or the expected fingerprint itself (with "quantize").
            quantize: the precision the table must have been measured in, with `runner`.
            space: if given, the table is bound to this space (`bind`): every operation it
                needs must be in the table.

        Raises:
            ValueError: when the file is missing or not a latency table, when its
                fingerprint differs (the file and both fingerprints are named), or when it
                lacks operations `space` needs.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ValueError(f"No such latency table file. Received: path={path!r}.")
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(
                f"The latency table {path!r} is not valid JSON ({error}). Build it again with "
                "tfnas-latency-table."
            ) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(
                f"The file {path!r} is not a tfnas latency table (expected format {FORMAT!r}). "
                f"Received: format={data.get('format') if isinstance(data, dict) else None!r}."
            )
        if data.get("version") != VERSION:
            raise ValueError(
                f"The latency table {path!r} has version {data.get('version')!r}; this tfnas "
                f"reads version {VERSION}. Build it again with tfnas-latency-table."
            )
        table = cls(
            data["fingerprint"],
            data.get("operations"),
            data.get("choices"),
            data.get("fit"),
            data.get("networks"),
            path=path,
        )
        if runner is not None:
            if fingerprint is not None:
                raise ValueError("Pass either runner or fingerprint, not both.")
            fingerprint = {**runner.fingerprint(), "quantize": quantize}
        if fingerprint is not None:
            table.check_fingerprint(fingerprint)
        if space is not None:
            table = table.bind(space)
        return table

    def check_fingerprint(self, fingerprint: Mapping[str, Any]) -> None:
        """Raises unless the table was measured with exactly `fingerprint`.

        Raises:
            ValueError: naming the file, both fingerprints and the keys that differ.
        """
        differ = _fingerprints_differ(fingerprint, self.fingerprint)
        if differ:
            raise ValueError(
                f"The latency table {self.path or '(in memory)'!r} was measured on another "
                f"device or runtime (differing: {', '.join(differ)}), so its latencies do not "
                f"hold here and it is not reused. Table fingerprint: "
                f"{json.dumps(self.fingerprint, sort_keys=True)}; this runner's: "
                f"{json.dumps(dict(fingerprint), sort_keys=True)}. Build a table on this "
                "device with `tfnas-latency-table --output=...`, or use the table of this "
                "device and runtime."
            )

    # ---- spaces ------------------------------------------------------------------------------

    def missing_operations(self, choices: Sequence[Mapping[str, Any]]) -> list[dict]:
        """The candidates of `choices` whose operation the table lacks."""
        missing, seen = [], set()
        for choice in choices:
            for candidate in choice["candidates"]:
                signature = candidate["signature"]
                if signature not in self.operations and signature not in seen:
                    seen.add(signature)
                    missing.append(
                        {
                            "signature": signature,
                            "description": _describe(choice["name"], candidate["values"]),
                            "input_shape": choice["input_shape"],
                        }
                    )
        return missing

    def check_covers(self, choices: Sequence[Mapping[str, Any]]) -> None:
        """Raises unless every candidate operation of `choices` is in the table.

        Raises:
            ValueError: naming the missing operations (choice, candidate, input shape,
                signature; the first 10 and the count).
        """
        missing = self.missing_operations(choices)
        if missing:
            shown = "; ".join(
                f"{m['description']} at input {tuple(m['input_shape'])} (signature "
                f"{m['signature']})"
                for m in missing[:10]
            )
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise ValueError(
                f"The latency table {self.path or '(in memory)'!r} lacks {len(missing)} "
                f"operation(s) the space needs: {shown}{more}. It was built for another "
                "space or input size, or its build was interrupted: run tfnas-latency-table "
                "for this space with the same --output to measure them."
            )

    def bind(self, space) -> LookupTable:
        """This table with the layout of `space` (whose operations it must all hold).

        Raises:
            ValueError: when the table lacks operations the space needs (named).
        """
        choices, _, _ = space_operations(space)
        self.check_covers(choices)
        bound = copy.copy(self)
        bound.choices = choices
        return bound

    # ---- prediction --------------------------------------------------------------------------

    def _check_layout(self) -> None:
        if not self.choices:
            raise ValueError(
                "The latency table has no space layout; bind it to a space first "
                "(`table.bind(space)` or `LookupTable.load(path, space=space)`)."
            )
        self.check_covers(self.choices)

    def operation_ms(self, signature: str) -> float:
        """The isolated latency the table holds for `signature`."""
        if signature not in self.operations:
            raise ValueError(
                f"The latency table {self.path or '(in memory)'!r} has no operation with "
                f"signature {signature!r}."
            )
        return float(self.operations[signature]["ms"])

    def candidate_ms(self, signature: str) -> float:
        """What one operation adds to a network: `scale * isolated + per_op_ms`."""
        return self.fit["scale"] * self.operation_ms(signature) + self.fit["per_op_ms"]

    def candidate_latencies(self, choice_name: str) -> list[float]:
        """The latency each candidate of choice `choice_name` adds (summed over the layers
        that share the name), in candidate order: what `expected_latency`'s gradient in the
        choice's weights is when the choice is unconditionally active."""
        self._check_layout()
        rows = [c for c in self.choices if c["name"] == choice_name]
        if not rows:
            names = sorted({c["name"] for c in self.choices})
            raise ValueError(
                f"Unknown choice. Received: choice_name={choice_name!r}; the table's space has "
                f"{names}."
            )
        return [
            sum(self.candidate_ms(row["candidates"][k]["signature"]) for row in rows)
            for k in range(len(rows[0]["candidates"]))
        ]

    @staticmethod
    def _active(choice: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
        return all(
            c["name"] in values and values[c["name"]] in c["values"] for c in choice["conditions"]
        )

    def network_terms(self, values: Mapping[str, Any]) -> tuple[float, int]:
        """(sum of isolated latencies, number of operations) of the architecture `values`."""
        self._check_layout()
        values = dict(values if isinstance(values, Mapping) else values.values)
        total, count = 0.0, 0
        for choice in self.choices:
            if not self._active(choice, values):
                continue
            decisions = list(choice["candidates"][0]["values"])
            missing = [name for name in decisions if name not in values]
            if missing:
                raise ValueError(
                    f"The architecture lacks the choice {missing[0]!r}, which is active. "
                    f"Received values for: {sorted(values)}."
                )
            for candidate in choice["candidates"]:
                if all(values[n] == v for n, v in candidate["values"].items()):
                    total += self.operation_ms(candidate["signature"])
                    count += 1
                    break
            else:
                options = [
                    list(c["values"].values())[0] if len(c["values"]) == 1 else c["values"]
                    for c in choice["candidates"]
                ]
                chosen = {n: values[n] for n in decisions}
                raise ValueError(
                    f"Unknown candidate for choice {choice['name']!r}. Received: {chosen}; "
                    f"expected one of {options}."
                )
        return total, count

    def predict(self, architecture_values: Mapping[str, Any]) -> float:
        """The predicted latency of an architecture, in milliseconds.

        Args:
            architecture_values: `{hyperparameter name: value}` (a trial's values or a
                `tfnas.Architecture`); choices inactive under its depths are skipped.
        """
        total, count = self.network_terms(architecture_values)
        fit = self.fit
        return float(fit["scale"] * total + fit["per_op_ms"] * count + fit["fixed_ms"])

    def fastest_architecture(self) -> tuple[float, dict[str, Any]]:
        """The lowest predicted latency of the space, and the choices that reach it.

        Every combination of the parent choices (depths) is tried, each active layer choice
        taking its fastest candidate (choices that share a name share one decision).

        Returns:
            `(milliseconds, {choice or parent name: value})`: the values of the table's
            choices and of their parents (other hyperparameters of the space are free).

        Raises:
            ValueError: when the parent choices have more than 100000 combinations.
        """
        self._check_layout()
        parents: dict[str, list] = {}
        for choice in self.choices:
            for name, values in choice["parent_values"].items():
                parents.setdefault(name, list(values))
        combinations = int(np.prod([len(v) for v in parents.values()])) if parents else 1
        if combinations > 100_000:
            raise ValueError(
                f"The space's depth choices have {combinations} combinations, too many to "
                "search for the fastest architecture."
            )
        best_ms, best_values = float("inf"), {}
        for combination in itertools.product(*parents.values()):
            values = dict(zip(parents, combination))
            by_name: dict[str, list[float]] = {}
            candidates: dict[str, list] = {}
            for choice in self.choices:
                if not self._active(choice, values):
                    continue
                latencies = [self.candidate_ms(c["signature"]) for c in choice["candidates"]]
                summed = by_name.get(choice["name"])
                by_name[choice["name"]] = (
                    latencies if summed is None else [a + b for a, b in zip(summed, latencies)]
                )
                candidates[choice["name"]] = choice["candidates"]
            ms = float(self.fit["fixed_ms"])
            for name, latencies in by_name.items():
                index = int(np.argmin(latencies))
                ms += latencies[index]
                values.update(candidates[name][index]["values"])
            if ms < best_ms:
                best_ms, best_values = ms, values
        return best_ms, best_values

    def check_target(self, latency_target_ms: float) -> None:
        """Raises before any training when no architecture can meet `latency_target_ms`.

        Raises:
            ValueError: naming the argument, the fastest architecture and its latency.
        """
        fastest_ms, values = self.fastest_architecture()
        if fastest_ms > latency_target_ms:
            raise ValueError(
                f"No architecture of the space can meet latency_target_ms={latency_target_ms:g}"
                f" (--latency_target_ms): the fastest one the latency table "
                f"{self.path or '(in memory)'!r} predicts takes {fastest_ms:.4f} ms ({values})."
                " Raise the target, or search a smaller space."
            )

    def expected_latency(self, weights: Mapping[str, Any]):
        """Expected latency under per-choice candidate weights: a differentiable expression.

        For each layer choice l, sum_k w_lk * lat_lk (lat: `candidate_ms`), times the
        probability that the layer runs when it sits under a depth choice (the sum of the
        depth weights of the depths that keep it), plus the fixed term.

        Args:
            weights: `{choice name: weights}`, one tensor of `len(candidates)` weights per
                choice (softmax, Gumbel-softmax or binary-gate values), in the choice's
                candidate order; depth (and other parent) choices too when the space has
                them, in the order of their values.

        Returns:
            A scalar `keras.ops` tensor in milliseconds.

        Raises:
            ValueError: when a choice's weights are missing or have the wrong length.
        """
        self._check_layout()
        ops = keras.ops

        def get(name: str, size: int):
            if name not in weights:
                raise ValueError(
                    f"expected_latency needs weights for choice {name!r}. Received weights "
                    f"for: {sorted(weights)}."
                )
            w = ops.convert_to_tensor(weights[name])
            if tuple(w.shape) != (size,):
                raise ValueError(
                    f"The weights of choice {name!r} must have shape ({size},), one per "
                    f"candidate. Received: shape {tuple(w.shape)}."
                )
            return w

        total = ops.convert_to_tensor(float(self.fit["fixed_ms"]), dtype="float32")
        for choice in self.choices:
            latencies = [self.candidate_ms(c["signature"]) for c in choice["candidates"]]
            w = get(choice["name"], len(latencies))
            term = ops.sum(ops.cast(w, "float32") * ops.convert_to_tensor(latencies, "float32"))
            for condition in choice["conditions"]:
                parent = choice["parent_values"].get(condition["name"], [])
                mask = [1.0 if value in condition["values"] else 0.0 for value in parent]
                pw = ops.cast(get(condition["name"], len(mask)), "float32")
                term = term * ops.sum(pw * ops.convert_to_tensor(mask, "float32"))
            total = total + term
        return total

    # ---- fitting -------------------------------------------------------------------------------

    def fit_fixed_term(self) -> dict[str, Any]:
        """Fits `scale`, `per_op_ms` and `fixed_ms` to the measured `networks` (least squares).

        From 6 networks on all three terms are fitted (the per-operation term only when the
        networks' operation counts differ); with fewer the scale stays 1, the per-operation
        term 0, and the constant is the mean residual.
        """
        self._check_layout()
        if not self.networks:
            self.fit = {"scale": 1.0, "per_op_ms": 0.0, "fixed_ms": 0.0, "networks": 0}
            return self.fit
        terms = [self.network_terms(n["values"]) for n in self.networks]
        sums = np.array([t[0] for t in terms])
        counts = np.array([t[1] for t in terms], dtype=float)
        measured = np.array([float(n["ms"]) for n in self.networks])
        # Three terms from a few noisy networks overfit (measured: 4 networks on a loaded
        # machine gave a negative per-operation term), so below 6 only the constant is fitted.
        fit_scale = len(measured) >= 6
        fit_per_op = fit_scale and np.ptp(counts) > 0
        columns = ([sums] if fit_scale else []) + ([counts] if fit_per_op else [])
        target = measured if fit_scale else measured - sums
        design = np.stack([*columns, np.ones_like(sums)], 1)
        solution = np.linalg.lstsq(design, target, rcond=None)[0]
        scale = float(solution[0]) if fit_scale else 1.0
        per_op = float(solution[int(fit_scale)]) if fit_per_op else 0.0
        fixed = float(solution[-1])
        residual = measured - (scale * sums + per_op * counts + fixed)
        self.fit = {
            "scale": scale,
            "per_op_ms": per_op,
            "fixed_ms": fixed,
            "networks": int(len(measured)),
            "rmse_ms": float(np.sqrt(np.mean(residual**2))),
        }
        return self.fit


def as_lookup_table(latency_table, owner: str) -> tuple[LookupTable, str | None]:
    """`(table, path)` of a strategy's `latency_table` argument: a table or its path.

    Raises:
        ValueError: when it is None (`owner` needs one), not a table, or not a table file.
    """
    if latency_table is None:
        raise ValueError(
            f"{owner} needs latency_table: a tfnas.latency.LookupTable, or the path of one "
            "(build it with `tfnas-latency-table` or `tfnas.latency.build_table`). "
            "Received: latency_table=None"
        )
    if isinstance(latency_table, (str, os.PathLike)):
        # Read now, so a missing or foreign file fails at construction.
        return LookupTable.load(latency_table), os.fspath(latency_table)
    if not isinstance(latency_table, LookupTable):
        raise ValueError(
            "latency_table must be a tfnas.latency.LookupTable or the path of one. "
            f"Received: latency_table of type {type(latency_table).__name__}"
        )
    return latency_table, latency_table.path


def bind_keeping_random_state(table: LookupTable, space) -> LookupTable:
    """`table.bind(space)` with Python's and numpy's global random states put back.

    Binding builds the space once more; a search that binds its table just before training
    then trains exactly as it would without it (a resumed search included).
    """
    import random

    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        return table.bind(space)
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def build_network(space, values: Mapping[str, Any]) -> keras.Model:
    """The fixed-mode network of `values` in `space` (standard Keras layers only)."""
    hp = keras_tuner.HyperParameters()
    hp.values = dict(values)
    return _build_fn(space)(hp)


def measure_model(
    model: keras.Model, runner: Runner, path: str, quantize: str | None = None
) -> float:
    """Converts `model` to `path` (.tflite) unless that file exists, then times it with
    `runner`; returns milliseconds."""
    if not os.path.isfile(path):
        flatbuffer = tflite.convert(model, quantize)
        temporary = path + ".tmp"
        with open(temporary, "wb") as f:
            f.write(flatbuffer)
        os.replace(temporary, path)
    return float(runner.measure(path))


def build_table(
    space,
    runner: Runner,
    output: str | os.PathLike,
    *,
    quantize: str | None = None,
    fit_networks: int = 8,
    seed: int = 0,
    work_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> LookupTable:
    """Measures every candidate operation of `space` with `runner` and writes the table.

    Resumable: the table is rewritten (atomically) after every measurement, and a restart
    with the same `output` skips the operations and networks already measured. A table at
    `output` from another fingerprint is refused unless `overwrite`.

    Args:
        space: a `keras_tuner.HyperModel` or `build(hp)` with tfnas choices.
        runner: times the `.tflite` files (`LocalRunner`, `AdbRunner`, ...).
        output: the JSON file to write.
        quantize: precision of the measured models: None (float32), "float16" or "int8".
        fit_networks: whole random networks measured to fit the fixed term (>= 0).
        seed: seed of those networks' architectures.
        work_dir: where the `.tflite` files are kept (and reused when they exist); default:
            a temporary folder, deleted at the end.
        overwrite: start over even if `output` holds a table of another fingerprint.
        progress: called with one line per measurement (e.g. `print`).

    Returns:
        The `LookupTable`, bound to `space` and fitted.
    """
    tflite.check_quantize(quantize)
    validation.check_int("fit_networks", fit_networks, low=0)
    validation.check_int("seed", seed, low=0)
    output = os.fspath(output)
    if not output.endswith(".json"):
        raise ValueError(f"The table is a .json file. Received: output={output!r}.")
    report = progress or (lambda line: None)
    fingerprint = {**runner.fingerprint(), "quantize": quantize}
    table = None
    if os.path.exists(output) and not overwrite:
        table = LookupTable.load(output)
        try:
            table.check_fingerprint(fingerprint)
        except ValueError as error:
            raise ValueError(
                f"{error} (Pass overwrite=True / --overwrite to replace {output!r}.)"
            ) from None
    choices, operations, hyperparameters = space_operations(space)
    if table is None:
        table = LookupTable(fingerprint)
    table.choices = choices
    table.path = output
    temporary = work_dir is None
    work_dir = tempfile.mkdtemp(prefix="tfnas-latency-") if temporary else os.fspath(work_dir)
    os.makedirs(work_dir, exist_ok=True)
    try:
        todo = [op for op in operations.values() if op.signature not in table.operations]
        done = len(operations) - len(todo)
        if done:
            report(f"Resuming {output}: {done} of {len(operations)} operations already measured.")
        for i, op in enumerate(todo, start=done + 1):
            start = time.perf_counter()
            path = os.path.join(work_dir, f"op_{op.signature}.tflite")
            ms = measure_model(op.model(), runner, path, quantize)
            table.operations[op.signature] = {
                "ms": ms,
                "input_shape": list(op.input_shape),
                "description": op.description,
                "size_bytes": os.path.getsize(path),
            }
            table.save(output)
            if temporary:
                os.remove(path)
            report(
                f"[{i}/{len(operations)}] {op.description} @ {tuple(op.input_shape)}: "
                f"{ms:.4f} ms ({time.perf_counter() - start:.1f} s)"
            )
        rng = np.random.default_rng(seed)
        architectures = [random_architecture(hyperparameters, rng) for _ in range(fit_networks)]
        measured = {json.dumps(n["values"], sort_keys=True) for n in table.networks}
        for i, values in enumerate(architectures, start=1):
            if json.dumps(values, sort_keys=True) in measured:
                continue
            start = time.perf_counter()
            path = os.path.join(work_dir, f"network_{seed}_{i}.tflite")
            model = build_network(space, values)
            ms = measure_model(model, runner, path, quantize)
            table.networks.append({"values": values, "ms": ms})
            table.save(output)
            if temporary:
                os.remove(path)
            report(
                f"[network {i}/{fit_networks}] whole network: {ms:.4f} ms, table sum "
                f"{table.network_terms(values)[0]:.4f} ms ({time.perf_counter() - start:.1f} s)"
            )
        fit = table.fit_fixed_term()
        table.save(output)
        report(
            f"Fixed term from {fit['networks']} networks: scale {fit['scale']:.3f}, "
            f"{fit['per_op_ms']:+.4f} ms per operation, {fit['fixed_ms']:+.4f} ms per network"
            + (f" (rmse {fit['rmse_ms']:.4f} ms)" if "rmse_ms" in fit else "")
        )
    finally:
        if temporary:
            shutil.rmtree(work_dir, ignore_errors=True)
    return table


def run(
    *,
    space: str = "mobile",
    output: str,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    dataset: str | None = None,
    runner: str = "local",
    runtime: str = "interpreter",
    num_threads: int = 1,
    xnnpack: bool = True,
    quantize: str | None = None,
    warmup: int = 5,
    runs: int = 30,
    fit_networks: int = 8,
    seed: int = 0,
    overwrite: bool = False,
    adb: str = "adb",
    serial: str | None = None,
    benchmark_model: str = "/data/local/tmp/benchmark_model",
    device_dir: str = "/data/local/tmp/tfnas",
    work_dir: str | None = None,
    progress: Callable[[str], None] | None = print,
) -> LookupTable:
    """What `tfnas-latency-table` does: the table of a named space on this device.

    The space is `tfnas.spaces.make(space, input_shape, num_classes)`, the one
    `tfnas-search --space=<space>` searches for the same data: give `dataset` (its input
    shape and classes) or `input_shape` and `num_classes` (default: 224x224x3, 1000).

    Args:
        space: a `tfnas.spaces.CLASSIFICATION_SPACES` name (a segmentation space has no
            per-operation table).
        output: the table's JSON file (resumed when it exists).
        input_shape, num_classes, dataset: the data the space is sized for.
        runner: "local" (LiteRT on this machine) or "adb" (an Android device).
        runtime: with the local runner, "interpreter" or "compiled_model".
        num_threads, xnnpack, warmup, runs: timing settings of the runner.
        quantize: precision of the measured models (None, "float16", "int8").
        fit_networks, seed, overwrite, work_dir, progress: see `build_table`.
        adb, serial, benchmark_model, device_dir: the adb runner's settings.

    Returns:
        The table.
    """
    from tfnas import spaces
    from tfnas.data import DATASETS
    from tfnas.latency.runners import make_runner

    if dataset is not None:
        if input_shape is not None or num_classes is not None:
            raise ValueError(
                "Give either dataset or input_shape/num_classes. Received: "
                f"dataset={dataset!r}, input_shape={input_shape!r}, num_classes={num_classes!r}."
            )
        validation.check_one_of("dataset", dataset, tuple(sorted(DATASETS)))
        input_shape, num_classes = DATASETS[dataset].input_shape, DATASETS[dataset].num_classes
    validation.check_one_of("space", space, spaces.CLASSIFICATION_SPACES)
    if dataset is not None:
        spaces.check_task(space, dataset)
    input_shape = tuple(input_shape or (224, 224, 3))
    num_classes = 1000 if num_classes is None else num_classes
    hypermodel = spaces.make(space, input_shape, num_classes)
    if runner == "adb":
        if runtime != "interpreter":
            raise ValueError(
                "The adb runner times with the device's benchmark_model (the interpreter); "
                f"runtime does not apply. Received: runtime={runtime!r}."
            )
        the_runner = make_runner(
            "adb", adb=adb, serial=serial, benchmark_model=benchmark_model,
            device_dir=device_dir, num_threads=num_threads, xnnpack=xnnpack, warmup=warmup,
            runs=runs,
        )  # fmt: skip
    else:
        the_runner = make_runner(
            runner, runtime=runtime, num_threads=num_threads, xnnpack=xnnpack, warmup=warmup,
            runs=runs,
        )  # fmt: skip
    return build_table(
        hypermodel,
        the_runner,
        output,
        quantize=quantize,
        fit_networks=fit_networks,
        seed=seed,
        work_dir=work_dir,
        overwrite=overwrite,
        progress=progress,
    )
