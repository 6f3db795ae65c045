"""The network of a Path-level EAS tree cell, and function-preserving weight inheritance.

Path-level EAS (Cai et al. 2018, arXiv 1806.02639) transforms a trained network's cell
into a child cell that computes the same function (`tfnas.search.path_level`), so the child
starts from its parent's weights. `PathLevelSpace` is the KerasTuner hypermodel of one such
network, and `PathLevelSpace.inherit_weights` maps a parent model's weights into its child
(`tfnas.Tuner` calls it before fitting a trial).

The network: a 3x3 convolution stem (`channels` filters, batch norm, ReLU), `num_cells`
copies of the cell (each with its own weights; the reference also stacks one cell
structure) with a 2x2 max pooling between consecutive cells, global average pooling and a
linear classifier, compiled like the other spaces (Adam, sparse cross-entropy on logits,
accuracy). Every layer is a standard Keras layer (the split of a node's input is a channel
slice of the tensor), so the `.keras` file and the TFLite conversion need no tfnas.

Operations (`tfnas.search.path_level.OPERATIONS`): a convolution is `Conv2D` (no bias) or
`SeparableConv2D` (depthwise then pointwise, no bias; the reference's `DepthConvLayer`),
then `BatchNormalization` and `ReLU` (the reference's "weight_bn_act" order); pooling is a
3x3, stride-1, "same" `AveragePooling2D` (padding not counted, as the reference's
`count_include_pad=False`) or `MaxPooling2D`; identity is no layer. An add merge is
`Average` (the reference's `use_avg`), a concat merge `Concatenate`.

Function-preserving initialisation (the reference's, `models/layers.py`):

* add merge: every branch is a copy of the operation (the average of equal outputs is that
  output); copies after the first get the reference's "wider" noise;
* concat merge: a convolution's kernel, and its batch norm, are sliced along the output
  channels (a separable convolution's pointwise kernel; its depthwise kernel is copied);
  a channel-wise operation reads its slice of the input;
* identity replaced by a convolution: an identity kernel (the centre tap of a `Conv2D`, of
  the depthwise and an identity pointwise kernel for `SeparableConv2D`) plus the
  reference's "deeper" noise, and a batch norm whose scale is `sqrt(var + eps)` and offset
  the mean (mean 0 and variance 1 until `calibrate_batch_norms` reads them from the data),
  so that it undoes its own normalisation at inference; the ReLU after it is an
  identity because every tensor inside the network's cells is non-negative (the stem and
  every convolution end with a ReLU; pooling, averages and concatenations keep signs);
* inserted identity nodes have no weights.

With `noise_ratio=0` the child's outputs equal the parent's (inference mode) for every
transformation except replacing an identity by a pooling, which no initialisation makes an
identity (the reference trains such children by distillation from the start network; here
they simply train from the inherited weights).

The reference's noise (a normal of standard deviation `noise_ratio` times the weights'
standard deviation, 6e-3) breaks the symmetry of copied branches; it is the default here
too (`noise_ratio`). As in the reference ("virtual forward"), an identity-initialised batch
norm then takes its statistics from the data before the child trains
(`calibrate_batch_norms`, in `PathLevelSpace.fit`, on `calibration_samples` training inputs):
its moving mean and variance are those of its input, its offset the mean and its scale
`sqrt(var + eps)`, so it stays an identity at inference and is one in training mode too.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import keras
import keras_tuner
import numpy as np

from tfnas.search import path_level as pl
from tfnas.spaces.common import classification_head, compile_classifier, validate_common
from tfnas.validation import check_float, check_int

BN_EPSILON = 1e-3
CONVS = {"conv1x1": 1, "conv3x3": 3}
SEPARABLE = {"sep3x3": 3, "sep5x5": 5, "sep7x7": 7}
POOLS = {"avgpool3x3": keras.layers.AveragePooling2D, "maxpool3x3": keras.layers.MaxPooling2D}


def layer_prefix(cell_index: int, node_id: str, branch: int) -> str:
    """The name prefix of the layers of one branch's operation, e.g. "cell0_r-1_b0"."""
    return f"cell{cell_index}_{node_id.replace('.', '-')}_b{branch}"


