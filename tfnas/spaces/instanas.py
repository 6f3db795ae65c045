"""`InstaNASSpace`: the meta-graph, controller and fixed networks of InstaNAS (Cheng et al. 2018).

The authors' CIFAR meta-graph (github.com/AnjieCheng/InstaNAS, `search/models/instanas.py`)
is MobileNetV2's stages where every cell holds five modules side by side: inverted
residual blocks 3x3 / 5x5 with expansion 6 / 3 and a basic residual block. A policy is a
binary matrix `[cells, actions]`: the cell's output is the sum of the modules it runs; a
cell that runs none passes its input on, except the first cell of a stage (it changes
the shape), which then runs its last module (the basic block, the authors' default).

- `meta_graph()`: a Keras model `[images, policies] -> logits` computing every module and
  masking it per input (one model for every policy of a batch; the authors' `forward`).
- `controller()`: a small CNN `images -> probabilities [cells, actions]` (sigmoid), the
  controller of the paper (the authors use a ResNet-8; ours is three convolutions for
  8x8 digits, documented deviation).
- `network(policy)`: the plain network of one policy, only the modules it runs, whose
  layers carry the meta-graph's names (so `inherit(network, meta_graph)` copies weights).
- `build(hp)`: that network from KerasTuner hyperparameters (one `hp.Boolean` per module,
  default the baseline policy: the first action everywhere), so any KerasTuner or tfnas
  multi-trial oracle can search one architecture for every input.
- `module_costs(...)`: the cost of every module at the input shape it sees (multiply-adds,
  or LiteRT latency measured per module: the authors' per-module latency profile), which
  the reward sums per input.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import keras_tuner
import numpy as np
from keras import layers, ops

from tfnas.blocks.ops import mbconv, mobile_bn
from tfnas.validation import check_int

# The authors' five actions: (kind, kernel, expansion).
ACTIONS = (
    ("ir3x3_e6", 3, 6),
    ("ir3x3_e3", 3, 3),
    ("ir5x5_e6", 5, 6),
    ("ir5x5_e3", 5, 3),
    ("basic", 3, 0),
)
# (filters, cells, strides) per stage, at digits size (the authors' CIFAR stages, shortened).
DIGITS_STAGES = ((16, 1, 1), (24, 2, 2), (32, 2, 2))


def basic_block(input_shape, filters: int, strides: int, name: str) -> keras.Model:
    """The basic residual block (two 3x3 convolutions, a 1x1 projection shortcut where the
    shape changes), as a nested functional model."""
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(filters, 3, strides, padding="same", use_bias=False)(inputs)
    x = layers.ReLU()(mobile_bn()(x))
    x = mobile_bn()(layers.Conv2D(filters, 3, padding="same", use_bias=False)(x))
    shortcut = inputs
    if strides != 1 or input_shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides, padding="same", use_bias=False)(inputs)
        shortcut = mobile_bn()(shortcut)
    return keras.Model(inputs, layers.ReLU()(layers.Add()([x, shortcut])), name=name)


class InstaNASSpace(keras_tuner.HyperModel):
    """The InstaNAS meta-graph and its controller (see the module docstring).

    Args:
        input_shape: the images' shape (height, width, channels).
        num_classes: number of classes.
        stages: `(filters, cells, strides)` per stage.
        stem_filters: the 3x3 stem's filters.
        controller_filters: the controller's three convolutions' filters.
        learning_rate: Adam's learning rate of the fixed networks `build(hp)` returns.
        name: the model name.

    Example:

    ```python
    space = tfnas.spaces.InstaNASSpace((8, 8, 1), 10)
    meta = space.meta_graph()                # [images, policies] -> logits
    probabilities = space.controller()(x)    # [batch, cells, actions]
    fixed = space.network(space.baseline_policy())  # MobileNetV2-like, plain Keras
    ```
    """

    actions = tuple(name for name, _, _ in ACTIONS)

    def __init__(
        self,
        input_shape: Sequence[int] = (8, 8, 1),
        num_classes: int = 10,
        *,
        stages: Sequence[Sequence[int]] = DIGITS_STAGES,
        stem_filters: int = 16,
        controller_filters: Sequence[int] = (8, 16, 16),
        learning_rate: float = 1e-3,
        name: str = "instanas",
    ):
        super().__init__(name=name)
        if len(input_shape) != 3 or any(int(d) < 1 for d in input_shape):
            raise ValueError(
                "input_shape must be (height, width, channels), each >= 1. Received: "
                f"input_shape={tuple(input_shape)!r}"
            )
        self.input_shape = tuple(int(d) for d in input_shape)
        self.num_classes = check_int("num_classes", num_classes, low=2)
        self.stages = tuple(
            (check_int("stage filters", f, low=1), check_int("stage cells", n, low=1),
             check_int("stage strides", s, low=1, high=2))
            for f, n, s in stages
        )  # fmt: skip
        if not self.stages:
            raise ValueError(f"stages must hold at least one stage. Received: stages={stages!r}")
        downsampling = int(np.prod([s for _, _, s in self.stages]))
        if self.input_shape[0] % downsampling or self.input_shape[1] % downsampling:
            raise ValueError(
                f"input_shape {self.input_shape} must be divisible by the stages' total "
                f"stride {downsampling}. Received: input_shape={self.input_shape!r}"
            )
        self.stem_filters = check_int("stem_filters", stem_filters, low=1)
        self.controller_filters = tuple(
            check_int("controller_filters", f, low=1) for f in controller_filters
        )
        self.learning_rate = float(learning_rate)
        self.model_name = name
        # (filters, strides, first cell of its stage) of every cell.
        self.cells = [
            (filters, strides if i == 0 else 1, i == 0)
            for filters, count, strides in self.stages
            for i in range(count)
        ]

    @property
    def policy_shape(self) -> tuple[int, int]:
        """`(cells, actions)`."""
        return len(self.cells), len(self.actions)

    @property
    def default_action(self) -> int:
        """The module a stage's first cell runs when its policy runs none (the basic block)."""
        return len(self.actions) - 1

    # --- Policies -----------------------------------------------------------------------

    def check_policy(self, policy) -> np.ndarray:
        """`policy` as a `[cells, actions]` 0/1 float32 array, else a ValueError naming it."""
        array = np.asarray(policy, dtype="float32")
        if array.shape != self.policy_shape or not np.isin(array, (0.0, 1.0)).all():
            raise ValueError(
                f"A policy is a 0/1 matrix of shape {self.policy_shape} (cells, actions). "
                f"Received: policy of shape {array.shape} with values {np.unique(array)[:4]}"
            )
        return array

    def baseline_policy(self) -> np.ndarray:
        """The first action (inverted residual 3x3, expansion 6: MobileNetV2's block)
        everywhere, the authors' latency baseline."""
        policy = np.zeros(self.policy_shape, "float32")
        policy[:, 0] = 1.0
        return policy

    def policy_names(self) -> list[str]:
        """The hyperparameter name of every module, row-major over `[cells, actions]`."""
        return [f"cell{t}_{action}" for t in range(len(self.cells)) for action in self.actions]

    def policy_from_values(self, values) -> np.ndarray:
        """The policy of a `{hyperparameter name: bool}` dict (see `build`)."""
        names = self.policy_names()
        missing = [name for name in names if name not in values]
        if missing:
            raise ValueError(f"The values have no entry for {missing[:3]}... Received: {values!r}")
        return np.asarray([float(bool(values[n])) for n in names], "float32").reshape(
            self.policy_shape
        )

    def values_from_policy(self, policy) -> dict[str, bool]:
        """The `{hyperparameter name: bool}` dict of a policy (inverse of `policy_from_values`)."""
        flat = self.check_policy(policy).reshape(-1)
        return {name: bool(flat[i]) for i, name in enumerate(self.policy_names())}

    # --- Models -------------------------------------------------------------------------

    def _modules(self, shape, t: int) -> list[keras.Model]:
        filters, strides, _ = self.cells[t]
        modules = []
        for name, kernel, expansion in ACTIONS:
            full = f"cell{t}_{name}"
            if name == "basic":
                modules.append(basic_block(shape, filters, strides, full))
            else:
                modules.append(mbconv(shape, filters, kernel, expansion, strides, name=full))
        return modules

    def _stem(self, images):
        x = layers.Conv2D(self.stem_filters, 3, padding="same", use_bias=False, name="stem_conv")(
            images
        )
        return layers.ReLU(name="stem_relu")(layers.BatchNormalization(name="stem_bn")(x))

    def _head(self, x):
        x = layers.GlobalAveragePooling2D(name="head_pool")(x)
        return layers.Dense(self.num_classes, name="head_logits")(x)

    def _compile(self, model: keras.Model) -> keras.Model:
        model.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return model

    def meta_graph(self) -> keras.Model:
        """`[images, policies] -> logits`: every module runs, masked per input by its
        policy entry; a cell running none passes its input (or, first in its stage, the
        output of the default module)."""
        images = keras.Input(self.input_shape, name="images")
        policies = keras.Input(self.policy_shape, name="policies")
        x = self._stem(images)
        for t, (_, _, first) in enumerate(self.cells):
            outputs = [module(x) for module in self._modules(tuple(x.shape[1:]), t)]
            gates = [ops.reshape(policies[:, t, a], (-1, 1, 1, 1)) for a in range(len(outputs))]
            mixed = ops.sum(ops.stack([g * out for g, out in zip(gates, outputs)]), axis=0)
            idle = 1.0 - ops.max(policies[:, t, :], axis=1)
            fallback = outputs[self.default_action] if first else x
            x = mixed + ops.reshape(idle, (-1, 1, 1, 1)) * fallback
        return keras.Model([images, policies], self._head(x), name=f"{self.model_name}_meta")

    def network(self, policy) -> keras.Model:
        """The plain network of one policy: only the modules it runs, summed (compiled).
        Its layers carry the meta-graph's names; `inherit` copies the weights."""
        policy = self.check_policy(policy)
        images = keras.Input(self.input_shape, name="images")
        x = self._stem(images)
        for t, (_, _, first) in enumerate(self.cells):
            modules = self._modules(tuple(x.shape[1:]), t)
            running = [modules[a](x) for a in np.flatnonzero(policy[t])]
            if not running:
                running = [modules[self.default_action](x)] if first else [x]
            x = running[0] if len(running) == 1 else layers.Add(name=f"cell{t}_sum")(running)
        return self._compile(keras.Model(images, self._head(x), name=self.model_name))

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        """The network of the policy the hyperparameters select (one `hp.Boolean` per
        module, default: the baseline policy)."""
        baseline = self.baseline_policy().reshape(-1)
        values = {
            name: hp.Boolean(name, default=bool(baseline[i]))
            for i, name in enumerate(self.policy_names())
        }
        return self.network(self.policy_from_values(values))

    def controller(self) -> keras.Model:
        """`images -> probabilities [cells, actions]`: convolutions (the last two strided),
        global pooling and a sigmoid dense layer, as the authors' policy network."""
        images = keras.Input(self.input_shape, name="images")
        x = images
        for i, filters in enumerate(self.controller_filters):
            strides = 1 if i == 0 else 2
            x = layers.Conv2D(filters, 3, strides, padding="same", use_bias=False,
                              name=f"controller_conv{i}")(x)  # fmt: skip
            x = layers.ReLU()(layers.BatchNormalization(name=f"controller_bn{i}")(x))
        x = layers.GlobalAveragePooling2D()(x)
        cells, actions = self.policy_shape
        x = layers.Dense(cells * actions, activation="sigmoid", name="controller_logits")(x)
        return keras.Model(images, layers.Reshape((cells, actions))(x), name="controller")

    # --- Costs --------------------------------------------------------------------------

    def module_costs(self, meta_graph: keras.Model, measure=None) -> tuple[np.ndarray, np.ndarray]:
        """The cost of every module and the cost a cell pays when its policy runs none.

        Args:
            meta_graph: a model of `meta_graph()` (its modules are timed or counted).
            measure: `measure(module model) -> cost`, e.g. a LiteRT median latency; None
                (default): multiply-adds (`tfnas.cost.count_flops`).

        Returns:
            `(costs [cells, actions], idle_costs [cells])`: a stage's first cell running
            no module pays its default module's cost, any other cell nothing.
        """
        from tfnas.cost import count_flops

        measure = measure or count_flops
        costs = np.zeros(self.policy_shape, "float64")
        for t in range(len(self.cells)):
            for a, action in enumerate(self.actions):
                costs[t, a] = float(measure(meta_graph.get_layer(f"cell{t}_{action}")))
        idle = np.asarray(
            [costs[t, self.default_action] if first else 0.0
             for t, (_, _, first) in enumerate(self.cells)]
        )  # fmt: skip
        return costs, idle

    def get_config(self) -> dict:
        return {
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "stages": [list(stage) for stage in self.stages],
            "stem_filters": self.stem_filters,
            "controller_filters": list(self.controller_filters),
            "learning_rate": self.learning_rate,
            "name": self.model_name,
        }


def policy_costs(policies, costs: np.ndarray, idle_costs: np.ndarray) -> np.ndarray:
    """The cost of each policy of `policies [..., cells, actions]`: the sum of the costs of
    the modules it runs, plus each idle cell's `idle_costs` entry."""
    policies = np.asarray(policies, dtype="float64")
    idle = 1.0 - policies.max(axis=-1)
    return (policies * costs).sum(axis=(-2, -1)) + (idle * idle_costs).sum(axis=-1)


def inherit(network: keras.Model, meta_graph: keras.Model) -> keras.Model:
    """Copies the meta-graph's weights into `network` (a `space.network(...)`), by name."""
    for layer in network.layers:
        if layer.weights:
            layer.set_weights(meta_graph.get_layer(layer.name).get_weights())
    return network
