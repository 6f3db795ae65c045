"""The adaptive stochastic natural gradient of ASNG-NAS (Akimoto et al. 2019, arXiv 1905.08537).

ASNG-NAS relaxes the choice of an architecture into a distribution: every decision `i` of the
space is an independent categorical variable with probabilities `theta[i]` over its `K_i`
candidates. Each step draws `lam` architectures (the paper's lambda = 2), ranks their losses
(the ranking-based utility: +1 for the better, -1 for the worse, 0 for both on a tie) and moves
`theta` along the stochastic natural gradient of the expected utility,

    G = 1/lam sum_k u_k (one_hot(c_k) - theta),   theta <- theta + delta * G / ||G||_F,

where `||G||_F` is the norm under the Fisher metric (computed in the code's coordinates
`theta[i, :K_i - 1]`, the last probability being implied). The step size `delta =
delta_init / Delta` adapts with no tuning: an accumulation of the normalized natural gradients

    s <- (1 - beta) s + sqrt(beta (2 - beta)) F^(1/2) G / ||G||_F,
    gamma <- (1 - beta)^2 gamma + beta (2 - beta),
    Delta <- Delta * exp(beta (gamma - ||s||^2 / alpha)),   beta = delta / sqrt(N),

with `N = sum_i (K_i - 1)`, grows `Delta` (shrinks the step) when the signal-to-noise ratio
`||s||^2 / gamma` of successive steps is below the threshold `alpha` (1.5) and lets it grow
again when it is above. After each step every row of `theta` is projected back to `theta >=
theta_min = 1 / (d (K_i - 1))`, `d` the number of decisions with more than one candidate, and
renormalized to sum 1 (so that every candidate keeps a chance of being sampled).

The update reproduces `CategoricalASNG.update` of the authors' code
(github.com/shirakawas/ASNG-NAS, `classification/util/categorical_asng.py`, the CIFAR-10 NAS
experiment) operation for operation, with its defaults (alpha=1.5, delta_init=1, Delta=1,
gamma=0, s=0), its skip rules (no update when all utilities are equal, i.e. on a tie, or when
the natural gradient is below 1e-18 everywhere) and its ranking utility (mu = ceil(lam / 4)
best get +1/mu, mu worst -1/mu, tied losses share the mean of their utilities). Deliberate
deviations:

- Ties: the code calls two losses tied when `f_j - f_i < 1e-14 * f_i`, which never holds for
  equal losses <= 0 (two exact zeros rank +1/-1 in the code). Here `f_j - f_i <= 1e-14 *
  |f_i|`, identical for positive losses, and equal losses are always a tie.
- `Delta_max`: the classification code ignores its `Delta_max` argument (always inf); here
  `delta_max` is honoured (default inf, the same).
- A margin with no freedom: with few decisions the default `theta_min` leaves a decision no
  room (`K_i * theta_min >= 1`: one decision, or two binary ones), where the code divides 0 by
  0 or freezes `theta` at uniform. Here that raises a ValueError asking for an explicit
  `theta_min`.
- Sampling draws from a seeded numpy Generator (the code uses the global `np.random`) with
  the code's inverse-CDF rule (one uniform number per decision).

The convergence measure of the code's logs is `convergence()` (the mean over decisions of
`max theta[i]`); `converged()` says whether every decision sits at the largest probability
the margin allows, `1 - (K_i - 1) theta_min`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tfnas import validation
from tfnas.search import base

# The code's relative tolerance for tied losses, and its floor on the natural gradient.
_TIE_EPS = 1e-14
_TINY_GRADIENT = 1e-18


def ranking_utility(losses: Sequence[float], rho: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """The ranking-based utility of the code (`CategoricalASNG.utility`, losses minimized).

    The `mu = ceil(lam * rho)` best samples get `+1/mu`, the `mu` worst `-1/mu`, the others 0;
    samples with tied losses share the mean of the utilities of their ranks.

    Args:
        losses: one loss per sample, lower is better.
        rho: fraction of samples rewarded (and penalized); the code's 0.25.

    Returns:
        `(utility, order)`: `order = argsort(losses)` and `utility[r]` the utility of the
        sample `order[r]` (the code's convention).
    """
    f = np.asarray(losses, dtype=float)
    order = np.argsort(f)
    lam = len(f)
    mu = int(math.ceil(lam * rho))
    ranked = np.zeros(lam)
    ranked[:mu] = 1.0 / mu
    ranked[lam - mu :] = -1.0 / mu
    utility = np.zeros(lam)
    start = 0
    for i in range(lam - 1):
        if f[order[i + 1]] - f[order[i]] <= _TIE_EPS * abs(f[order[i]]):
            continue  # Tied with the next one: the group goes on.
        utility[start : i + 1] = np.mean(ranked[start : i + 1])
        start = i + 1
    utility[start:] = np.mean(ranked[start:])
    return utility, order


class CategoricalASNG:
    """ASNG over independent categorical decisions: theta, its adaptive step, no Keras.

    Args:
        categories: the number of candidates `K_i >= 1` of each decision (a decision with one
            candidate is carried along and never changes).
        alpha: the threshold of the signal-to-noise ratio `||s||^2 / gamma` (the paper's 1.5):
            below it the step size shrinks.
        delta_init: the initial step size delta (the paper's 1).
        lam: architectures sampled per update (the paper's 2); `update` accepts any number
            >= 2.
        delta_max: upper bound of `Delta` (the step size never falls below
            `delta_init / delta_max`); None: unbounded (the code's default).
        theta_min: the smallest probability of a candidate. None: the code's
            `1 / (d (K_i - 1))` per decision, `d` the decisions with `K_i > 1`. A number:
            the same margin for every decision, in `(0, 1 / max K_i)`.
        seed: seed of the generator `sample` draws from.

    Raises:
        ValueError: on a bad argument, or when the default margin leaves a decision no room
            (`K_i * theta_min >= 1`, e.g. a single decision or two binary ones).

    Example:

    ```python
    asng = CategoricalASNG([3, 3, 2], seed=0)
    for _ in range(100):
        samples = asng.sample_lam()
        asng.update(samples, [loss(c) for c in samples])  # lower is better
    best = asng.most_likely()
    state = asng.get_state()  # JSON-able, random state included
    ```
    """

    def __init__(
        self,
        categories: Sequence[int],
        alpha: float = 1.5,
        delta_init: float = 1.0,
        lam: int = 2,
        delta_max: float | None = None,
        theta_min: float | None = None,
        seed: int | None = None,
    ):
        self.categories = validation.check_categories(categories)
        self.alpha = validation.check_float("alpha", alpha, low=0, low_inclusive=False)
        self.delta_init = validation.check_float(
            "delta_init", delta_init, low=0, low_inclusive=False
        )
        self.lam = validation.check_int("lam", lam, low=2)
        self.delta_max = (
            None if delta_max is None else validation.check_float("delta_max", delta_max, low=1.0)
        )
        self.theta_min_arg = (
            None
            if theta_min is None
            else validation.check_float(
                "theta_min", theta_min, low=0, high=1, low_inclusive=False, high_inclusive=False
            )
        )
        self.theta_mins = self._margins()
        self.num_params = sum(k - 1 for k in self.categories)  # The code's N.
        self.rng = np.random.default_rng(seed)
        d, k_max = len(self.categories), max(self.categories)
        self._theta = np.zeros((d, k_max))
        for i, k in enumerate(self.categories):
            self._theta[i, :k] = 1.0 / k
        self.s = np.zeros(self.num_params)
        self.gamma = 0.0
        self.Delta = 1.0
        self.num_updates = 0  # Updates that moved theta.
        self.num_skipped = 0  # Calls of `update` that did not (ties, vanishing gradient).

    def _margins(self) -> list[float]:
        valid_d = sum(k > 1 for k in self.categories)
        margins = []
        for i, k in enumerate(self.categories):
            if k == 1:
                margins.append(0.0)
                continue
            if self.theta_min_arg is None:
                margin = 1.0 / (valid_d * (k - 1))
                if k * margin >= 1.0:
                    raise ValueError(
                        f"The default margin theta_min = 1 / (d (K - 1)) = {margin:g} leaves "
                        f"decision {i} (K={k}) no room with d={valid_d} searchable decisions "
                        f"(K * theta_min >= 1). Received: categories={self.categories}. Pass "
                        f"theta_min explicitly, below 1/K = {1.0 / k:g}."
                    )
            else:
                margin = self.theta_min_arg
                if k * margin >= 1.0:
                    raise ValueError(
                        f"theta_min must be below 1/K = {1.0 / k:g} for decision {i} (K={k}). "
                        f"Received: theta_min={margin!r}"
                    )
            margins.append(margin)
        return margins

    # --- The distribution -------------------------------------------------------------------

    @property
    def theta(self) -> list[list[float]]:
        """The probabilities of each decision's candidates (a copy, one list per decision)."""
        return [self._theta[i, :k].tolist() for i, k in enumerate(self.categories)]

    @property
    def delta(self) -> float:
        """The current step size, `delta_init / Delta` (the code's `get_delta()`)."""
        return self.delta_init / self.Delta

    def sample(self, rng: np.random.Generator | None = None) -> list[int]:
        """Draws one architecture: one candidate index per decision.

        Args:
            rng: the generator to draw from (default: this object's `rng`).
        """
        rng = self.rng if rng is None else rng
        draws = rng.random(len(self.categories))
        cumulative = self._theta.cumsum(axis=1)
        sample = []
        for i, k in enumerate(self.categories):
            # The code's rule: index j with cum[j] - theta[j] <= u < cum[j].
            j = int(np.searchsorted(cumulative[i, :k], draws[i], side="right"))
            sample.append(min(j, k - 1))  # u beyond a sum rounded below 1.
        return sample

    def sample_lam(self, rng: np.random.Generator | None = None) -> list[list[int]]:
        """Draws the `lam` architectures of one update."""
        return [self.sample(rng) for _ in range(self.lam)]

    def most_likely(self) -> list[int]:
        """The most likely architecture: the argmax of each decision (the code's `mle`)."""
        return [int(np.argmax(self._theta[i, :k])) for i, k in enumerate(self.categories)]

    def convergence(self) -> float:
        """The code's logged convergence: the mean over decisions of `max theta[i]`."""
        return float(self._theta.max(axis=1).mean())

    def converged(self, tol: float = 1e-6) -> bool:
        """Whether every decision's largest probability reached the margin's bound.

        The bound is `1 - (K_i - 1) theta_min`: the other candidates are at the margin, so
        the distribution cannot concentrate further and samples differ from the most likely
        architecture only by the margin's exploration.
        """
        for i, k in enumerate(self.categories):
            bound = 1.0 - (k - 1) * self.theta_mins[i]
            if self._theta[i, :k].max() < bound - tol:
                return False
        return True

    # --- The update -----------------------------------------------------------------------

    def _one_hot(self, samples: Sequence[Sequence[int]]) -> np.ndarray:
        d = len(self.categories)
        one_hot = np.zeros((len(samples),) + self._theta.shape)
        for n, sample in enumerate(samples):
            if isinstance(sample, (str, bytes)) or len(sample) != d:
                raise ValueError(
                    f"Each sample must give one index per decision ({d}). Received: "
                    f"samples[{n}]={sample!r}"
                )
            for i, (j, k) in enumerate(zip(sample, self.categories)):
                if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or not 0 <= j < k:
                    raise ValueError(
                        f"Index of decision {i} must be an int in [0, {k - 1}]. Received: "
                        f"samples[{n}]={list(sample)!r}"
                    )
                one_hot[n, i, int(j)] = 1.0
        return one_hot

    def update(self, samples: Sequence[Sequence[int]], losses: Sequence[float]) -> bool:
        """One ASNG step from the losses of sampled architectures (lower is better).

        Args:
            samples: the architectures (index lists, as `sample` returns), at least 2.
            losses: their losses, in the same order.

        Returns:
            Whether theta moved (False on a tie or a vanishing natural gradient, where the
            code skips the step and leaves s, gamma and Delta as they are).

        Raises:
            ValueError: when the samples and losses differ in number, are fewer than 2, a
                sample does not fit the decisions, or a loss is not finite.
        """
        if len(samples) != len(losses) or len(samples) < 2:
            raise ValueError(
                "update needs at least 2 samples and one loss per sample. Received: "
                f"{len(samples)} samples and losses={list(losses)!r}"
            )
        losses = np.asarray([float(loss) for loss in losses])
        if not np.all(np.isfinite(losses)):
            raise ValueError(f"losses must be finite. Received: losses={losses.tolist()!r}")
        one_hot = self._one_hot(samples)
        delta = self.delta
        beta = delta / math.sqrt(self.num_params) if self.num_params else 0.0

        utility, order = ranking_utility(losses)
        if utility.var() == 0:
            self.num_skipped += 1
            return False
        centered = (utility - utility.mean())[:, np.newaxis, np.newaxis]
        ngrad = np.mean(centered * (one_hot[order] - self._theta), axis=0)
        if np.all(np.abs(ngrad) < _TINY_GRADIENT):
            self.num_skipped += 1
            return False

        # F^(1/2) G in the coordinates theta[i, :K-1]: its norm is the Fisher norm of G.
        whitened = []
        for i, k in enumerate(self.categories):
            theta_i = self._theta[i, : k - 1]
            theta_k = self._theta[i, k - 1]
            grad_i = ngrad[i, : k - 1]
            s_i = grad_i / np.sqrt(theta_i)
            s_i = s_i + np.sqrt(theta_i) * grad_i.sum() / (theta_k + np.sqrt(theta_k))
            whitened.extend(s_i.tolist())
        whitened = np.asarray(whitened)
        norm = math.sqrt(float(np.sum(whitened**2)))

        self._theta += delta * ngrad / norm
        self._project()

        self.s = (1 - beta) * self.s + math.sqrt(beta * (2 - beta)) * whitened / norm
        self.gamma = (1 - beta) ** 2 * self.gamma + beta * (2 - beta)
        self.Delta *= math.exp(beta * (self.gamma - float(self.s @ self.s) / self.alpha))
        if self.delta_max is not None:
            self.Delta = min(self.Delta, self.delta_max)
        self.num_updates += 1
        return True

    def _project(self) -> None:
        """The code's constraint: theta >= theta_min, each row summing to 1."""
        for i, k in enumerate(self.categories):
            margin = self.theta_mins[i]
            row = np.maximum(self._theta[i, :k], margin)
            total = row.sum()
            room = total - margin * k
            # Lower the entries above the margin in proportion to their excess.
            row = row - (total - 1.0) * (row - margin) / room
            self._theta[i, :k] = row / row.sum()

    # --- State ------------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """Returns the JSON-able state: theta, the step-size adaptation and the random state."""
        return {
            "categories": list(self.categories),
            "theta": self.theta,
            "s": self.s.tolist(),
            "gamma": self.gamma,
            "Delta": self.Delta,
            "num_updates": self.num_updates,
            "num_skipped": self.num_skipped,
            "rng": base.rng_state(self.rng),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restores what `get_state` returned.

        Raises:
            ValueError: when the state was saved for other categories.
        """
        if list(state["categories"]) != self.categories:
            raise ValueError(
                f"The ASNG state was saved for categories={list(state['categories'])}, not "
                f"for these categories={self.categories}."
            )
        for i, row in enumerate(state["theta"]):
            self._theta[i, : len(row)] = row
        self.s = np.asarray(state["s"], dtype=float).reshape(self.num_params)
        self.gamma = float(state["gamma"])
        self.Delta = float(state["Delta"])
        self.num_updates = int(state["num_updates"])
        self.num_skipped = int(state["num_skipped"])
        self.rng = base.rng_from_state(state["rng"])