def _op(x, op: str, filters: int, prefix: str):
    if op == "identity":
        return x
    if op in POOLS:
        return POOLS[op](3, strides=1, padding="same", name=f"{prefix}_pool")(x)
    if op in CONVS:
        x = keras.layers.Conv2D(
            filters, CONVS[op], padding="same", use_bias=False, name=f"{prefix}_conv"
        )(x)
    else:
        x = keras.layers.SeparableConv2D(
            filters, SEPARABLE[op], padding="same", use_bias=False, name=f"{prefix}_conv"
        )(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}_bn")(x)
    return keras.layers.ReLU(name=f"{prefix}_relu")(x)


def cell_output(x, cell: pl.Cell, channels: int, cell_index: int):
    """Applies the tree cell to `x` (a tensor of `channels` channels)."""
    plan = pl.node_channels(cell, channels)

    def node_output(x, node: pl.Cell, node_id: str):
        branch_channels = plan[node_id]
        outputs, start = [], 0
        for j, (branch, chans) in enumerate(zip(node["branches"], branch_channels)):
            inputs = x
            if node["split"] == "split":
                inputs = x[..., start : start + chans.in_channels]
                start += chans.in_channels
            y = _op(inputs, branch["op"], chans.out_channels, layer_prefix(cell_index, node_id, j))
            if branch["child"] is not None:
                y = node_output(y, branch["child"], pl.child_id(node_id, j))
            outputs.append(y)
        name = f"cell{cell_index}_{node_id.replace('.', '-')}"
        if node["merge"] == "add":
            return keras.layers.Average(name=f"{name}_add")(outputs)
        if node["merge"] == "concat":
            return keras.layers.Concatenate(name=f"{name}_concat")(outputs)
        return outputs[0]

    return node_output(x, cell, pl.ROOT)


# --- Weights of the operations as a tree parallel to the cell -----------------------------


def _read_weights(model: keras.Model, cell: pl.Cell, cell_index: int) -> pl.Cell:
    """`cell` with each branch's operation weights (numpy, by name) under "weights"."""
    annotated = copy.deepcopy(cell)

    def visit(node, node_id):
        for j, branch in enumerate(node["branches"]):
            prefix = layer_prefix(cell_index, node_id, j)
            op, weights = branch["op"], {}
            if op in CONVS:
                weights["kernel"] = model.get_layer(f"{prefix}_conv").get_weights()[0]
            elif op in SEPARABLE:
                depthwise, pointwise = model.get_layer(f"{prefix}_conv").get_weights()
                weights["depthwise"], weights["pointwise"] = depthwise, pointwise
            if op in CONVS or op in SEPARABLE:
                weights["bn"] = model.get_layer(f"{prefix}_bn").get_weights()
            branch["weights"] = weights
            if branch["child"] is not None:
                visit(branch["child"], pl.child_id(node_id, j))

    visit(annotated, pl.ROOT)
    return annotated


def _write_weights(model: keras.Model, annotated: pl.Cell, cell_index: int) -> list[str]:
    """Sets the operations' weights; returns the batch norms of identity-initialised ones."""
    fresh = []

    def visit(node, node_id):
        for j, branch in enumerate(node["branches"]):
            prefix = layer_prefix(cell_index, node_id, j)
            weights = branch.get("weights") or {}
            if branch.get("fresh"):
                fresh.append(f"{prefix}_bn")
            if "kernel" in weights:
                model.get_layer(f"{prefix}_conv").set_weights([weights["kernel"]])
            elif "depthwise" in weights:
                model.get_layer(f"{prefix}_conv").set_weights(
                    [weights["depthwise"], weights["pointwise"]]
                )
            if "bn" in weights:
                model.get_layer(f"{prefix}_bn").set_weights(weights["bn"])
            if branch["child"] is not None:
                visit(branch["child"], pl.child_id(node_id, j))

    visit(annotated, pl.ROOT)
    return fresh


