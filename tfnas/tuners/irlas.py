"""IRLAS (Guo et al. 2018, arXiv 1812.05285): RL search guided by an expert's topology.

The controller (`tfnas.search.reinforce`'s LSTM with the `Reinforce` oracle's settings) is
rewarded with the trial's objective plus `mirror_weight` times a "mirror stimulus": a
linear function `w^T phi(a) / ||w||` of the architecture's topology features `phi`, whose
weights `w` are fitted by inverse reinforcement learning (Abbeel & Ng's projection method)
so that the expert network's features score higher than those the controller currently
samples. The search is pulled towards the expert's topology while the accuracy still
decides among architectures; as the controller's samples approach the expert, `w` (the
gap between the expert's features and the projection of the policies' features) shrinks
in the directions already matched. The math and its assumptions are in
`tfnas.search.irlas`.

Defaults: `mirror_weight=0.1` (the paper's lambda was not reachable here, only its
abstract): the mirror stimulus is in [-1, 1] and the controller's advantages are
normalized by the spread of the rewards, so 0.1 is about the spread of accuracies between
a search space's good and bad cells, a guide that does not overrule the accuracy;
`refit_interval=8` learned samples (two controller batches) per IRL iteration. Measured on
the digits NAS-Bench-201 table with the ResNet cell as expert (`benchmarks/irlas_mirror.py`,
20 seeds, 100 trials): the controller's final samples are a median 4.5 edges from the
expert with lambda 0 (plain REINFORCE), 2.0 with 0.1, 1.5 with 0.3 and 0 with 1.0 (the
policy converges to the expert), while the 100 deduplicated trials move less (mean
distance 3.97, 3.84, 3.82, 3.75); lambda 1.0 costs about 0.01 of selected test accuracy
there, the expert being no better than the table's good cells.

Deviations from the paper: its agent is BlockQNN's Q-learning agent over layer codes,
here the REINFORCE controller over the space's decisions; its expert is ResNeXt, here any
architecture of the space (`expert=`); see `tfnas.search.irlas` for the feature map and
the IRL details.
"""

from __future__ import annotations

from typing import Any

from tfnas import validation
from tfnas.search import encoding
from tfnas.search.irlas import IRLASController
from tfnas.tuners.reinforce import Reinforce


def check_expert(space: encoding.SpaceEncoding, expert: encoding.Values) -> None:
    """Raises a ValueError naming the first decision of `space` (in space order, among those
    active in the expert's architecture) whose value in `expert` it does not accept.

    A decision the expert gives no value for takes its default, as in KerasTuner (a space
    that grows registers hyperparameters a user may not know of); names the space does
    not (yet) hold are not checked, since a space may register them later.
    """

    def pick(decision: encoding.Decision, _: encoding.Values) -> Any:
        if decision.name not in expert:
            return decision.hp.default
        value = expert[decision.name]
        if not decision.accepts(value):
            raise ValueError(
                f"The expert is not in the search space: {decision.name!r} cannot take "
                f"{value!r} (candidates: {list(decision.candidates)}). Received: "
                f"expert={expert!r}"
            )
        return value

    space.assemble(pick)


class IRLAS(Reinforce):
    """IRLAS (Guo et al. 2018): REINFORCE rewarded with `R + lambda * mirror stimulus`.

    Args:
        objective: the reward's metric (default "val_accuracy").
        max_trials: architectures sampled and evaluated.
        expert: the expert architecture, a values dict of the search space (e.g. the
            NAS-Bench-201 ResNet cell); refused, naming the first decision that cannot
            express it, when the search starts (or here, with `hyperparameters=`).
            Decisions it gives no value for take their default.
        mirror_weight: lambda, the weight of the mirror stimulus (>= 0; 0: the plain
            `Reinforce` oracle, proposing exactly the same trials).
        refit_interval: learned samples per IRL refit of `w` (>= 1).
        num_reference_samples: uniform samples that estimate the initial policy's feature
            expectation `mu_0` (>= 1).
        **kwargs: the arguments of `Reinforce` (controller settings) and of
            `MultiTrialOracle` (seed, hyperparameters, ...).

    Example:

    ```python
    space = tfnas.spaces.NasBench201Space((8, 8, 1), 10, channels=8, cells_per_stage=1)
    resnet = space.expert_values()  # NAS-Bench-201's ResNet cell
    oracle = IRLAS(expert=resnet, mirror_weight=0.1, max_trials=50, seed=0)
    tuner = tfnas.Tuner(space, oracle=oracle, directory="runs", project_name="irlas")
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=2)
    ```
    """

    def __init__(
        self,
        objective: Any = "val_accuracy",
        max_trials: int = 10,
        *,
        expert: encoding.Values,
        mirror_weight: float = 0.1,
        refit_interval: int = 8,
        num_reference_samples: int = 256,
        **kwargs: Any,
    ):
        if not isinstance(expert, dict) or not all(isinstance(k, str) for k in expert):
            raise ValueError(
                "expert must be a dict of hyperparameter names to values (an architecture "
                f"of the space). Received: expert={expert!r}"
            )
        self.expert = dict(expert)
        self.mirror_weight = validation.check_float("mirror_weight", mirror_weight, low=0)
        self.refit_interval = validation.check_int("refit_interval", refit_interval, low=1)
        self.num_reference_samples = validation.check_int(
            "num_reference_samples", num_reference_samples, low=1
        )
        self._checked_encoding: encoding.SpaceEncoding | None = None
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)
        if self.hyperparameters.space:
            self._check_expert()

    def make_search_algorithm(self, seed: int) -> IRLASController:
        return IRLASController(
            expert=self.expert,
            mirror_weight=self.mirror_weight,
            refit_interval=self.refit_interval,
            num_reference_samples=self.num_reference_samples,
            seed=seed,
            reuse_seen=self._reuse_seen and not self.allow_duplicates,
            update_rule=self._update_rule,
            **self._controller_args,
        )

    def _check_expert(self) -> None:
        space = self.encoding()
        if space is not self._checked_encoding:
            check_expert(space, self.expert)
            self._checked_encoding = space

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        if self.hyperparameters.space:
            self._check_expert()
        return super().populate_space(trial_id)

    def mirror(self, values: encoding.Values) -> float:
        """The mirror stimulus of `values` under the current IRL weights, in [-1, 1]."""
        return self.algorithm.mirror(self.encoding(), values)
