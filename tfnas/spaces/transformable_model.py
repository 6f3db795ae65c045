"""`TransformableModel`: TAS's searchable widths over a user's own Keras model.

TAS (Dong & Yang 2019) prunes a given network: every convolution's output width becomes a
choice among `tfnas.search.tas.width_choices` of its channels. `TransformableModel(model)`
reads a single-input, single-output Keras model (functional or `Sequential`) through its
public serialized form (`model.get_config()`), and rebuilds it with each `Conv2D` as a
`tfnas.blocks.transformable.width_conv`:

* a `Conv2D` (square kernel and strides, "same" or "valid" padding, no dilation or groups)
  with the `BatchNormalization` and the activation layer that directly follow it becomes
  one width choice named after the convolution (`f"{conv}/filters"`). TAS's views are
  conv + batch norm + activation with one batch norm per width, so a convolution without
  a batch norm after it gets one (its bias is then the batch norm's offset; a bias next to
  a batch norm is redundant and dropped);
* a `DepthwiseConv2D` (depth multiplier 1) keeps its input's width: it shares the choice
  of the convolution that feeds it;
* an `Add` is TAS's residual sum (`tfnas.blocks.transformable.residual_sum`): its width is
  that of the input produced by the latest convolution (the main path; the shortcut is
  projected by a 1x1 convolution in fixed mode where the widths differ);
* layers that keep channels apart and map zero to zero (pooling, global pooling, dropout,
  zero padding, ReLU-like activations) pass a searched width through; the first `Dense`
  on a searched width is TAS's classifier (`PaddedDense`); any other layer is copied from
  its config, provided its inputs have a fixed width;
* a convolution whose width reaches the model's output (e.g. a segmentation head) is
  kept at its width, not searched.

Anything else that would see a searched width (a `Flatten`, a `Concatenate`, a standalone
batch norm, a nested model, a layer called twice) is refused with a `ValueError` naming
the layer, when the space is created.

Deviation from TAS: depths are not searched here (an arbitrary model has no stages of
repeated blocks to count); `tfnas.spaces.ResNetSpace` and `MobileNetV2Space` search both.
The base model's weights are not used by the search (TAS searches from scratch); a
trained base model can be the teacher of `Tuner.retrain(..., teacher=model)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import keras
import keras_tuner

from tfnas.blocks import mixing_rule_of
from tfnas.blocks.transformable import PaddedDense, residual_sum, width_conv
from tfnas.search import tas

# Channel-wise layers with f(0) = 0: a searched width's zero padding stays zero.
_PASS_THROUGH = (
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.ZeroPadding2D,
    keras.layers.Identity,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
)
_ZERO_PRESERVING_ACTIVATIONS = {
    "linear", "relu", "relu6", "elu", "selu", "gelu", "silu", "swish", "tanh", "leaky_relu",
    "mish", "hard_silu", "hard_swish",
}  # fmt: skip


def _activation_name(layer) -> str | None:
    """The activation a layer applies, by name, or None when it is not an activation
    layer TAS's views can hold."""
    if isinstance(layer, keras.layers.ReLU):
        config = layer.get_config()
        if config.get("negative_slope") or config.get("threshold"):
            return None
        limits = {None: "relu", 6: "relu6"}  # 6.0 == 6
        return limits.get(config.get("max_value"))
    if isinstance(layer, keras.layers.Activation):
        name = keras.activations.serialize(layer.activation)
        return name if isinstance(name, str) else None
    return None


def _conv_activation(layer) -> str:
    name = keras.activations.serialize(layer.activation)
    return name if isinstance(name, str) else "custom"


@dataclass
class _Node:
    """One step of the rebuilt network: `kind` is "conv", "depthwise", "add", "head" or
    "copy"; `layer` the base layer (the convolution for "conv"/"depthwise")."""

    kind: str
    layer: keras.layers.Layer
    inputs: list[str]
    output: str
    batch_norm: keras.layers.BatchNormalization | None = None
    activation: str | None = None
    absorbed: list[keras.layers.Layer] = field(default_factory=list)


Step = tuple[keras.layers.Layer, list[str], str]