def _noisy(weights: np.ndarray, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """The reference's `apply_noise`: a normal of std `ratio * std(weights)` added."""
    if ratio == 0.0:
        return weights.copy()
    scale = float(np.std(weights)) * ratio
    return (weights + rng.normal(0.0, scale, size=weights.shape)).astype(weights.dtype)


def _identity_weights(op: str, channels: int, ratio: float, rng) -> dict[str, Any]:
    """Weights that make a conv-BN-ReLU an identity on non-negative inputs (inference)."""
    bn = [
        np.full(channels, np.sqrt(1.0 + BN_EPSILON), np.float32),  # gamma = sqrt(var + eps)
        np.zeros(channels, np.float32),  # beta = mean
        np.zeros(channels, np.float32),  # moving mean
        np.ones(channels, np.float32),  # moving variance
    ]
    if op in CONVS:
        k = CONVS[op]
        kernel = np.zeros((k, k, channels, channels), np.float32)
        kernel[k // 2, k // 2] = np.eye(channels, dtype=np.float32)
        return {"kernel": _noisy(kernel, ratio, rng), "bn": bn}
    k = SEPARABLE[op]
    depthwise = np.zeros((k, k, channels, 1), np.float32)
    depthwise[k // 2, k // 2] = 1.0
    pointwise = np.eye(channels, dtype=np.float32)[None, None]
    return {
        "depthwise": _noisy(depthwise, ratio, rng),
        "pointwise": _noisy(pointwise, ratio, rng),
        "bn": bn,
    }


def _split_weights(weights: dict, parts: int, ratio: float, rng) -> list[dict]:
    """One operation's weights cut along the output channels into `parts` equal slices."""
    if not weights:
        return [{} for _ in range(parts)]
    out = weights["bn"][0].shape[0]
    size = out // parts
    pieces = []
    for i in range(parts):
        cut = slice(i * size, (i + 1) * size)
        piece = {"bn": [w[cut].copy() for w in weights["bn"]]}
        if "kernel" in weights:
            piece["kernel"] = weights["kernel"][..., cut].copy()
        else:
            piece["depthwise"] = _noisy(weights["depthwise"], ratio, rng)
            piece["pointwise"] = weights["pointwise"][..., cut].copy()
        pieces.append(piece)
    return pieces


def transform_weights(
    annotated: pl.Cell,
    transformation: pl.Transformation,
    channels: int,
    noise_ratio: float = 0.0,
    rng: np.random.Generator | None = None,
) -> pl.Cell:
    """Applies a transformation to a cell whose branches carry their weights (see
    `_read_weights`), initialising the child's new weights to preserve the function."""
    rng = rng if rng is not None else np.random.default_rng(0)
    node_id = transformation["node"]
    node = pl.get_node(annotated, node_id)
    kind = transformation["type"]
    if kind == "set_merge":
        weights = node["branches"][0].get("weights") or {}
    child = pl.apply_transformation(annotated, transformation, channels)
    new_node = pl.get_node(child, node_id)
    if kind == "set_merge":
        k = transformation["branches"]
        if transformation["merge"] == "add":
            copies = [copy.deepcopy(weights)]
            for _ in range(k - 1):
                noisy = {name: _noisy(w, noise_ratio, rng) for name, w in weights.items()
                         if name != "bn"}  # fmt: skip
                if "bn" in weights:
                    noisy["bn"] = [w.copy() for w in weights["bn"]]
                copies.append(noisy)
        else:
            copies = _split_weights(weights, k, noise_ratio, rng)
        for branch, piece in zip(new_node["branches"], copies):
            branch["weights"] = piece
    elif kind == "replace_identity":
        j = transformation["branch"]
        op = transformation["op"]
        width = pl.node_channels(child, channels)[node_id][j].out_channels
        branch = new_node["branches"][j]
        branch["fresh"] = op in pl.IDENTITY_INITIALIZABLE
        branch["weights"] = (
            _identity_weights(op, width, noise_ratio, rng)
            if op in pl.IDENTITY_INITIALIZABLE
            else {}
        )
    else:
        inserted = new_node["branches"][transformation["branch"]]["child"]
        inserted["branches"][0]["weights"] = {}
    return child


def _strip(annotated: Any) -> Any:
    if isinstance(annotated, dict):
        return {k: _strip(v) for k, v in annotated.items() if k != "weights"}
    return annotated


def transfer_weights(
    parent_model: keras.Model,
    child_model: keras.Model,
    parent_cell: pl.Cell,
    transformations: Sequence[pl.Transformation],
    channels: int,
    num_cells: int,
    noise_ratio: float = 0.0,
    seed: int = 0,
) -> list[str]:
    """Sets `child_model`'s weights from `parent_model`'s through the transformations.

    Layers outside the cells (stem, classifier) are copied by name; each cell's operations
    follow `transform_weights`.

    Returns:
        The names of the batch norms of the identity-initialised operations (for
        `calibrate_batch_norms`).

    Raises:
        ValueError: when the transformations do not turn `parent_cell` into the cell the
            child model was built with (its layers do not match).
    """
    rng = np.random.default_rng(seed)
    fresh = []
    for layer in child_model.layers:
        if layer.name.startswith("cell") or not layer.weights:
            continue
        layer.set_weights(parent_model.get_layer(layer.name).get_weights())
    for c in range(num_cells):
        annotated = _read_weights(parent_model, parent_cell, c)
        for transformation in transformations:
            annotated = transform_weights(annotated, transformation, channels, noise_ratio, rng)
        try:
            fresh += _write_weights(child_model, annotated, c)
        except ValueError as e:
            raise ValueError(
                f"The child model does not hold the cell {pl.describe(_strip(annotated))!r} "
                f"that the transformations make of its parent: {e}"
            ) from e
    return fresh


def calibrate_batch_norms(model: keras.Model, names: Sequence[str], x) -> None:
    """The reference's data-driven initialisation of identity-initialised batch norms.

    Sets each batch norm's moving statistics to the mean and variance of its input on `x`
    (inference mode), its offset to the mean and its scale to `sqrt(var + eps)`: still an
    identity at inference, and now also in training mode on batches like `x`.
    """
    if not names:
        return
    layers = [model.get_layer(name) for name in names]
    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    outputs = probe.predict(x, verbose=0)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    for layer, out in zip(layers, outputs):
        mean = out.mean(axis=(0, 1, 2))
        var = out.var(axis=(0, 1, 2))
        layer.set_weights([np.sqrt(var + layer.epsilon), mean, mean, var])


def _first_inputs(args, kwargs, limit: int):
    """Up to `limit` training inputs of a `fit` call (numpy, or a batch of a dataset)."""
    x = args[0] if args else kwargs.get("x")
    if isinstance(x, np.ndarray):
        return x[:limit]
    if hasattr(x, "take"):  # A `tf.data.Dataset` of (inputs, targets) batches.
        for batch in x.take(1):
            inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
            return np.asarray(inputs)[:limit]
    return None


class PathLevelSpace(keras_tuner.HyperModel):
    """The network of a Path-level EAS tree cell (see the module docstring).

    The architecture is in `Fixed` hyperparameters, which `tfnas.tuners.PathLevelEAS` sets
    per trial: `path_level/cell` (the cell as `tfnas.search.path_level.cell_key` JSON; its
    default is the start cell), `path_level/parent` (the parent's trial id, "" for none),
    `path_level/parent_cell` and `path_level/transforms` (how the child was made), and
    `path_level/channels`.

    Args:
        input_shape: (height, width, channels) of the images.
        num_classes: number of classes.
        channels: the width of the stem and of every cell (>= 1).
        num_cells: copies of the cell (>= 1).
        start_op: the start cell's operation (`tfnas.search.path_level.OPERATIONS`).
        learning_rate: Adam's learning rate.
        noise_ratio: the reference's symmetry-breaking noise on inherited weights (>= 0;
            0: children compute exactly their parent's function).
        calibration_samples: training inputs that set the statistics of identity-
            initialised batch norms before a child trains (0: none; see `fit`).

    Example:

    ```python
    space = PathLevelSpace((8, 8, 1), 10, channels=8)
    oracle = tfnas.tuners.path_level.PathLevelEAS(max_trials=20, seed=0)
    tuner = tfnas.Tuner(space, oracle=oracle, directory="runs", project_name="path_level")
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=2)
    ```
    """

    # Trials change the network's shape (no per-operation latency table), and only
    # `PathLevelEAS` grows the cell: every other oracle would see one fixed architecture.
    supernet_form = False
    searched_by = ("path_level_eas",)

    def __init__(
        self,
        input_shape: Sequence[int] = (8, 8, 1),
        num_classes: int = 10,
        channels: int = 8,
        num_cells: int = 2,
        start_op: str = "conv3x3",
        learning_rate: float = 0.01,
        noise_ratio: float = 6e-3,
        calibration_samples: int = 256,
        name: str | None = None,
        tunable: bool = True,
    ):
        super().__init__(name=name, tunable=tunable)
        validate_common(tuple(input_shape), num_classes, learning_rate)
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.channels = check_int("channels", channels, low=1)
        self.num_cells = check_int("num_cells", num_cells, low=1)
        self.start = pl.start_cell(start_op)
        self.learning_rate = learning_rate
        self.noise_ratio = check_float("noise_ratio", noise_ratio, low=0)
        self.calibration_samples = check_int("calibration_samples", calibration_samples, low=0)
        # Batch norms to calibrate before fitting, by id of the model inheriting weights.
        self._to_calibrate: dict[int, list[str]] = {}

    def architecture(self, hp) -> dict[str, Any]:
        """The trial's cell, parent and transformations, read from (and registered in) hp.

        The hyperparameters are `Fixed` at the start cell (no parent) in the search space;
        a trial's values set them, which `hp.Fixed` returns. A container that meets them
        with values already set (a `tfnas.Architecture` of a grown cell) registers those.
        """

        def fixed(name, default):
            return hp.Fixed(name, hp.values.get(name, default))

        if fixed(pl.CHANNELS, self.channels) != self.channels:
            raise ValueError(
                f"The architecture's cell has {hp.values[pl.CHANNELS]} channels, this space "
                f"{self.channels}. Received: {pl.CHANNELS}={hp.values[pl.CHANNELS]!r}"
            )
        cell = pl.parse_cell(fixed(pl.CELL, pl.cell_key(self.start)))
        parent = fixed(pl.PARENT, "")
        parent_cell = fixed(pl.PARENT_CELL, "")
        transforms = json.loads(fixed(pl.TRANSFORMS, "[]"))
        return {"cell": pl.check_cell(cell, self.channels), "parent": parent,
                "parent_cell": parent_cell, "transforms": transforms}  # fmt: skip

    def build_cell_model(self, cell: pl.Cell) -> keras.Model:
        """The compiled network of `cell`."""
        inputs = keras.Input(self.input_shape)
        x = keras.layers.Conv2D(self.channels, 3, padding="same", use_bias=False, name="stem_conv")(
            inputs
        )
        x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name="stem_bn")(x)
        x = keras.layers.ReLU(name="stem_relu")(x)
        for c in range(self.num_cells):
            x = cell_output(x, cell, self.channels, c)
            if c < self.num_cells - 1 and min(x.shape[1], x.shape[2]) >= 2:
                x = keras.layers.MaxPooling2D(2, name=f"reduce{c}")(x)
        outputs = classification_head(x, self.num_classes)
        model = keras.Model(inputs, outputs, name="path_level")
        return compile_classifier(model, self.learning_rate)

    def build(self, hp) -> keras.Model:
        return self.build_cell_model(self.architecture(hp)["cell"])

    def inherit_weights(
        self, hp, model: keras.Model, load_trial_model: Callable[[str], keras.Model]
    ) -> bool:
        """Sets a child trial's weights from its parent trial's model, transformed.

        Called by `tfnas.Tuner` after building the trial's model and before fitting it.

        Returns:
            Whether weights were inherited (False for a trial without a parent).
        """
        arch = self.architecture(hp)
        if not arch["parent"]:
            return False
        parent_cell = pl.parse_cell(arch["parent_cell"])
        made = pl.apply_transformations(parent_cell, arch["transforms"], self.channels)
        if pl.cell_key(made) != pl.cell_key(arch["cell"]):
            raise ValueError(
                f"The transformations of trial values make {pl.describe(made)!r} of the "
                f"parent cell, not the trial's cell {pl.describe(arch['cell'])!r}. "
                f"Received: {pl.TRANSFORMS}={json.dumps(arch['transforms'])!r}"
            )
        digest = hashlib.sha256(pl.cell_key(arch["cell"]).encode()).digest()
        self._to_calibrate[id(model)] = transfer_weights(
            load_trial_model(arch["parent"]),
            model,
            parent_cell,
            arch["transforms"],
            self.channels,
            self.num_cells,
            noise_ratio=self.noise_ratio,
            seed=int.from_bytes(digest[:4], "little"),
        )
        return True

    def fit(self, hp, model: keras.Model, *args, **kwargs):
        """Fits the model, after the data-driven initialisation of the batch norms of the
        operations that `inherit_weights` initialised as identities
        (`calibrate_batch_norms` on up to `calibration_samples` training inputs)."""
        names = self._to_calibrate.pop(id(model), [])
        if names and self.calibration_samples:
            x = _first_inputs(args, kwargs, self.calibration_samples)
            if x is not None:
                calibrate_batch_norms(model, names, x)
        return model.fit(*args, **kwargs)
