"""TAS: network pruning via transformable architecture search (Dong & Yang 2019).

TAS (arXiv 1905.09717) searches the width of every convolution and the depth of every
stage of a given network for a FLOPs target, then trains the found shape with knowledge
distillation from the unpruned network. In tfnas:

1. The space is width- and depth-searchable: `tfnas.spaces.ResNetSpace` (the paper's
   CIFAR ResNet) and `tfnas.spaces.MobileNetV2Space` build every convolution once at full
   width with one view per candidate width (`tfnas.blocks.transformable`) and every
   stage's depth with `repeat`; `tfnas.spaces.TransformableModel(model)` makes the
   convolution widths of a user's own Keras model searchable (naming any layer it cannot
   transform). Any space built from `tfnas.blocks.transformable.width_conv` is
   searchable; a choice of other candidates is refused, naming it.
2. The supernet trainer alternates, as the authors' `search_train_v2`: a weight step on a
   training batch and an alpha step on a validation batch (`FirstOrderStep`, Adam with
   lr 1e-3, betas (0.5, 0.999), weight decay 1e-3), each with its own sample: Gumbel noise,
   two widths per convolution combined by channel-wise interpolation, depths mixed by
   their Gumbel-softmax weights (`tfnas.blocks.rules.TransformableMixture`). The alpha
   loss adds the FLOPs term `+-2 log E[FLOPs]` around the target
   (`tfnas.engine.tas_steps.ExpectedFlopsLoss`). The temperature follows the authors'
   cosine schedule from 5 to 0.1, set once per epoch.
3. The derived shape is every choice's argmax (the authors' "genotype"): the first trial,
   scored with the supernet's weights; its plain Keras model is at the FLOPs target.
4. The paper then trains that shape from scratch with knowledge distillation from the
   unpruned network (alpha 0.9, temperature 4): `tuner.retrain(teacher=unpruned, ...)`
   (`tfnas.engine.distillation`), with the unpruned network from
   `space.uniform_values(1.0)` trained by `tuner.retrain(space.uniform_values(1.0), ...)`.

The Gumbel noise and the sampled widths come from the oracle's seeded training random
state, which is in the oracle state and every supernet checkpoint: an interrupted search
resumes exactly.

Deviations: the classifier's multiply-adds are left out of the FLOPs count (they do not
depend on the searched widths but the last one's); the depth mixture sums zero-padded
outputs instead of interpolating them (see `tfnas.blocks.rules.transformable`); the
space compiles with Adam (the paper: SGD with Nesterov momentum for 600 CIFAR epochs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tfnas import validation
from tfnas.search import encoding, tas
from tfnas.tuners.differentiable import DifferentiableOracle
from tfnas.tuners.gumbel import _check_temperature

if TYPE_CHECKING:
    from tfnas.blocks.rules import TransformableMixture


class TAS(DifferentiableOracle):
    """TAS (Dong & Yang 2019): searched widths and depths at a FLOPs target.

    Args:
        objective: the candidates' objective, measured with inherited weights.
        max_trials: candidates evaluated (default 1: the derived shape only; more are
            sampled from the learned distributions).
        flops_ratio: the target multiply-adds as a share of the unpruned network's, in
            (0, 1] (the paper's runs use 0.47-0.57).
        flops_weight: the FLOPs term's weight (TAS: 2).
        flops_tolerance: the band below the target within which the term is 0, as a
            share of the unpruned multiply-adds (TAS: 0.05).
        temperature: `(initial, final)` Gumbel-softmax temperature (TAS: (5, 0.1)), cosine.
        arch_learning_rate, arch_beta_1, arch_beta_2, arch_weight_decay: the alphas' Adam
            (TAS: 1e-3, 0.5, 0.999, 1e-3).
        **kwargs: the arguments of `WeightSharingOracle` (constraints,
            bn_recalibration_batches, seed, hyperparameters, ...).

    Example:

    ```python
    space = tfnas.spaces.ResNetSpace((8, 8, 1), 10, depth=14, base_filters=8)
    tuner = tfnas.Tuner(space, oracle=tfnas.oracles.TAS(flops_ratio=0.5, seed=0),
                        directory="runs", project_name="tas")
    tuner.search(x, y, epochs=10, validation_data=(x_val, y_val))
    teacher, _ = tuner.retrain(space.uniform_values(1.0), x, y, epochs=10)
    pruned, _ = tuner.retrain(None, x, y, epochs=10, teacher=teacher)
    ```
    """

    # `tfnas-search --oracle=tas` without `--space` searches this one.
    default_space = "resnet"

    def __init__(
        self,
        objective="val_accuracy",
        max_trials: int = 1,
        *,
        flops_ratio: float = 0.5,
        flops_weight: float = 2.0,
        flops_tolerance: float = 0.05,
        temperature: Sequence[float] = (5.0, 0.1),
        arch_learning_rate: float = 1e-3,
        arch_beta_1: float = 0.5,
        arch_beta_2: float = 0.999,
        arch_weight_decay: float = 1e-3,
        **kwargs: Any,
    ):
        self.flops_ratio = validation.check_float(
            "flops_ratio", flops_ratio, low=0.0, high=1.0, low_inclusive=False
        )
        self.flops_weight = validation.check_float("flops_weight", flops_weight, low=0.0)
        self.flops_tolerance = validation.check_float(
            "flops_tolerance", flops_tolerance, low=0.0, high=1.0
        )
        self.temperature = _check_temperature(temperature)
        super().__init__(
            objective,
            max_trials,
            arch_learning_rate=arch_learning_rate,
            arch_beta_1=arch_beta_1,
            arch_beta_2=arch_beta_2,
            arch_weight_decay=arch_weight_decay,
            **kwargs,
        )

    def _new_rule(self) -> TransformableMixture:
        from tfnas.blocks.rules import TransformableMixture

        return TransformableMixture(
            temperature=self.temperature[0], seed=self.seed, initial_alphas=self._alphas
        )

    def temperature_at(self, progress: float) -> float:
        """tau in the epoch `progress` (in [0, 1]) falls in: the authors set it once per
        epoch, `set_tau(tau_max, tau_min, epoch / epochs)`."""
        epochs = self._supernet_epochs or 1
        epoch = min(int(progress * epochs), epochs - 1)
        return tas.temperature_at(epoch / epochs, *self.temperature)

    def _architecture_step_options(self, steps) -> dict[str, Any]:
        from tfnas.engine import tas_steps

        return {
            **super()._architecture_step_options(steps),
            "resample": tas_steps.TransformableSampling(
                lambda: self.training_rng, self.temperature_at
            ),
            "loss_term": tas_steps.ExpectedFlopsLoss(
                self.flops_ratio, weight=self.flops_weight, tolerance=self.flops_tolerance
            ),
        }

    def flops(self) -> dict[str, float]:
        """The FLOPs term's view after the last step: `{"target", "largest", "smallest"}`
        multiply-adds in millions (the search's convolutions)."""
        term = None if self._architecture_step is None else self._architecture_step.loss_term
        if term is None or not term.layers:
            raise RuntimeError("TAS.flops needs the supernet: train it first (search()).")
        return {"target": term.target, "largest": term.largest, "smallest": term.smallest}

    def labels(self) -> dict[str, list[str]]:
        labels = super().labels()
        for name, values in self._structure.get("depths", {}).items():
            labels[name] = [str(next(iter(v.values()))) for v in values]
        return labels

    def _derive(self, space, rng, forbidden: Mapping[str, Sequence[int]]) -> encoding.Values:
        """Every width and depth choice's argmax (or a sample of its distribution)."""
        if not self._structure:
            raise RuntimeError("TAS.derive needs the supernet: train it first (search()).")
        space = space or self.encoding()
        candidates = {**self._structure["candidates"], **self._structure.get("depths", {})}
        picks: dict[str, Any] = {}
        for name, probabilities in self.distributions().items():
            if rng is None:
                index = int(np.argmax(probabilities))
            else:
                index = int(rng.choice(len(probabilities), p=probabilities))
            picks.update(candidates[name][index])

        def assemble(decision: encoding.Decision, _: encoding.Values) -> Any:
            if decision.name in self.frozen_values:
                return self.frozen_values[decision.name]
            value = picks.get(decision.name)
            if value is None or not decision.accepts(value):
                return decision.hp.default
            return value

        return space.assemble(assemble)
