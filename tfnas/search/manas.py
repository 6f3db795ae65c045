"""The agents of MANAS: one bandit per decision (Carlucci et al. 2019, arXiv 1909.01051).

MANAS frames NAS as a multi-agent problem: every decision `i` of the space (a choice
point, an edge's operation) is an agent choosing one of its `K_i` actions. Each round `t`
every agent draws an action `A_t^i` from its own distribution `pi_t^i`, the architecture
they form is trained on a training batch with the shared weights, its reward `R_t` (the
accuracy on a validation batch, in [0, 1]) is observed, and every agent updates from that
one global reward, independently of the others. Two variants:

- `"exp3"` (MANAS, the adversarial setting: the shared weights change the reward of an
  architecture from round to round). Each agent runs EXP3 with importance-weighted
  estimates and exponential weights. With the loss `l_t = 1 - R_t`, the estimate of the
  loss of action `k` is `l_t 1{A_t^i = k} / pi_t^i(k)` (unbiased, and bounded below, so the
  weights stay finite; the reward estimate is one minus it), the cumulative estimates
  `L^i` sum them, and

      pi_t^i = (1 - gamma) softmax(-eta_t L^i) + gamma / K_i,
      eta_t = sqrt(ln K_i / (t K_i))   (t = 1, 2, ..., the round being played),

  the anytime EXP3 of Bubeck & Cesa-Bianchi (2012, Theorem 3.1 and its anytime form),
  whose regret is O(sqrt(T K ln K)) per agent: the O(sqrt(T)) of the paper's analysis.
  `learning_rate` replaces `eta_t` by a constant, `exploration` mixes `gamma` of uniform
  exploration in (Auer et al. 2002's EXP3; 0 by default).
- `"least_squares"` (MANAS-LS, the stochastic setting: best-architecture identification).
  The reward is modelled as the sum of per-agent action values, `R_t ~ sum_i
  r^i(A_t^i)`, fit by least squares over the whole history: with `x_t` the concatenated
  one-hot actions of all agents, `r_hat = argmin_r sum_s (R_s - x_s . r)^2`, the
  minimum-norm solution `(X^T X)^+ X^T y` (the per-agent values are defined up to a
  constant per agent, which no argmax sees). Agents explore uniformly (pure exploration);
  each agent's final distribution is the point mass on its best estimated action.

Either way the derived architecture is the argmax of every agent's final distribution
(`most_likely()`).

Sources and deviations: this module was written without the paper's full text at hand
(only its abstract could be read) and no released code of the authors was found; the
estimators and the EXP3 schedule above are the textbook forms the paper builds on, not
constants checked against the paper. In particular the paper's own learning-rate and
exploration constants, and whether its LS agents sample uniformly or from exponential
weights over the LS estimates, are unverified. The least-squares fit keeps the sufficient
statistics `X^T X` and `X^T y` instead of the history (the same estimate, a fixed-size
state).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tfnas import validation
from tfnas.search import base

VARIANTS = ("exp3", "least_squares")


class MultiAgentBandit:
    """Independent bandit agents, one per decision, learning from one global reward.

    Args:
        categories: the number of actions `K_i >= 1` of each agent (an agent with one
            action is carried along and never changes).
        variant: "exp3" (MANAS: EXP3 with importance-weighted estimates) or
            "least_squares" (MANAS-LS: uniform exploration, additive least-squares fit).
        learning_rate: EXP3's constant `eta`; None: the anytime `sqrt(ln K_i / (t K_i))`.
        exploration: EXP3's uniform mixture `gamma` in [0, 1) (0: none).
        seed: seed of the generator `sample` draws from.

    Raises:
        ValueError: on a bad argument.

    Example:

    ```python
    agents = MultiAgentBandit([3, 3, 2], variant="exp3", seed=0)
    for _ in range(500):
        actions = agents.sample()
        agents.update(actions, reward(actions))  # in [0, 1], higher is better
    best = agents.most_likely()
    state = agents.get_state()  # JSON-able, random state included
    ```
    """

    def __init__(
        self,
        categories: Sequence[int],
        variant: str = "exp3",
        learning_rate: float | None = None,
        exploration: float = 0.0,
        seed: int | None = None,
    ):
        self.categories = validation.check_categories(categories)
        self.variant = validation.check_one_of("variant", variant, VARIANTS)
        self.learning_rate = (
            None
            if learning_rate is None
            else validation.check_float("learning_rate", learning_rate, low=0, low_inclusive=False)
        )
        self.exploration = validation.check_float(
            "exploration", exploration, low=0, high=1, high_inclusive=False
        )
        self.rng = np.random.default_rng(seed)
        self._offsets = np.concatenate([[0], np.cumsum(self.categories)]).astype(int)
        size = int(self._offsets[-1])
        # EXP3: the cumulative importance-weighted loss estimates, all agents concatenated.
        self.cumulative_losses = np.zeros(size)
        # Least squares: X^T X and X^T y over the history.
        self.gram = np.zeros((size, size))
        self.moments = np.zeros(size)
        self.rounds = 0

    # --- The distributions ------------------------------------------------------------------

    def _block(self, i: int) -> slice:
        return slice(int(self._offsets[i]), int(self._offsets[i + 1]))

    def eta(self, i: int) -> float:
        """EXP3's learning rate of agent `i` for the round about to be played."""
        if self.learning_rate is not None:
            return self.learning_rate
        k = self.categories[i]
        return math.sqrt(math.log(k) / ((self.rounds + 1) * k))

    def _probabilities(self, i: int) -> np.ndarray:
        k = self.categories[i]
        if self.variant == "least_squares":
            return np.full(k, 1.0 / k)  # Pure exploration.
        logits = -self.eta(i) * self.cumulative_losses[self._block(i)]
        weights = np.exp(logits - logits.max())
        return (1.0 - self.exploration) * weights / weights.sum() + self.exploration / k

    def probabilities(self) -> list[list[float]]:
        """The distribution each agent samples its next action from (one list per agent)."""
        return [self._probabilities(i).tolist() for i in range(len(self.categories))]

    def values(self) -> list[list[float]]:
        """The least-squares action values `r_hat` of each agent (minimum-norm solution)."""
        estimate = np.linalg.pinv(self.gram, hermitian=True) @ self.moments
        return [estimate[self._block(i)].tolist() for i in range(len(self.categories))]

    def final_distributions(self) -> list[list[float]]:
        """Each agent's distribution for the derivation: its sampling distribution under
        EXP3, the point mass on its best least-squares value under MANAS-LS."""
        if self.variant == "exp3":
            return self.probabilities()
        rows = []
        for k, row in zip(self.categories, self.values()):
            mass = [0.0] * k
            mass[int(np.argmax(row))] = 1.0
            rows.append(mass)
        return rows

    def most_likely(self) -> list[int]:
        """The derived architecture: the argmax of every agent's final distribution."""
        return [int(np.argmax(row)) for row in self.final_distributions()]

    def sample(self, rng: np.random.Generator | None = None) -> list[int]:
        """Every agent draws its action (default: from this object's `rng`)."""
        rng = self.rng if rng is None else rng
        draws = rng.random(len(self.categories))
        actions = []
        for i, k in enumerate(self.categories):
            cumulative = np.cumsum(self._probabilities(i))
            j = int(np.searchsorted(cumulative, draws[i], side="right"))
            actions.append(min(j, k - 1))  # A draw beyond a sum rounded below 1.
        return actions

    # --- The update ---------------------------------------------------------------------

    def _check_actions(self, actions: Sequence[int]) -> list[int]:
        d = len(self.categories)
        if isinstance(actions, (str, bytes)) or len(actions) != d:
            raise ValueError(
                f"actions must give one action per agent ({d}). Received: actions={actions!r}"
            )
        for i, (j, k) in enumerate(zip(actions, self.categories)):
            if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or not 0 <= j < k:
                raise ValueError(
                    f"The action of agent {i} must be an int in [0, {k - 1}]. Received: "
                    f"actions={list(actions)!r}"
                )
        return [int(j) for j in actions]

    def update(self, actions: Sequence[int], reward: float) -> None:
        """Every agent learns from the global reward of the actions they played.

        Call it once per `sample()`, with that sample: EXP3's estimates divide by the
        probabilities the actions were drawn with, which only this call changes.

        Args:
            actions: one action per agent, as `sample` returns.
            reward: the architecture's reward, higher is better; in [0, 1] for "exp3".

        Raises:
            ValueError: when the actions do not fit the agents, or the reward is not
                finite (or outside [0, 1] for "exp3").
        """
        actions = self._check_actions(actions)
        if isinstance(reward, bool) or not isinstance(reward, (int, float, np.number)):
            raise ValueError(f"reward must be a number. Received: reward={reward!r}")
        reward = float(reward)
        if not math.isfinite(reward):
            raise ValueError(f"reward must be finite. Received: reward={reward!r}")
        x = np.zeros(len(self.cumulative_losses))
        x[[self._offsets[i] + j for i, j in enumerate(actions)]] = 1.0
        if self.variant == "exp3":
            if not 0.0 <= reward <= 1.0:
                raise ValueError(
                    f"MANAS's EXP3 agents need rewards in [0, 1] (e.g. an accuracy). "
                    f"Received: reward={reward!r}"
                )
            for i, j in enumerate(actions):
                p = self._probabilities(i)[j]
                self.cumulative_losses[self._offsets[i] + j] += (1.0 - reward) / p
        else:
            self.gram += np.outer(x, x)
            self.moments += reward * x
        self.rounds += 1

    # --- State ------------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """Returns the JSON-able state: the estimates, the round and the random state."""
        return {
            "categories": list(self.categories),
            "variant": self.variant,
            "rounds": self.rounds,
            "cumulative_losses": self.cumulative_losses.tolist(),
            "gram": self.gram.tolist(),
            "moments": self.moments.tolist(),
            "rng": base.rng_state(self.rng),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restores what `get_state` returned.

        Raises:
            ValueError: when the state was saved for other categories or another variant.
        """
        if list(state["categories"]) != self.categories or state["variant"] != self.variant:
            raise ValueError(
                f"The MANAS state was saved for categories={list(state['categories'])} and "
                f"variant={state['variant']!r}, not for categories={self.categories} and "
                f"variant={self.variant!r}."
            )
        size = len(self.cumulative_losses)
        self.rounds = int(state["rounds"])
        self.cumulative_losses = np.asarray(state["cumulative_losses"], dtype=float).reshape(size)
        self.gram = np.asarray(state["gram"], dtype=float).reshape(size, size)
        self.moments = np.asarray(state["moments"], dtype=float).reshape(size)
        self.rng = base.rng_from_state(state["rng"])