def _graph(model: keras.Model) -> tuple[tuple, list[Step], str]:
    """`(input shape, [(layer, input tensor ids, output tensor id)], output tensor id)` in
    topological order, from the model's public config."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"model must be a keras.Model. Received: model of type {type(model).__name__}"
        )
    if len(model.inputs or []) != 1 or len(model.outputs or []) != 1:
        raise ValueError(
            "TAS transforms a built single-input, single-output Keras model. Received: "
            f"model {model.name!r} with {len(model.inputs or [])} inputs and "
            f"{len(model.outputs or [])} outputs."
        )
    input_shape = tuple(model.inputs[0].shape[1:])
    if isinstance(model, keras.Sequential):
        steps, previous = [], "input"
        for layer in model.layers:
            steps.append((layer, [previous], layer.name))
            previous = layer.name
        return input_shape, steps, previous
    config = model.get_config()
    steps = []
    for entry in config["layers"]:
        layer = model.get_layer(entry["name"])
        if isinstance(layer, keras.layers.InputLayer):
            continue
        nodes = entry.get("inbound_nodes") or []
        if len(nodes) != 1:
            raise ValueError(
                f"TAS cannot transform layer {layer.name!r} ({type(layer).__name__}): it "
                f"is called {len(nodes)} times; a width choice needs one call per layer."
            )
        steps.append((layer, _tensor_ids(nodes[0].get("args", [])), f"{layer.name}:0:0"))
    # One input or output is saved as [name, node, index], several as a list of them.
    ins, outs = config["input_layers"], config["output_layers"]
    (input_name, node, index) = ins if isinstance(ins[0], str) else ins[0]
    (output_name, out_node, out_index) = outs if isinstance(outs[0], str) else outs[0]
    # The input layer's tensor is named like any other.
    steps = [(layer, ["input" if t == f"{input_name}:{node}:{index}" else t for t in inputs],
              out) for layer, inputs, out in steps]  # fmt: skip
    return input_shape, steps, f"{output_name}:{out_node}:{out_index}"


def _tensor_ids(value) -> list[str]:
    """The `name:node:index` ids of the Keras tensors in a serialized call's arguments."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        name, node, index = value["config"]["keras_history"]
        return [f"{name}:{node}:{index}"]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _tensor_ids(item)]
    return []


def _refuse(layer, why: str) -> ValueError:
    return ValueError(
        f"TAS cannot make layer {layer.name!r} ({type(layer).__name__}) width-searchable: {why}"
    )


def _nodes(steps) -> list[_Node]:
    """Fuses each convolution with the batch norm and activation that directly follow."""
    consumers: dict[str, int] = {}
    for _, inputs, _ in steps:
        for t in inputs:
            consumers[t] = consumers.get(t, 0) + 1
    nodes, absorbed = [], set()
    by_input = {}
    for index, (_, inputs, _) in enumerate(steps):
        if len(inputs) == 1:
            by_input.setdefault(inputs[0], []).append(index)
    for index, (layer, inputs, output) in enumerate(steps):
        if index in absorbed:
            continue
        if isinstance(layer, keras.Model):
            raise _refuse(layer, "a nested model; pass a flat functional or Sequential model.")
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)) and not (
            isinstance(layer, keras.layers.SeparableConv2D)
        ):
            node = _Node(
                "depthwise" if isinstance(layer, keras.layers.DepthwiseConv2D) else "conv",
                layer, inputs, output,
            )  # fmt: skip

            def follower(tensor):
                candidates = by_input.get(tensor, [])
                if consumers.get(tensor) == 1 and len(candidates) == 1:
                    return candidates[0]
                return None

            nxt = follower(output)
            if nxt is not None and isinstance(steps[nxt][0], keras.layers.BatchNormalization):
                node.batch_norm = steps[nxt][0]
                node.absorbed.append(steps[nxt][0])
                absorbed.add(nxt)
                node.output = steps[nxt][2]
                nxt = follower(node.output)
            conv_activation = _conv_activation(layer)
            if conv_activation != "linear":
                if node.batch_norm is not None:
                    raise _refuse(
                        layer,
                        f"it applies {conv_activation!r} before the BatchNormalization "
                        f"{node.batch_norm.name!r}; TAS's width views apply convolution, batch "
                        "norm, then activation.",
                    )
                node.activation = conv_activation
            elif nxt is not None and _activation_name(steps[nxt][0]) is not None:
                node.activation = _activation_name(steps[nxt][0])
                node.absorbed.append(steps[nxt][0])
                absorbed.add(nxt)
                node.output = steps[nxt][2]
            nodes.append(node)
        elif isinstance(layer, keras.layers.Add):
            nodes.append(_Node("add", layer, inputs, output))
        elif isinstance(layer, keras.layers.Dense):
            nodes.append(_Node("head", layer, inputs, output))
        else:
            nodes.append(_Node("copy", layer, inputs, output))
    return nodes


