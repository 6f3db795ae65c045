"""`SuperKernelThresholds`: the super-kernel of Single-Path NAS (Stamoulis et al. 2019).

Single-Path NAS (arXiv 1904.02877) does not mix candidate paths: each MBConv layer is one
over-parameterized block whose weights hold every candidate (the `SharedMBConv` of the
layer's `MBConvView`s): the centre `k x k` of the largest depthwise kernel is the kernel of
size k, the first `in * e` expanded channels are those of expansion e. The weights decide
which candidate the layer is, by thresholds on the norms of weight groups (the authors'
`DepthwiseConv2DMasked`):

    kernel:     w = w_{k1} + g_{k2} * (w_{k2} - w_{k1} + g_{k3} * (...)),
                g_{kj} = 1(||ring j of the depthwise kernel|| > t_{kj})
    expansion:  channels [in*e_{j-1}, in*e_j) kept while g_{e2} ... g_{ej} = 1,
                g_{ej} = 1(||channel group j of the kernel-masked depthwise kernel|| > t_{ej})
    skip:       the block's branch times g_skip = 1(||channel group 1|| > t_skip), where the
                layer may be dropped (the candidate `skip`, a `keras.layers.Identity`)

Each indicator is 1(x >= 0) in the forward pass and sigmoid(x) in the backward pass (the
reference's `stop_gradient(1(x >= 0) - sigmoid(x)) + sigmoid(x)`), with `x = norm - t`;
the thresholds `t` (this rule's architecture parameters, zeros at the start, so every
layer starts as its largest candidate) and the weights learn from one loss. The candidate
weights that the latency term needs (`relaxed_weights`) follow from the same indicators:
`(k_i, e_j)` weighs `g_skip * w_k(i) * w_e(j)`, `w(i) = g_2 ... g_i * (1 - g_{i+1})`, and
`skip` weighs `1 - g_skip`; in the forward pass they are the one-hot of the candidate the
layer computes. `candidate_weights` is that formula, for tensors and for plain floats.

Deviations from the reference, each so the super-kernel computes exactly the candidate it
selects: dropped expansion channels are zeroed after the depthwise batch norm and
activation (the reference zeroes their kernel, after which batch norm and ReLU still emit
a constant `relu(beta)` per channel), and `skip` multiplies the block's branch (after the
projection's batch norm) by g_skip rather than the depthwise kernel. Kernel sizes and
expansions may be more than two (nested thresholds, as the kernel and expansion pairs of
the paper); every (kernel, expansion) pair must be a candidate. Candidates with
squeeze-and-excitation, an expansion of 1 beside larger ones, or several activations have
no super-kernel form here and are refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from tfnas.blocks.rules.softmax import SoftmaxMixture, is_layer_choice
from tfnas.blocks.shared import MBConvView


@dataclasses.dataclass(frozen=True)
class SuperKernelLayout:
    """Which candidate of a choice is which (kernel index, expansion index), or skip.

    Attributes:
        kernel_sizes, expansions: the sorted sizes and ratios of the super-kernel.
        candidates: per candidate, `(kernel index, expansion index)`, or None for skip.
    """

    kernel_sizes: tuple[int, ...]
    expansions: tuple[int, ...]
    candidates: tuple[tuple[int, int] | None, ...]

    @property
    def has_skip(self) -> bool:
        return None in self.candidates

    @property
    def num_thresholds(self) -> int:
        """Kernel thresholds, expansion thresholds and the skip threshold, in that order."""
        return len(self.kernel_sizes) - 1 + len(self.expansions) - 1 + int(self.has_skip)

    def split(self, values: Sequence[Any]) -> tuple[list, list, Any]:
        """`values` (one per threshold) as (kernel, expansion, skip or None)."""
        k, e = len(self.kernel_sizes) - 1, len(self.expansions) - 1
        values = list(values)
        return values[:k], values[k : k + e], values[k + e] if self.has_skip else None

    def gates_of(self, index: int) -> list[float]:
        """The indicator values under which the layer computes candidate `index`."""
        candidate = self.candidates[index]
        k, e = len(self.kernel_sizes) - 1, len(self.expansions) - 1
        if candidate is None:
            return [0.0] * (k + e) + [0.0]
        kernel, expansion = candidate
        gates = [float(kernel > j) for j in range(k)] + [float(expansion > j) for j in range(e)]
        return gates + ([1.0] if self.has_skip else [])

    def to_json(self) -> dict[str, Any]:
        return {
            "kernel_sizes": list(self.kernel_sizes),
            "expansions": list(self.expansions),
            "candidates": [None if c is None else list(c) for c in self.candidates],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SuperKernelLayout:
        return cls(
            tuple(data["kernel_sizes"]),
            tuple(data["expansions"]),
            tuple(None if c is None else tuple(c) for c in data["candidates"]),
        )


def _nested(gates: Sequence[Any]) -> list[Any]:
    """Weights of sizes 1..n from the n-1 nested indicators: `g_2 ... g_i (1 - g_{i+1})`."""
    weights, keep = [], 1.0
    for gate in gates:
        weights.append(keep * (1.0 - gate))
        keep = keep * gate
    return [*weights, keep]


def candidate_weights(layout: SuperKernelLayout, gates: Sequence[Any]) -> list[Any]:
    """Each candidate's weight given the indicator values `gates` (tensors or floats).

    With 0/1 indicators it is the one-hot of the candidate the layer computes; with
    sigmoid values the weights are still >= 0 and sum to 1.
    """
    kernel, expansion, skip = layout.split(gates)
    w_kernel, w_expansion = _nested(kernel), _nested(expansion)
    on = 1.0 if skip is None else skip
    return [
        1.0 - on if c is None else on * w_kernel[c[0]] * w_expansion[c[1]]
        for c in layout.candidates
    ]


def selected_candidate(layout: SuperKernelLayout, margins: Sequence[float]) -> int:
    """The candidate the hard indicators `1(margin >= 0)` select (`margin = norm - t`)."""
    weights = candidate_weights(layout, [float(m >= 0) for m in margins])
    return int(np.argmax(weights))


def _layout(choice) -> SuperKernelLayout:
    """The super-kernel layout of `choice`, or a ValueError naming what is wrong."""
    name = choice.choice_name
    views = [c for c in choice.candidates if isinstance(c, MBConvView)]
    others = [
        c for c in choice.candidates
        if not isinstance(c, (MBConvView, keras.layers.Identity))
    ]  # fmt: skip
    skips = len(choice.candidates) - len(views) - len(others)
    shared = {id(v.shared) for v in views}
    if others or not views or len(shared) != 1 or skips > 1:
        kinds = sorted({type(c).__name__ for c in choice.candidates})
        raise ValueError(
            f"SuperKernelThresholds computes choice {name!r} as one super-kernel: its "
            "candidates must be MBConv views sharing one set of weights, plus at most one "
            "Identity (skip). Search a space built for it (MobileSpace(joint_ops=True), "
            f"ProxylessSpace). Received: candidates of types {kinds}."
        )
    sources = {id(v.batch_norms_from or v) for v in views}
    if len(sources) != 1:
        raise ValueError(
            f"The super-kernel of choice {name!r} computes with one set of batch norms, but "
            "its candidates have their own (switchable) ones. Search MobileSpace(joint_ops="
            "True) or ProxylessSpace, or build the candidates with "
            "`tfnas.blocks.shared.mbconv_views(..., switchable_batch_norm=False)`."
        )
    kernel_sizes = tuple(sorted({v.kernel_size for v in views}))
    expansions = tuple(sorted({v.expansion for v in views}))
    pairs = [(v.kernel_size, v.expansion) for v in views]
    if sorted(pairs) != sorted((k, e) for k in kernel_sizes for e in expansions):
        raise ValueError(
            f"The super-kernel of choice {name!r} needs every (kernel size, expansion) pair "
            f"as a candidate. Received: {sorted(pairs)}."
        )
    if any(v.se_ratio > 0 for v in views) or len({v.activation for v in views}) > 1:
        raise ValueError(
            f"The super-kernel of choice {name!r} has no squeeze-and-excitation and one "
            "activation (Single-Path NAS's space). Received: se_ratios "
            f"{sorted({v.se_ratio for v in views})}, activations "
            f"{sorted({v.activation for v in views})}."
        )
    if len(expansions) > 1 and expansions[0] == 1:
        raise ValueError(
            f"The super-kernel of choice {name!r} cannot hold expansion 1 (no expansion "
            "convolution) beside larger expansions, whose channels it nests. Received: "
            f"expansions={list(expansions)}."
        )
    return SuperKernelLayout(
        kernel_sizes,
        expansions,
        tuple(
            None
            if not isinstance(c, MBConvView)
            else (kernel_sizes.index(c.kernel_size), expansions.index(c.expansion))
            for c in choice.candidates
        ),
    )


def _norm(tensor):
    # The small constant keeps the gradient finite at an all-zero group.
    return keras.ops.sqrt(keras.ops.sum(keras.ops.square(tensor)) + 1e-12)


def _indicator(margin):
    """1(margin >= 0) forward, sigmoid(margin) backward."""
    soft = keras.ops.sigmoid(margin)
    hard = keras.ops.cast(margin >= 0, soft.dtype)
    return keras.ops.stop_gradient(hard - soft) + soft


@keras.saving.register_keras_serializable(package="tfnas")
class SuperKernelThresholds(SoftmaxMixture):
    """Single-Path NAS's super-kernel: thresholds on weight norms choose each layer.

    One threshold vector per layer choice (`alpha_variables`: kernel thresholds, then
    expansion thresholds, then the skip threshold; see `SuperKernelLayout`), initialized
    to `initial_alphas` or zeros. In mixture mode (the search) the layer computes the
    candidate its indicators select; `set_gate_dropout` zeroes indicators (the reference's
    warm-up dropout); `set_architecture` makes every layer compute a given candidate.

    Args:
        seed: unused (kept for the rule interface: the rule has no randomness of its own).
        initial_alphas: `{choice_name: thresholds}` to start from (a resumed search).
    """

    shares_weights = True

    def __init__(self, seed: int | None = None, initial_alphas=None, **kwargs):
        super().__init__(seed=seed, initial_alphas=initial_alphas, **kwargs)
        self._layouts: dict[str, SuperKernelLayout] = {}
        # Per choice: the view holding the shared weights and the widest batch norms, and
        # the channel offsets of the expansion groups (0, in*e_1, ..., in*e_max).
        self._views: dict[str, MBConvView] = {}
        self._bounds: dict[str, list[int]] = {}
        self._gate_keep: dict[str, keras.Variable] = {}
        self._architecture_gates: dict[str, np.ndarray] = {}

    def build(self, choice):
        name = choice.choice_name
        if not is_layer_choice(choice):
            raise ValueError(
                f"SuperKernelThresholds searches layer choices only; {name!r} is an input "
                "choice (e.g. a repeat depth). Search a space whose depth is a skip "
                "operation of each block (MobileSpace(joint_ops=True), ProxylessSpace)."
            )
        if name in self._layouts:
            raise ValueError(
                f"SuperKernelThresholds decides each layer from its own weights, so layer "
                f"choices cannot share a name. Received: choice {name!r} twice."
            )
        layout = _layout(choice)
        if self._mixing is None:
            self._mixing = keras.Variable(1.0, dtype="float32", trainable=False, name="mixing")
        size = len(choice.candidates)
        self._layouts[name] = layout
        view = next(c for c in choice.candidates if isinstance(c, MBConvView))
        self._views[name] = view
        self._bounds[name] = [0] + [view.block_input_shape[-1] * e for e in layout.expansions]
        self._choices[name] = [choice]
        self._masks[name] = keras.Variable(
            [1.0] + [0.0] * (size - 1), dtype="float32", trainable=False, name="onehot"
        )
        initial = self.initial_alphas.get(name)
        if initial is None or len(initial) != layout.num_thresholds:
            initial = np.zeros(layout.num_thresholds)
        self._alphas[name] = keras.Variable(
            np.asarray(initial, "float32"), trainable=True, name="threshold"
        )
        self._gate_keep[name] = keras.Variable(
            np.ones(layout.num_thresholds, "float32"), trainable=False, name="gate_keep"
        )
        self._architecture_gates[name] = np.asarray(
            [layout.gates_of(i) for i in range(size)], "float32"
        ).reshape(size, layout.num_thresholds)

    # --- What the oracle reads and sets -----------------------------------------------------

    def layouts(self) -> dict[str, SuperKernelLayout]:
        """Each choice's layout, in build order."""
        return dict(self._layouts)

    def set_gate_dropout(self, keep: Mapping[str, Sequence[float]]) -> None:
        """Multiplies the named choices' indicators by `keep` (0 or 1 each) in mixture mode."""
        for name, values in keep.items():
            self._gate_keep[name].assign(np.asarray(values, "float32"))

    def margins(self) -> dict[str, list[float]]:
        """`norm - t` of every indicator, `{choice_name: [margin]}` (>= 0: on), as the
        learned thresholds set them (no dropout, whatever architecture is being run)."""
        return {
            name: [float(v) for v in keras.ops.convert_to_numpy(keras.ops.stack(m))]
            for name, m in ((n, self._gates(n, learned=True)[1]) for n in self._layouts)
            if m
        }

    # --- Forward pass ---------------------------------------------------------------------

    def _gates(self, name: str, learned: bool = False):
        """`(gates, margins, masked kernel)` of `name`: the indicators as `_gate` sets them
        (or the learned ones alone with `learned`), their margins (tensors, in threshold
        order) and the depthwise kernel masked by the kernel indicators."""
        layout = self._layouts[name]
        kernel = self._views[name].shared.depthwise_kernel.value
        thresholds = self._alphas[name].value
        sizes, k_max = layout.kernel_sizes, layout.kernel_sizes[-1]

        def gate(index, margin):
            return _indicator(margin) if learned else self._gate(name, index, margin)

        def centre(size):  # 1 on the centre size x size of the kernel
            mask = np.zeros(tuple(kernel.shape[:2]) + (1, 1), "float32")
            first = (k_max - size) // 2
            mask[first : first + size, first : first + size] = 1.0
            return mask

        gates, margins, inner = [], [], centre(sizes[0])
        masked, keep = kernel * inner, 1.0
        for j, size in enumerate(sizes[1:]):
            outer = centre(size)
            ring = kernel * (outer - inner)
            margins.append(_norm(ring) - thresholds[j])
            gates.append(gate(j, margins[-1]))
            keep = keep * gates[-1]
            masked = masked + keep * ring
            inner = outer
        bounds = self._bounds[name]
        groups = [masked[:, :, bounds[j] : bounds[j + 1], :] for j in range(1, len(bounds) - 1)]
        if layout.has_skip:
            groups.append(masked[:, :, bounds[0] : bounds[1], :])
        for group in groups:
            index = len(margins)
            margins.append(_norm(group) - thresholds[index])
            gates.append(gate(index, margins[-1]))
        return gates, margins, masked

    def _gate(self, name: str, index: int, margin):
        """Indicator `index` of `name`: learned (times its dropout) in mixture mode, the
        architecture's in one-architecture mode."""
        mixing = self._mixing.value
        learned = _indicator(margin) * self._gate_keep[name].value[index]
        fixed = keras.ops.sum(self._masks[name].value * self._architecture_gates[name][:, index])
        return mixing * learned + (1.0 - mixing) * fixed

    def relaxed_weights(self, name: str):
        """The candidates' weights: one-hot of the computed candidate in the forward pass,
        the indicators' sigmoid surrogates in the backward pass."""
        gates, _, _ = self._gates(name)
        layout = self._layouts[name]
        return keras.ops.stack(
            [keras.ops.cast(w, "float32") for w in candidate_weights(layout, gates)]
        )

    def mix_layers(self, choice, inputs, training=None):
        name = choice.choice_name
        layout = self._layouts[name]
        gates, _, depthwise = self._gates(name)
        _, expansion_gates, skip_gate = layout.split(gates)
        view = self._views[name]
        widest = view.batch_norms_from or view
        shared, ops = view.shared, keras.ops
        act = keras.activations.get(view.activation)
        x = inputs
        if layout.expansions[-1] != 1:
            x = ops.conv(x, shared.expand_kernel.value, padding="same")
            x = act(widest.expand_bn(x, training=training))
        x = ops.depthwise_conv(x, depthwise, strides=shared.strides, padding="same")
        x = act(widest.depthwise_bn(x, training=training))
        bounds = self._bounds[name]
        keep, parts = 1.0, [ops.ones((bounds[1],), x.dtype)]
        for j, gate in enumerate(expansion_gates, start=1):
            keep = keep * gate
            parts.append(ops.ones((bounds[j + 1] - bounds[j],), x.dtype) * ops.cast(keep, x.dtype))
        x = x * ops.concatenate(parts)
        x = widest.project_bn(
            ops.conv(x, shared.project_kernel.value, padding="same"), training=training
        )
        if skip_gate is not None:
            x = x * ops.cast(skip_gate, x.dtype)
        if shared.strides == 1 and view.block_input_shape[-1] == shared.filters:
            x = x + inputs
        return x

    def mix_inputs(self, choice, inputs, training=None):
        raise ValueError(f"SuperKernelThresholds has no input choices ({choice.choice_name!r}).")

    def get_config(self) -> dict:
        return {"seed": self.seed, "initial_alphas": self.initial_alphas}
