"""SMASH's rule: a single path whose convolution kernels a hypernetwork generates.

SMASH (Brock et al. 2017, arXiv 1708.05344) trains a hypernetwork H that maps an encoding
c of a sampled architecture to the weights of that architecture, W = H(c): every training
step samples a random architecture, generates its weights and takes one gradient step on
H (and on the weights it does not generate); candidates are then ranked by their
validation score with generated weights. In the paper H generates the 1x1 convolutions of
each layer (its "memory-bank view": a slice of H's output per layer, read from an encoding
of that layer's reads, writes and operation) and the other weights are learned freely.

`HyperNetworkPath` does this on a tfnas supernet:

- It is a `SinglePath` rule: one active candidate per choice name, set by
  `set_architecture`, switched through int variables without retracing.
- The architecture encoding c is the one-hot of every choice name's active index (the
  `one_hot_architecture` of every name, concatenated). The hypernetwork's first layer is
  linear in c, so it is stored per choice name: each name has an encoder (a `Dense`
  without bias, `hidden_units` outputs) and the hidden code is
  `leaky_relu(sum_n encoder_n(one_hot_n) / sqrt(#names), negative_slope)`, i.e.
  `leaky_relu(W1 c)` for the concatenated c, with W1's blocks created as the choices are
  built (the number of choices is unknown until the last one is built).
- Each choice point (each `LayerChoice` layer, not each name: the cells sharing a decision
  each get their own slice) has one output head per generated kernel of each candidate, a
  `Dense` without bias from the hidden code to the kernel's values. The heads' initial
  scale makes a generated kernel start with the variance of a Glorot-uniform kernel.
- The generated kernels are the `kernel`s of the candidates' 1x1 `Conv2D` layers
  (`generate="1x1"`, the paper's choice) or of every `Conv2D`, `DepthwiseConv2D` and
  `Dense` (`generate="all"`). Those kernel variables become non-trainable: the candidate
  runs through `Layer.stateless_call` with the generated values in their place, and the
  returned non-trainable values (batch-norm moving statistics) are written back.
  Gradients reach the hypernetwork through the generated values.
- `export_layer_choice` writes the generated values of the architecture now set into the
  candidate's kernel variables (unused by the supernet's own forward pass), so
  `tfnas.engine.supernet.collapse` exports standard Keras layers that compute what the
  supernet computes for that architecture.

Example:

```python
rule = HyperNetworkPath()                       # 1x1 kernels generated
supernet = build(tfnas.blocks.SupernetHyperParameters(rule))
values = {"op0": "conv1x1", "op1": "skip"}
rule.set_architecture(values)
supernet.fit(x, y)                               # trains the hypernetwork too
fixed = tfnas.engine.supernet.collapse(supernet, values)  # plain Keras layers
```
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence

import keras

from tfnas.blocks.rules.single_path import SinglePath
from tfnas.blocks.shared import exportable

GENERATE = ("1x1", "all")


def _is_layer_choice(choice) -> bool:
    return hasattr(choice, "candidates")


def kernels_to_generate(layer: keras.layers.Layer, generate: str) -> list:
    """The kernel variables of `layer` (nested layers included) a hypernetwork generates.

    Args:
        layer: a built candidate layer.
        generate: "1x1" for the kernels of 1x1 `Conv2D` layers (SMASH's choice), "all" for
            those of every `Conv2D`, `DepthwiseConv2D` and `Dense`.
    """
    kernels, seen = [], set()
    for sublayer in layer._flatten_layers(include_self=True):
        if isinstance(sublayer, keras.layers.Conv2D):
            wanted = generate == "all" or tuple(sublayer.kernel_size) == (1, 1)
            kernel = sublayer.kernel if wanted else None
        elif isinstance(sublayer, keras.layers.DepthwiseConv2D) and generate == "all":
            kernel = sublayer.kernel
        elif isinstance(sublayer, keras.layers.Dense) and generate == "all":
            kernel = sublayer.kernel
        else:
            kernel = None
        if kernel is not None and id(kernel) not in seen:
            seen.add(id(kernel))
            kernels.append(kernel)
    return kernels


def glorot_std(shape: Sequence[int]) -> float:
    """The standard deviation of a Glorot-uniform kernel of `shape` (Keras's fans)."""
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    return math.sqrt(2.0 / (fan_in + fan_out))


def _takes_training(layer) -> bool:
    return "training" in inspect.signature(layer.call).parameters


@keras.saving.register_keras_serializable(package="tfnas")
class HyperNetworkPath(SinglePath):
    """Single path whose candidates' kernels a hypernetwork generates from the architecture.

    See the module docstring for the mechanism (SMASH, Brock et al. 2017).

    Args:
        generate: which kernels are generated: "1x1" (the kernels of 1x1 `Conv2D` layers,
            the paper's choice; the other weights are learned freely) or "all" (every
            `Conv2D`, `DepthwiseConv2D` and `Dense` kernel of the candidates).
        hidden_units: width of the hypernetwork's hidden code (>= 1).
        negative_slope: slope of the hidden code's leaky ReLU (0.02, the authors' code).
    """

    trains_one_path = True

    def __init__(self, generate: str = "1x1", hidden_units: int = 64, negative_slope=0.02):
        if generate not in GENERATE:
            raise ValueError(f"generate must be one of {GENERATE}. Received: generate={generate!r}")
        if isinstance(hidden_units, bool) or not isinstance(hidden_units, int) or hidden_units < 1:
            raise ValueError(
                f"hidden_units must be an int >= 1. Received: hidden_units={hidden_units!r}"
            )
        if not isinstance(negative_slope, (int, float)) or not 0 <= negative_slope < 1:
            raise ValueError(
                f"negative_slope must be in [0, 1). Received: negative_slope={negative_slope!r}"
            )
        super().__init__()
        self.generate = generate
        self.hidden_units = hidden_units
        self.negative_slope = float(negative_slope)
        self._encoders: dict[str, keras.layers.Dense] = {}
        # id(choice layer) -> per candidate, the kernel variables generated for it.
        self._targets: dict[int, list[list]] = {}

    # --- Building -------------------------------------------------------------------------

    def build(self, choice):
        new_name = choice.choice_name not in self._indices
        super().build(choice)
        if new_name:
            encoder = keras.layers.Dense(
                self.hidden_units,
                use_bias=False,
                kernel_initializer=keras.initializers.RandomNormal(stddev=1.0),
                name=f"{choice.name}_hyper_encoder",
            )
            encoder.build((None, len(choice.candidate_values)))
            # Tracked by the choice layer, so the supernet trains and saves it.
            choice.hypernet_encoder = encoder
            self._encoders[choice.choice_name] = encoder
        if not _is_layer_choice(choice) or id(choice) in self._targets:
            return
        targets = [kernels_to_generate(layer, self.generate) for layer in choice.candidates]
        heads = {}
        for index, kernels in enumerate(targets):
            for j, kernel in enumerate(kernels):
                kernel.trainable = False  # Its value comes from the hypernetwork.
                shape = tuple(kernel.shape)
                # A leaky ReLU of N(0, 1) codes has second moment ~1/2: this scale gives
                # the generated kernel a Glorot kernel's variance.
                stddev = glorot_std(shape) * math.sqrt(2.0 / self.hidden_units)
                head = keras.layers.Dense(
                    math.prod(shape),
                    use_bias=False,
                    kernel_initializer=keras.initializers.RandomNormal(stddev=stddev),
                    name=f"{choice.name}_hyper_head{index}_{j}",
                )
                head.build((None, self.hidden_units))
                heads[f"{index}_{j}"] = head
        choice.hypernet_heads = heads
        self._targets[id(choice)] = targets

    # --- The hypernetwork -------------------------------------------------------------------

    def encoding(self):
        """The hidden code of the architecture now set, shape `(1, hidden_units)`."""
        total = None
        for name, encoder in self._encoders.items():
            size = encoder.kernel.shape[0]
            one_hot = keras.ops.one_hot(self._indices[name].value, size)[None]
            part = encoder(one_hot)
            total = part if total is None else total + part
        total = total / math.sqrt(len(self._encoders))
        return keras.ops.leaky_relu(total, negative_slope=self.negative_slope)

    def generated_kernels(self, choice, index: int) -> list:
        """The kernel variables of candidate `index` of `choice` that are generated."""
        return self._targets.get(id(choice), [[]] * len(choice.candidates))[index]

    def candidate_weights(self, choice, index: int, code=None) -> list:
        """The kernels the hypernetwork generates for candidate `index` of `choice` from the
        architecture now set (or from the hidden `code`)."""
        kernels = self.generated_kernels(choice, index)
        if not kernels:
            return []
        code = self.encoding() if code is None else code
        return [
            keras.ops.reshape(choice.hypernet_heads[f"{index}_{j}"](code), tuple(kernel.shape))
            for j, kernel in enumerate(kernels)
        ]

    def check_generated_weights(self, choice, index: int, weights: Sequence) -> None:
        """Raises unless `weights` match the shapes of the generated kernels of candidate
        `index` of `choice`."""
        kernels = self.generated_kernels(choice, index)
        expected = [tuple(kernel.shape) for kernel in kernels]
        received = [tuple(keras.ops.shape(w)) for w in weights]
        if received != expected:
            key = list(choice.candidate_values[index].values())
            raise ValueError(
                f"The hypernetwork's weights for candidate {key} of choice "
                f"{choice.choice_name!r} (layer {choice.name!r}) do not match its generated "
                f"kernels: expected shapes {expected} ({[k.path for k in kernels]}). "
                f"Received: shapes {received}"
            )

    def run_candidate(self, choice, index: int, inputs, weights: Sequence, training=None):
        """Candidate `index` of `choice` applied to `inputs` with its generated kernels
        replaced by `weights`; its other state updates (batch-norm statistics) are kept."""
        self.check_generated_weights(choice, index, weights)
        layer = choice.candidates[index]
        substitutes = {id(k): w for k, w in zip(self.generated_kernels(choice, index), weights)}
        trainable = [v.value for v in layer.trainable_variables]
        non_trainable = [substitutes.get(id(v), v.value) for v in layer.non_trainable_variables]
        kwargs = {"training": training} if _takes_training(layer) else {}
        outputs, updated = layer.stateless_call(trainable, non_trainable, inputs, **kwargs)
        for variable, value in zip(layer.non_trainable_variables, updated):
            if id(variable) not in substitutes:
                variable.assign(value)
        return outputs

    # --- The rule ---------------------------------------------------------------------------

    def mix_layers(self, choice, inputs, training=None):
        targets = self._targets.get(id(choice))
        if not targets or not any(targets):
            return super().mix_layers(choice, inputs, training=training)
        code = self.encoding()

        def branch(index, layer):
            if not targets[index]:
                return lambda x: layer(x, training=training)
            return lambda x: self.run_candidate(
                choice, index, x, self.candidate_weights(choice, index, code), training
            )

        branches = [branch(i, layer) for i, layer in enumerate(choice.candidates)]
        if len(branches) == 1:
            return branches[0](inputs)
        return keras.ops.switch(self._indices[choice.choice_name].value, branches, inputs)

    def export_layer_choice(self, choice, index, inputs, **kwargs):
        """The chosen candidate as standard layers, its kernels the generated ones.

        Raises:
            ValueError: when the rule's architecture does not select candidate `index` of
                `choice` (call `set_architecture(values)` before `collapse`).
        """
        kernels = self.generated_kernels(choice, index)
        if kernels:
            active = self.active_index(choice.choice_name)
            if active != index:
                raise ValueError(
                    f"HyperNetworkPath generates the weights of the architecture it is set "
                    f"to, but choice {choice.choice_name!r} is set to candidate {active} and "
                    f"the export asks for candidate {index}: call "
                    "rule.set_architecture(values) before collapse(supernet, values). "
                    f"Received: index={index}"
                )
            weights = self.candidate_weights(choice, index)
            self.check_generated_weights(choice, index, weights)
            for kernel, value in zip(kernels, weights):
                kernel.assign(value)
        return exportable(choice.candidates[index])(inputs, **kwargs)

    def get_config(self) -> dict:
        return {
            "generate": self.generate,
            "hidden_units": self.hidden_units,
            "negative_slope": self.negative_slope,
        }