def _check_conv(layer) -> None:
    config = layer.get_config()
    kernel, strides = tuple(config["kernel_size"]), tuple(config["strides"])
    problems = []
    if kernel[0] != kernel[1]:
        problems.append(f"kernel_size={kernel} is not square")
    if strides[0] != strides[1]:
        problems.append(f"strides={strides} are not square")
    if tuple(config.get("dilation_rate", (1, 1))) != (1, 1):
        problems.append(f"dilation_rate={tuple(config['dilation_rate'])}")
    if config.get("groups", 1) != 1:
        problems.append(f"groups={config['groups']}")
    if config.get("depth_multiplier", 1) != 1:
        problems.append(f"depth_multiplier={config['depth_multiplier']}")
    if config.get("data_format", "channels_last") != "channels_last":
        problems.append(f"data_format={config['data_format']!r}")
    if config["padding"] not in ("same", "valid"):
        problems.append(f"padding={config['padding']!r}")
    if problems:
        raise _refuse(layer, "; ".join(problems) + ".")


class TransformableModel(keras_tuner.HyperModel):
    """A user's Keras model with TAS-searchable convolution widths (see the module
    docstring).

    Args:
        model: a built single-input, single-output Keras model (functional or
            `Sequential`); its layers are read from `model.get_config()`.
        width_fractions: the searched fractions of every convolution's width.
        learning_rate: Adam's learning rate, when `model` is not compiled (a compiled
            model's compile config is reused).
        name: the model name (default: the base model's).

    Raises:
        ValueError: naming the first layer TAS cannot make width-searchable.

    Example:

    ```python
    space = tfnas.spaces.TransformableModel(my_cnn)
    tuner = tfnas.Tuner(space, oracle=tfnas.oracles.TAS(flops_ratio=0.5, seed=0),
                        directory="runs", project_name="prune")
    tuner.search(x, y, epochs=10, validation_data=(x_val, y_val))
    pruned, _ = tuner.retrain(None, x, y, epochs=10, teacher=trained_my_cnn)
    ```
    """

    supernet_form = True

    def __init__(
        self,
        model: keras.Model,
        width_fractions: Sequence[float] = tas.WIDTH_FRACTIONS,
        *,
        learning_rate: float = 1e-3,
        name: str | None = None,
    ):
        self.input_shape, steps, self.output = _graph(model)
        self.nodes = _nodes(steps)
        self.width_fractions = tuple(float(f) for f in width_fractions)
        if not learning_rate > 0:
            raise ValueError(
                f"learning_rate must be > 0. Received: learning_rate={learning_rate!r}"
            )
        self.learning_rate = float(learning_rate)
        self.compile_config = model.get_compile_config() if model.compiled else None
        super().__init__(name=name or model.name)
        self.choices = self._resolve()
        if not self.choices:
            raise ValueError(
                f"model {model.name!r} has no Conv2D whose width TAS can search (every "
                "convolution's width reaches the output or none is there)."
            )
        for conv in self.choices.values():
            tas.width_choices(conv.layer.filters, self.width_fractions)  # Checks them.

    def _resolve(self) -> dict[str, _Node]:
        """`{width choice: its convolution node}` and each tensor's choice
        (`self._tensor_choice`); convolutions whose width reaches the output are fixed."""
        fixed: set[str] = set()
        while True:
            choice_of: dict[str, str | None] = {"input": None}
            order: dict[str, int] = {}
            choices = {}
            for node in self.nodes:
                layer = node.layer
                sources = [choice_of[t] for t in node.inputs]
                if node.kind in ("conv", "depthwise"):
                    _check_conv(layer)
                if node.kind == "conv":
                    searched = layer.name not in fixed
                    choice_of[node.output] = layer.name if searched else None
                    if searched:
                        choices[layer.name] = node
                        order[layer.name] = len(order)
                elif node.kind == "depthwise":
                    choice_of[node.output] = sources[0]
                elif node.kind == "add":
                    searched = [s for s in sources if s is not None]
                    choice_of[node.output] = max(searched, key=order.get) if searched else None
                elif node.kind == "head" or not any(s is not None for s in sources):
                    choice_of[node.output] = None
                elif isinstance(layer, _PASS_THROUGH) or (
                    _activation_name(layer) in _ZERO_PRESERVING_ACTIVATIONS
                ):
                    choice_of[node.output] = sources[0]
                else:
                    searched = next(s for s in sources if s is not None)
                    raise _refuse(
                        layer,
                        f"it reads the searched width of {searched!r}; only pooling, "
                        "dropout, zero padding, activations with f(0) = 0, Add and Dense "
                        "may (a Flatten mixes channels and positions: use "
                        "GlobalAveragePooling2D; a BatchNormalization must directly follow "
                        "its convolution).",
                    )
            reaching = choice_of[self.output]
            if reaching is None:
                self._tensor_choice = choice_of
                return choices
            fixed.add(reaching)

    def widths(self, channels: int) -> list[int]:
        """The candidate widths of a convolution of `channels` channels."""
        return tas.width_choices(channels, self.width_fractions)

    def build(self, hp):
        supernet = mixing_rule_of(hp) is not None
        inputs = keras.Input(self.input_shape)
        tensors = {"input": inputs}
        choice_of = self._tensor_choice
        for node in self.nodes:
            layer = node.layer
            args = [tensors[t] for t in node.inputs]
            source = choice_of[node.inputs[0]] if node.inputs else None
            if node.kind in ("conv", "depthwise") and choice_of[node.output] is not None:
                config = layer.get_config()
                depthwise = node.kind == "depthwise"
                choice = choice_of[node.output]
                filters = self.choices[choice].layer.filters
                momentum = node.batch_norm.momentum if node.batch_norm is not None else 0.99
                tensors[node.output] = width_conv(
                    hp, choice, args[0], filters, config["kernel_size"][0],
                    self.widths(filters), strides=config["strides"][0],
                    padding=config["padding"], depthwise=depthwise,
                    activation=None if node.activation == "linear" else node.activation,
                    batch_norm_momentum=momentum, input_choice=source,
                )  # fmt: skip
            elif node.kind == "add":
                order = list(self.choices)
                ranked = sorted(
                    range(len(args)),
                    key=lambda i: -1 if choice_of[node.inputs[i]] is None
                    else order.index(choice_of[node.inputs[i]]),
                )  # fmt: skip
                x = args[ranked[-1]]
                for i in ranked[:-1]:
                    x = residual_sum(supernet, args[i], x)
                tensors[node.output] = x
            elif node.kind == "head" and source is not None and supernet:
                tensors[node.output] = PaddedDense.from_config(layer.get_config())(args[0])
            else:
                x = args[0] if len(args) == 1 else args
                for part in [layer, *node.absorbed]:
                    x = type(part).from_config(part.get_config())(x)
                tensors[node.output] = x
        model = keras.Model(inputs, tensors[self.output], name=self.name)
        if self.compile_config is not None:
            model.compile_from_config(self.compile_config)
        else:
            model.compile(
                keras.optimizers.Adam(self.learning_rate),
                keras.losses.SparseCategoricalCrossentropy(from_logits=self._logits()),
                metrics=["accuracy"],
            )
        return model

    def _logits(self) -> bool:
        """Whether the model outputs logits (no softmax at its end)."""
        last = self.nodes[-1].layer
        return keras.activations.serialize(getattr(last, "activation", None)) != "softmax" and not (
            isinstance(last, (keras.layers.Softmax,))
        )

    def uniform_values(self, fraction: float = 1.0) -> dict:
        """Every searched convolution at the largest candidate width at most `fraction` of
        its channels (at least the smallest): `fraction=1.0` is the base model's shape;
        TAS's uniform baseline at a FLOPs ratio r uses `fraction=sqrt(r)`."""
        if not 0.0 < float(fraction) <= 1.0:
            raise ValueError(f"fraction must be in (0, 1]. Received: fraction={fraction!r}")
        values = {}
        for choice, node in self.choices.items():
            widths = self.widths(node.layer.filters)
            kept = [w for w in widths if w <= fraction * node.layer.filters + 1e-9]
            values[f"{choice}/filters"] = max(kept) if kept else widths[0]
        return values
