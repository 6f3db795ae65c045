"""`TransformableMixture`: TAS's Gumbel-softmax over widths and depths (Dong & Yang 2019).

Width choices (layer choices whose candidates are `tfnas.blocks.transformable.WidthView`s
of one shared kernel) and depth choices (the input choices of `tfnas.blocks.repeat`) each
get a logit vector alpha. Per step, for every width choice, the authors' `select2withP`:

- the Gumbel-softmax probabilities `softmax((log_softmax(alpha) + g) / tau)` are drawn
  (noise `g` set between steps, like `GumbelMixture`);
- two distinct widths `(a, b)` are sampled from them (`set_pairs`, drawn by the trainer's
  resample hook from the seeded training random state);
- the output is `p_a * CWI(view_a(x)) + p_b * CWI(view_b(x))`, with `(p_a, p_b)` the
  softmax of the two selected perturbed logits over tau (differentiable in alpha) and CWI
  the channel-wise interpolation of each view to the larger of the two widths
  (`tfnas.search.tas.interpolation_matrix`).

Depth choices mix every candidate depth's output with the full Gumbel-softmax weights
(`select2withP(..., just_prob=True)`). In one-architecture mode (`set_architecture`)
both compute exactly that architecture's widths and depths.

Deviation: at a depth choice the authors interpolate each candidate depth's output to the
largest width among them; here they are summed as stored, zero-padded to the stage's full
width (the residual sums of the search network pad the same way, the authors'
`additive_func`), which keeps the choice a plain weighted sum of its inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import numpy as np

from tfnas.blocks.rules.gumbel import GumbelMixture
from tfnas.blocks.rules.softmax import is_layer_choice
from tfnas.blocks.transformable import is_width_choice
from tfnas.search import tas


@keras.saving.register_keras_serializable(package="tfnas")
class TransformableMixture(GumbelMixture):
    """TAS's width (two sampled widths, channel-wise interpolation) and depth mixtures.

    The optimizer leaves the weights of unselected widths untouched (`trains_one_path`:
    their gradient is zero), as the authors' PyTorch code, where they get no gradient.

    Args:
        temperature: the initial tau (> 0).
        init_scale: standard deviation of the initial alphas (TAS: 0.01).
        **kwargs: the arguments of `SoftmaxMixture` (seed, initial_alphas).
    """

    trains_one_path = True

    def __init__(self, temperature: float = 5.0, init_scale: float = 0.01, **kwargs):
        super().__init__(hard=False, temperature=temperature, init_scale=init_scale, **kwargs)
        self._pairs: dict[str, keras.Variable] = {}
        self._interpolation: dict[str, np.ndarray] = {}

    def build(self, choice):
        name = choice.choice_name
        if is_layer_choice(choice):
            if not is_width_choice(choice):
                kinds = sorted({type(c).__name__ for c in choice.candidates})
                raise ValueError(
                    f"TAS searches channel counts and depths: choice {name!r} has candidates "
                    f"{kinds}, not width views of one shared convolution. Build the space "
                    "with tfnas.blocks.transformable (e.g. tfnas.spaces.ResNetSpace)."
                )
            super().build(choice)
            if name not in self._pairs:
                self._pairs[name] = keras.Variable(
                    np.zeros(2, "int32"), dtype="int32", trainable=False, name="pair"
                )
                widths = [view.filters for view in choice.candidates]
                self._interpolation[name] = tas.interpolation_matrices(
                    widths, choice.candidates[0].shared.filters
                )
            return
        if any(len(subset) != 1 for subset in choice.subsets):
            raise ValueError(
                f"TAS's depth choices pick one input. Received: choice {name!r} with subsets "
                f"{choice.subsets}."
            )
        known = name in self._masks
        super().build(choice)
        if not known:
            initial = self.initial_alphas.get(name)
            if initial is None or len(initial) != len(choice.subsets):
                initial = self._rng.normal(0.0, self.init_scale, len(choice.subsets))
            self._alphas[name] = keras.Variable(
                np.asarray(initial, dtype="float32"), trainable=True, name="alpha"
            )
            self._noise[name] = keras.Variable(
                np.zeros(len(choice.subsets), "float32"), trainable=False, name="gumbel"
            )

    # --- Sampling ----------------------------------------------------------------------

    @property
    def width_choice_names(self) -> list[str]:
        return list(self._pairs)

    def set_pairs(self, pairs: Mapping[str, Sequence[int]]) -> None:
        """Assigns the two sampled candidate indices of the named width choices."""
        for name, pair in pairs.items():
            self._pairs[name].assign(np.asarray(pair, dtype="int32"))

    def sample_pairs(self, rng: np.random.Generator) -> dict[str, list[int]]:
        """Two distinct widths per width choice, drawn from the current Gumbel-softmax
        probabilities (as `torch.multinomial(probs, 2, False)`); one candidate: (0, 0)."""
        alphas = self.get_alphas()
        noise = {n: keras.ops.convert_to_numpy(self._noise[n].value) for n in self._pairs}
        tau = float(keras.ops.convert_to_numpy(self._tau.value))
        pairs = {}
        for name in self._pairs:
            logits = (np.asarray(alphas[name]) + noise[name]) / tau
            probs = np.exp(logits - logits.max())
            probs = (probs + 1e-7) / (probs + 1e-7).sum()
            if len(probs) == 1:
                pairs[name] = [0, 0]
            else:
                pairs[name] = [int(i) for i in rng.choice(len(probs), 2, replace=False, p=probs)]
        return pairs

    # --- Forward pass ------------------------------------------------------------------

    def mix_layers(self, choice, inputs, training=None):
        ops = keras.ops
        name = choice.choice_name
        mixing = self._mixing.value
        single = ops.cast(ops.argmax(ops.convert_to_tensor(self._masks[name])), "int32")
        pair = ops.convert_to_tensor(self._pairs[name])
        use_pair = ops.cast(mixing, "int32")
        first = use_pair * pair[0] + (1 - use_pair) * single
        second = use_pair * pair[1] + (1 - use_pair) * single
        logits = self.sample_logits(name) / self._tau.value
        selected = ops.softmax(ops.stack([ops.take(logits, first), ops.take(logits, second)]))
        selected = mixing * selected + (1.0 - mixing) * ops.convert_to_tensor([1.0, 0.0])
        size = len(choice.candidates)
        # Per-candidate weights: the two selected widths' (they add up when both are one).
        weights = selected[0] * ops.one_hot(first, size) + selected[1] * ops.one_hot(second, size)
        largest = ops.maximum(first, second)  # Candidates are in ascending width.
        matrices = ops.take(ops.convert_to_tensor(self._interpolation[name]), largest, axis=1)
        # One convolution for every width (they slice one kernel); the unselected widths
        # have weight 0, so their batch norms get no gradient (their moving statistics
        # do follow every step).
        convolved = choice.candidates[0].shared.convolve(inputs)
        outputs = ops.stack([v.finish(convolved, training=training) for v in choice.candidates])
        mixed = matrices * ops.cast(weights, matrices.dtype)[:, None, None]
        return ops.einsum("kbhwc,kcd->bhwd", outputs, ops.cast(mixed, outputs.dtype))

    def mix_inputs(self, choice, inputs, training=None):
        weights, _ = self._weights(choice.choice_name)
        total = None
        for index, subset in enumerate(choice.subsets):
            tensor = inputs[subset[0]]
            term = tensor * keras.ops.cast(weights[index], tensor.dtype)
            total = term if total is None else total + term
        return total

    def structure(self) -> dict:
        """`SoftmaxMixture.structure`, plus `"depths": {name: [candidate values]}`."""
        structure = super().structure()
        structure["depths"] = {
            name: [dict(values) for values in choices[0].candidate_values]
            for name, choices in self._choices.items()
            if not is_layer_choice(choices[0])
        }
        return structure

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("hard", None)
        return config
