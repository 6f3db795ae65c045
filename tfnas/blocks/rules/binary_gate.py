"""`BinaryGateMixture`: ProxylessNAS's binarized paths (Cai, Zhu, Han 2018, arXiv 1812.00332).

Every choice name has architecture logits alpha (as `SoftmaxMixture`) and binary gates g:
one gate is 1, the others 0, sampled from p = softmax(alpha), so the supernet computes one
path per choice and its activations cost about one path (the authors' `MixedEdge`,
`search/modules/mix_op.py`). The indices and gates are variables set between steps (by
`tfnas.engine.proxyless_steps`), so nothing is retraced.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import keras
import numpy as np

from tfnas import validation
from tfnas.blocks.rules.softmax import SoftmaxMixture, is_layer_choice

BINARY_MODES = ("two", "full")


@keras.saving.register_keras_serializable(package="tfnas")
class BinaryGateMixture(SoftmaxMixture):
    """One sampled path per choice (weight steps); two gated paths for the alpha step.

    Two forward passes, picked when the pass is traced (the weight step's and the
    architecture step's are separate traces):

    - the path pass (default; the authors' `MODE = None`): every layer choice runs only
      its active candidate (`keras.ops.switch`), as `SinglePath` does. `trains_one_path`
      is True, so the trainer's optimizer leaves the weights of the candidates that did not
      run untouched. `sample_path(rng)` draws the active candidates from softmax(alpha)
      (the authors' `binarize()` before every weight step).
    - the gate pass (inside `gate_pass()`; the authors' `MODE = 'two'` or `'full'`): the
      output is `sum_k g_k * o_k(x)` over the involved candidates, with the gates g read
      from a variable (so the step can take dL/dg) and the inactive candidates' outputs
      under `stop_gradient` (the authors' `oi.detach()`): the value is the active path's,
      the weights get no gradient through the inactive path, and dL/dg_j = <o_j(x), dL/dy>.
      "two" involves two candidates sampled by `sample_gates(rng)` (two paths run);
      "full" involves all of them (every candidate runs; its gradients equal those of the
      authors' memory-saving 'full_v2').

    In one-architecture mode (`set_architecture`, used for ranking and export) both passes
    compute exactly that architecture; `use_mixture()` returns to the sampled paths. Input
    choices are not gated: they reduce all their inputs as `SoftmaxMixture`'s mixture does.

    Args:
        binary_mode: "two" or "full" (see above).
        **kwargs: the arguments of `SoftmaxMixture` (seed, init_scale, initial_alphas, ...);
            init_scale 1e-3 is the authors' `arch_init_ratio` for a normal init.
    """

    trains_one_path = True

    def __init__(self, binary_mode: str = "two", **kwargs):
        super().__init__(**kwargs)
        self.binary_mode = validation.check_one_of("binary_mode", binary_mode, BINARY_MODES)
        self._active: dict[str, keras.Variable] = {}
        self._inactive: dict[str, keras.Variable] = {}
        self._gates: dict[str, keras.Variable] = {}
        self._gated = False

    def build(self, choice):
        super().build(choice)
        name = choice.choice_name
        if not is_layer_choice(choice) or name in self._active:
            return
        size = len(choice.candidate_values)
        index = len(self._active)
        self._active[name] = keras.Variable(
            0, dtype="int32", trainable=False, name=f"active_{index}"
        )
        self._inactive[name] = keras.Variable(
            min(1, size - 1), dtype="int32", trainable=False, name=f"inactive_{index}"
        )
        self._gates[name] = keras.Variable(
            [1.0] + [0.0] * (size - 1), dtype="float32", trainable=False, name=f"gates_{index}"
        )

    # --- Sampling -----------------------------------------------------------------------

    @property
    def gate_variables(self) -> list[keras.Variable]:
        """The binary gates, in `choice_names` order (not trainable: the step watches them)."""
        return [self._gates[name] for name in self.choice_names]

    def probabilities(self) -> dict[str, np.ndarray]:
        """`{choice_name: softmax(alpha)}` as float64 numpy (excluded candidates 0)."""
        result = {}
        for name, alpha in self.get_alphas().items():
            logits = np.asarray(alpha, "float64")
            excluded = self.excluded.get(name)
            if excluded:
                logits[excluded] = -np.inf
            weights = np.exp(logits - logits.max())
            result[name] = weights / weights.sum()
        return result

    def set_path(self, indices: Mapping[str, int]) -> None:
        """Activates candidate `indices[name]` of each named choice (one path, gate 1)."""
        for name, index in indices.items():
            size = int(self._gates[name].shape[0])
            self._active[name].assign(int(index))
            self._gates[name].assign(np.eye(size, dtype="float32")[int(index)])

    def active_indices(self) -> dict[str, int]:
        """`{choice_name: the active candidate}`."""
        return {name: int(keras.ops.convert_to_numpy(v.value)) for name, v in self._active.items()}

    def sample_path(self, rng: np.random.Generator) -> dict[str, int]:
        """Draws one candidate per choice from softmax(alpha) and activates it (the path
        of a weight step, or one REINFORCE sample); returns `{choice_name: index}`."""
        indices = {name: int(rng.choice(len(p), p=p)) for name, p in self.probabilities().items()}
        self.set_path(indices)
        return indices

    def sample_gates(self, rng: np.random.Generator) -> dict[str, tuple[int, int]]:
        """The authors' `binarize()` for the alpha step; returns `{name: (active, inactive)}`.

        "two": two candidates drawn from p without replacement (`torch.multinomial(probs,
        2)`: the second from p renormalized without the first), then the active one of the
        two drawn from the softmax of their two alphas. "full": the active one drawn from p
        (the inactive index is unused). The active candidate's gate is 1, the others 0. A
        choice with one candidate keeps it (active and inactive).
        """
        result = {}
        for name, p in self.probabilities().items():
            size = len(p)
            if size == 1:
                first = second = 0
            elif self.binary_mode == "two":
                first = int(rng.choice(size, p=p))
                rest = p.copy()
                rest[first] = 0.0
                second = int(rng.choice(size, p=rest / rest.sum()))
                # softmax over the two alphas = p restricted to them, renormalized.
                if rng.random() >= p[first] / (p[first] + p[second]):
                    first, second = second, first
            else:
                first = int(rng.choice(size, p=p))
                second = first
            self.set_path({name: first})
            self._inactive[name].assign(second)
            result[name] = (first, second)
        return result

    def involved_indices(self, name: str):
        """The candidates of the gate pass: [active, inactive] ("two") or all ("full")."""
        if self.binary_mode == "full":
            return keras.ops.arange(int(self._gates[name].shape[0]), dtype="int32")
        return keras.ops.stack([self._active[name].value, self._inactive[name].value])

    def gate_probabilities(self, name: str):
        """The authors' `current_prob_over_ops`: softmax over the involved candidates'
        alphas at their indices, 0 elsewhere ("two"); softmax(alpha) ("full").
        Differentiable in alpha."""
        logits = self.masked_logits(name)
        if self.binary_mode == "full":
            return keras.ops.softmax(logits)
        involved = self.involved_indices(name)
        probabilities = keras.ops.softmax(keras.ops.take(logits, involved))
        size = int(self._gates[name].shape[0])
        return keras.ops.scatter(keras.ops.expand_dims(involved, 1), probabilities, (size,))

    @contextlib.contextmanager
    def gate_pass(self):
        """Within it, layer choices are traced with the gate pass (see the class doc)."""
        previous, self._gated = self._gated, True
        try:
            yield
        finally:
            self._gated = previous

    # --- Forward pass -------------------------------------------------------------------

    def _index(self, name: str, size: int):
        mixing = self._mixing.value
        active = keras.ops.one_hot(self._active[name].value, size)
        chosen = mixing * active + (1.0 - mixing) * self._masks[name].value
        return keras.ops.cast(keras.ops.argmax(chosen), "int32")

    def mix_layers(self, choice, inputs, training=None):
        name, size = choice.choice_name, len(choice.candidates)
        if size == 1:
            return choice.candidates[0](inputs, training=training)
        if self._gated:
            return self._gate_pass(choice, inputs, training)
        branches = [
            (lambda x, layer=layer: layer(x, training=training)) for layer in choice.candidates
        ]
        return keras.ops.switch(self._index(name, size), branches, inputs)

    def _gate_pass(self, choice, inputs, training):
        name, size = choice.choice_name, len(choice.candidates)
        mixing = self._mixing.value
        mask = self._masks[name].value
        # One-architecture mode: that architecture's one-hot instead of the sampled gates.
        gates = (
            mixing * keras.ops.convert_to_tensor(self._gates[name].value) + (1.0 - mixing) * mask
        )
        active = self._index(name, size)
        candidates = choice.candidates

        def gated(i, detach):
            def run(x):
                output = candidates[i](x, training=training)
                if detach:
                    output = keras.ops.stop_gradient(output)
                return output * keras.ops.cast(gates[i], output.dtype)

            return run

        if self.binary_mode == "full":
            is_active = keras.ops.one_hot(active, size)
            total = None
            for i in range(size):
                output = candidates[i](inputs, training=training)
                on = keras.ops.cast(is_active[i], output.dtype)
                output = on * output + (1.0 - on) * keras.ops.stop_gradient(output)
                term = output * keras.ops.cast(gates[i], output.dtype)
                total = term if total is None else total + term
            return total
        inactive = self._inactive[name].value
        output = keras.ops.switch(active, [gated(i, False) for i in range(size)], inputs)
        other = keras.ops.switch(inactive, [gated(i, True) for i in range(size)], inputs)
        # A stale inactive index equal to the active one (after `set_path` alone) adds nothing.
        keep = keras.ops.cast(keras.ops.not_equal(inactive, active), other.dtype)
        return output + keep * other

    def get_config(self) -> dict:
        return {**super().get_config(), "binary_mode": self.binary_mode}
