"""MANAS: multi-agent neural architecture search on shared weights (Carlucci et al. 2019).

MANAS (arXiv 1909.01051) makes every decision of the space an independent agent with a
distribution over its actions (`tfnas.search.manas.MultiAgentBandit`). One round per
training step:

1. every agent draws its action; the architecture they form trains on the training batch
   (one path, `prepare_training_step`);
2. its reward, the accuracy on the next validation batch with the weights just updated,
   is measured (`tfnas.engine.manas_steps.TrainedPathRewardStep`, before the next weight
   step, and at the end of each epoch for the epoch's last batch), and every agent
   updates from it with its bandit rule: EXP3 with importance-weighted estimates
   (`variant="exp3"`, MANAS) or the additive least-squares fit of MANAS-LS
   (`variant="least_squares"`, the agents exploring uniformly).

Once the supernet is trained, the first candidate is the argmax of every agent's final
distribution (the paper's derived architecture, which it retrains); further candidates
(`max_trials > 1`) are samples of the agents' distributions, ranked like any trial with
inherited weights. The agents' estimates, their round count, the pending path and the
random states are in the oracle state and in each supernet checkpoint, so an interrupted
search resumes exactly.

Deviations (see also `tfnas.search.manas`): the paper's own constants could not be
checked here; the defaults are the textbook anytime EXP3 rate and no extra exploration.
The reward's forward pass leaves the batch-norm moving statistics unchanged;
candidates recalibrate them anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tfnas import validation
from tfnas.search import encoding
from tfnas.search.manas import MultiAgentBandit
from tfnas.tuners.distribution import DistributionOracle

if TYPE_CHECKING:
    from tfnas.blocks.rules import MixingRule
    from tfnas.engine.manas_steps import TrainedPathRewardStep

logger = logging.getLogger(__name__)


class MANAS(DistributionOracle):
    """MANAS (Carlucci et al. 2019): one bandit agent per decision, on shared weights.

    Every training step the agents draw an architecture, it trains on the batch, and its
    accuracy on the next `reward_split` batch is the reward every agent learns from (see
    the module docstring). The derived architecture is the argmax of every agent's final
    distribution (proposed first); further candidates are sampled from the agents.

    Args:
        objective: the candidates' objective, measured with inherited weights.
        max_trials: candidates evaluated (default 1: the derived architecture only).
        variant: "exp3" (MANAS: EXP3 agents, importance-weighted estimates, exponential
            weights) or "least_squares" (MANAS-LS: uniform exploration, reward fit as a
            sum of per-agent action values by least squares; derivation by the argmax of
            the fitted values).
        learning_rate: EXP3's constant learning rate; None (default): the anytime
            `sqrt(ln K / (t K))` of each agent (K its actions, t the round).
        exploration: EXP3's uniform exploration mixture gamma in [0, 1) (default 0).
        reward_split: the batches the rewards come from: "validation" (the paper's) or
            "training".
        **kwargs: the arguments of `WeightSharingOracle` (constraints,
            bn_recalibration_batches, seed, hyperparameters, ...).

    Example:

    ```python
    oracle = tfnas.oracles.MANAS(variant="exp3", seed=0)
    tuner = tfnas.Tuner(build, oracle=oracle, directory="runs", project_name="manas")
    tuner.search(x, y, epochs=10, validation_data=(x_val, y_val))
    best = tuner.get_best_models(1)[0]  # the derived architecture, inherited weights
    oracle.distributions()  # {decision name: each agent's probabilities}
    ```
    """

    def __init__(
        self,
        objective="val_accuracy",
        max_trials: int = 1,
        *,
        variant: str = "exp3",
        learning_rate: float | None = None,
        exploration: float = 0.0,
        reward_split: str = "validation",
        **kwargs,
    ):
        # Checked now, by the agents' own checks, before any supernet is built.
        probe = MultiAgentBandit([1], variant, learning_rate, exploration)
        self.variant, self.learning_rate = probe.variant, probe.learning_rate
        self.exploration = probe.exploration
        self.reward_split = validation.check_one_of(
            "reward_split", reward_split, ("validation", "training")
        )
        # The actions of the path trained last and not yet rewarded.
        self._played: list[int] | None = None
        # One entry per supernet epoch: {"epoch", "rounds", "mean_reward", "derived"}.
        self.history: list[dict[str, Any]] = []
        self._epoch_rewards: list[float] = []
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)

    # --- The agents -----------------------------------------------------------------------

    core_name = "agents"

    def make_core(self, categories, seed) -> MultiAgentBandit:
        return MultiAgentBandit(
            categories,
            variant=self.variant,
            learning_rate=self.learning_rate,
            exploration=self.exploration,
            seed=seed,
        )

    def core_is_untouched(self, core: MultiAgentBandit) -> bool:
        return core.rounds == 0

    @property
    def agents(self) -> MultiAgentBandit:
        """The agents of the searched decisions, made on first use."""
        return self.core

    def sample_architecture(self, rng=None) -> encoding.Values:
        """A sample of the agents' distributions (default: with the agents' random state)."""
        agents = self.agents
        return self.to_values(agents.sample(rng))

    def derive(self) -> encoding.Values:
        """The derivation: the argmax of every agent's final distribution."""
        return self.to_values(self.agents.most_likely())

    def distributions(self) -> dict[str, list[float]]:
        """`{decision name: the agent's final distribution over its candidates}`."""
        return self.named_rows(self.agents.final_distributions())

    # --- Training -------------------------------------------------------------------------

    def prepare_training_step(
        self, rule: MixingRule, step: int, path: int, progress: float
    ) -> None:
        """The agents draw the architecture of this batch; it waits for its reward."""
        if self._played is not None:
            # Never rewarded (a state saved mid-round): dropped; no agent learned from it,
            # so the estimates stay those of the rewarded rounds.
            logger.debug("MANAS drops the unrewarded path %s.", self._played)
        # Decisions inactive in an architecture (conditional spaces) learn as sampled.
        self._played = self.agents.sample()
        rule.set_architecture(self.to_values(self._played))

    def make_architecture_step(self) -> TrainedPathRewardStep:
        """The reward step: the accuracy of the path trained last, on the next batch."""
        from tfnas.engine.manas_steps import TrainedPathRewardStep

        return TrainedPathRewardStep(
            pending=self._pending_path, learn=self._learn, split=self.reward_split, owner="MANAS"
        )

    def _pending_path(self) -> encoding.Values | None:
        return None if self._played is None else self.to_values(self._played)

    def _learn(self, values: Mapping[str, Any], reward: float) -> None:
        if self._played is None or dict(values) != self._pending_path():
            raise ValueError(
                f"MANAS learns from the path it trained last ({self._pending_path()}). "
                f"Received: values={dict(values)!r}"
            )
        self.agents.update(self._played, reward)
        self._played = None
        self._epoch_rewards.append(float(reward))

    def on_supernet_epoch_end(self, epoch, evaluate, logs=None, callbacks=None) -> None:
        agents = self.agents
        rewards = self._epoch_rewards
        entry = {
            "epoch": int(epoch),
            "rounds": agents.rounds,
            "mean_reward": sum(rewards) / len(rewards) if rewards else None,
            "derived": self.derive(),
        }
        self._epoch_rewards = []
        self.history.append(entry)
        logger.info(
            "MANAS epoch %d: %d rounds, mean reward %s, derived %s",
            epoch + 1,
            entry["rounds"],
            entry["mean_reward"],
            entry["derived"],
        )

    # --- State ----------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["manas"] = {
            "agents": self.core_state(),
            "played": self._played,
            "epoch_rewards": list(self._epoch_rewards),
            "history": list(self.history),
        }
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        saved = state.get("manas", {})
        self.restore_core(saved.get("agents"))
        played = saved.get("played")
        self._played = None if played is None else [int(a) for a in played]
        self._epoch_rewards = list(saved.get("epoch_rewards", []))
        self.history = list(saved.get("history", []))
