"""ASNG-NAS: the adaptive stochastic natural gradient on shared weights (Akimoto et al. 2019).

ASNG-NAS (arXiv 1905.08537) relaxes the architecture into a categorical distribution over
every choice of the space (`tfnas.search.asng.CategoricalASNG`, independent decisions) and
optimizes it jointly with the supernet's weights, with no architecture learning rate to
tune. Each training step, as the authors' CIFAR-10 search (`classification/train.py` of
github.com/shirakawas/ASNG-NAS) does it:

1. the distribution draws lambda = 2 fresh architectures, the supernet computes the loss of
   each on the next validation batch with the shared weights, and theta takes one ASNG step
   from their ranking (`tfnas.engine.asng_steps.LossRankingStep`, run by the trainer before
   the weight step);
2. the distribution draws lambda = 2 architectures for the weights, and both train on the
   same training batch, their gradients averaged into one update (`paths_per_step`, with
   `path_gradients = "mean"`, as the code's `loss / lam`).

Once the supernet is trained, the first candidate is the most likely architecture (the
argmax of every decision, the paper's result, which the authors retrain); further candidates
(`max_trials > 1`) are samples of the final distribution, ranked like any trial with
inherited weights. Theta, the step-size adaptation and both random states are in the oracle
state and in each supernet checkpoint, so an interrupted search resumes exactly.

Deviations from the authors' code:

- In step order the theta update of a batch comes before its weight update (the engine runs
  architecture steps before weight steps); the code updates the weights first. The two
  updates alternate the same way; only the very first theta step sees untrained weights.
- The theta losses leave the batch-norm moving statistics unchanged (PyTorch's train mode
  updates them with the validation batch); candidates recalibrate them anyway.
- The core's own deviations (ties of losses <= 0, `delta_max`, a margin with no freedom on
  tiny spaces) are in `tfnas.search.asng`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tfnas import validation
from tfnas.search import encoding
from tfnas.search.asng import CategoricalASNG
from tfnas.tuners.distribution import DistributionOracle

if TYPE_CHECKING:
    from tfnas.blocks.rules import MixingRule
    from tfnas.engine.asng_steps import LossRankingStep

logger = logging.getLogger(__name__)


class ASNGNAS(DistributionOracle):
    """ASNG-NAS (Akimoto et al. 2019): a categorical distribution learned by the adaptive
    stochastic natural gradient, jointly with the shared weights.

    Every training step ranks lambda fresh samples of the distribution by their loss on one
    `theta_split` batch and takes one ASNG step (ranking utility +1/-1, 0 on a tie; the
    step size `delta_init / Delta` adapts to the signal-to-noise ratio of successive steps
    against `alpha`), then trains lambda samples on the training batch. The derived
    architecture is the most likely one (proposed first); further candidates are sampled
    from the final distribution. See the module docstring for the deviations from the
    authors' code.

    Args:
        objective: the candidates' objective, measured with inherited weights.
        max_trials: candidates evaluated (default 1: the most likely architecture only).
        alpha: the ASNG threshold of the signal-to-noise ratio (1.5).
        delta_init: the initial step size of theta (1.0).
        lam: architectures per step, for theta and for the weights (2).
        theta_min: the smallest probability of a candidate (None: the code's
            `1 / (d (K - 1))`, `d` the searched decisions; a tiny space with one decision
            or two binary ones needs an explicit value below `1 / K`).
        theta_split: the batches the theta losses come from: "validation" (the code's) or
            "training".
        **kwargs: the arguments of `WeightSharingOracle` (constraints,
            bn_recalibration_batches, seed, hyperparameters, ...).

    Example:

    ```python
    oracle = tfnas.oracles.ASNGNAS(seed=0)
    tuner = tfnas.Tuner(build, oracle=oracle, directory="runs", project_name="asng")
    tuner.search(x, y, epochs=10, validation_data=(x_val, y_val))
    best = tuner.get_best_models(1)[0]  # the most likely architecture, inherited weights
    oracle.theta()  # {decision name: probabilities}
    ```
    """

    def __init__(
        self,
        objective="val_accuracy",
        max_trials: int = 1,
        *,
        alpha: float = 1.5,
        delta_init: float = 1.0,
        lam: int = 2,
        theta_min: float | None = None,
        theta_split: str = "validation",
        **kwargs,
    ):
        self.alpha = validation.check_float("alpha", alpha, low=0, low_inclusive=False)
        self.delta_init = validation.check_float(
            "delta_init", delta_init, low=0, low_inclusive=False
        )
        self.lam = validation.check_int("lam", lam, low=2)
        self.theta_min = (
            None
            if theta_min is None
            else validation.check_float(
                "theta_min", theta_min, low=0, high=1, low_inclusive=False, high_inclusive=False
            )
        )
        self.theta_split = validation.check_one_of(
            "theta_split", theta_split, ("validation", "training")
        )
        self._pair: list[encoding.Values] = []
        self._theta_samples: list[list[int]] = []
        # One entry per supernet epoch: {"epoch", "convergence", "delta", "converged",
        # "most_likely"} (the code's logged convergence: mean of max theta).
        self.history: list[dict[str, Any]] = []
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)

    # The engine averages the lambda paths' gradients (the authors' `loss / lam`).
    path_gradients = "mean"

    @property
    def paths_per_step(self) -> int:
        return self.lam

    # --- The distribution ---------------------------------------------------------------

    core_name = "distribution"

    def make_core(self, categories, seed) -> CategoricalASNG:
        return CategoricalASNG(
            categories,
            alpha=self.alpha,
            delta_init=self.delta_init,
            lam=self.lam,
            theta_min=self.theta_min,
            seed=seed,
        )

    def core_is_untouched(self, core: CategoricalASNG) -> bool:
        return core.num_updates + core.num_skipped == 0

    @property
    def asng(self) -> CategoricalASNG:
        """The distribution over the searched decisions, made on first use."""
        return self.core

    def sample_architecture(self, rng=None) -> encoding.Values:
        """A sample of the distribution (default: with the training random state)."""
        asng = self.asng
        return self.to_values(asng.sample(self.training_rng if rng is None else rng))

    def derive(self) -> encoding.Values:
        """The most likely architecture: the argmax of every decision (the derivation)."""
        return self.to_values(self.asng.most_likely())

    def theta(self) -> dict[str, list[float]]:
        """`{decision name: probabilities of its candidates}`."""
        return self.named_rows(self.asng.theta)

    # --- Training -----------------------------------------------------------------------

    def prepare_training_step(
        self, rule: MixingRule, step: int, path: int, progress: float
    ) -> None:
        """Trains `lam` samples of the distribution on each batch, one per path."""
        if path == 0:
            self._pair = [self.sample_architecture() for _ in range(self.lam)]
        rule.set_architecture(self._pair[path])

    def make_architecture_step(self) -> LossRankingStep:
        """The theta step: `lam` fresh samples ranked by their loss on one batch."""
        from tfnas.engine.asng_steps import LossRankingStep

        return LossRankingStep(
            propose=self._propose_theta_samples,
            learn=self._learn,
            split=self.theta_split,
            owner=type(self).__name__,
        )

    def _propose_theta_samples(self) -> list[encoding.Values]:
        # The indices are kept: decisions inactive in an architecture (conditional spaces)
        # are learned from as sampled, as the code updates every one-hot row.
        self._theta_samples = self.asng.sample_lam()
        return [self.to_values(indices) for indices in self._theta_samples]

    def _learn(self, architectures: Sequence[Mapping[str, Any]], losses: Sequence[float]):
        if len(architectures) != len(self._theta_samples):
            raise ValueError(
                f"ASNGNAS learns from the {len(self._theta_samples)} architectures it proposed. "
                f"Received: {len(architectures)} architectures."
            )
        self.asng.update(self._theta_samples, losses)

    def on_supernet_epoch_end(self, epoch, evaluate, logs=None, callbacks=None) -> None:
        asng = self.asng
        entry = {
            "epoch": int(epoch),
            "convergence": asng.convergence(),
            "delta": asng.delta,
            "converged": asng.converged(),
            "most_likely": self.derive(),
        }
        self.history.append(entry)
        logger.info(
            "ASNGNAS epoch %d: convergence %.4f, delta %.4g, most likely %s",
            epoch + 1,
            entry["convergence"],
            entry["delta"],
            entry["most_likely"],
        )

    # --- State ---------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["asng"] = {"distribution": self.core_state(), "history": list(self.history)}
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        saved = state.get("asng", {})
        self.restore_core(saved.get("distribution"))
        self.history = list(saved.get("history", []))
