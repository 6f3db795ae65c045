"""IRLAS (Guo et al. 2018, arXiv 1812.05285): a controller guided by an expert's topology.

IRLAS rewards an architecture-search agent with its accuracy plus a "mirror stimuli"
term, a linear function `F(a) = w^T phi(a)` of a topology feature vector `phi`, where `w`
is learned by inverse reinforcement learning from one expert, human-designed network
(ResNeXt in the paper) so that the expert's topology scores higher than what the agent
currently samples. The IRL follows apprenticeship learning (Abbeel & Ng 2004): the expert
is summarized by its feature expectation `mu_E = phi(expert)`, the agent's policy `i` by
the mean feature vector of its samples `mu_i`, and `w` is refitted with the projection
method:

    mu_bar_0 = mu_0;  for i >= 1:
    mu_bar_i = mu_bar_{i-1} + alpha_i (mu_i - mu_bar_{i-1}),
    alpha_i  = clip(<mu_i - mu_bar_{i-1}, mu_E - mu_bar_{i-1}> / ||mu_i - mu_bar_{i-1}||^2, 0, 1),
    w_i = mu_E - mu_bar_i,  margin t_i = ||w_i||.

`mu_bar_i` is the point of the segment `[mu_bar_{i-1}, mu_i]` nearest to `mu_E`, so the
margin never increases (`projection_fit`). The mirror reward is `w^T phi(a) / ||w||` (the
unit-norm `w` of the max-margin formulation's `||w|| <= 1`), in [-1, 1].

This module holds the numpy math: the feature map (`FeatureMap`), `projection_fit`,
`topological_distance`, and `IRLASController`, the NAS-RL controller of
`tfnas.search.reinforce` whose learned reward is `R + mirror_weight * F(a)`.

The feature map `phi` (space-agnostic; the paper's exact encoding is not reproduced, see
below). An architecture is described by categorical "topology attributes", each one-hot
encoded, concatenated and scaled by `1 / sqrt(number of attributes)` so that
`||phi|| = 1` and `phi(a) . phi(b)` is the fraction of attributes on which `a` and `b`
agree (their cosine similarity):

* per decision (in a cell space: per edge, i.e. its connectivity and operation): the
  index of its value, or an extra "inactive" slot;
* per operation count: for every group of at least two decisions that choose among the
  same candidates (a cell's edges), and every candidate, the number of the group's
  decisions that picked it (a one-hot over 0..group size);
* the depth: with conditional decisions, the number of active decisions (a one-hot over
  0..number of decisions); omitted from spaces without conditions, where it is constant.

Because every attribute is one-hot and `mu_bar` lies in the convex hull of feature vectors,
each attribute's weight is `1 - mu_bar >= 0` on the expert's slot and `-mu_bar <= 0`
elsewhere: the mirror reward is maximal at the expert (`IRLASController.mirror`).

Assumptions and deviations (the paper's body was not reachable here, only its abstract):

* The paper encodes a network as a sequence of layer codes and discounts per-state
  features along it; `phi` here is the undiscounted one-hot description above, read from
  the architecture values and `tfnas.search.encoding` only (no operation semantics, so
  e.g. a "none" edge is one operation among others rather than a missing connection).
* The paper's agent is BlockQNN's Q-learning agent (the abstract says the mirror stimuli
  generalize to other search algorithms); here it is tfnas's REINFORCE controller, and
  one "policy" of Abbeel & Ng is the controller's samples over `refit_interval` learned
  samples (one policy-gradient run per IRL iteration would cost a search per step).
* `mu_0`, the random initial policy, is the mean `phi` of `num_reference_samples`
  uniform samples of the space (the controller's initial policy is uniform) drawn from a
  generator of fixed seed 0, not from the controller's random state, so that
  `mirror_weight=0` proposes exactly what the plain controller proposes.
* The step `alpha` is clipped to [0, 1] (Abbeel & Ng leave it unclipped) so that
  `mu_bar` stays in the convex hull of feature expectations.
* Only the projection method is implemented (not the max-margin quadratic program), and
  the IRL never stops early (Abbeel & Ng stop once `t <= epsilon`; here `w` keeps being
  refitted, which changes nothing once the policy matches the expert).
* The controller's record keeps the accuracy only; the mirror term is added with the
  current `w` whenever a sample is learned from (also when it is answered from the
  record), since `w` moves during the search.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from tfnas import validation
from tfnas.search import encoding
from tfnas.search.reinforce import Controller


def _candidates_key(decision: encoding.Decision) -> str:
    return json.dumps([repr(c) for c in decision.candidates])


class FeatureMap:
    """The topology feature vector `phi` of the architectures of a space (unit norm).

    See the module docstring for its attributes. `attributes` lists them as
    `(name, slots)`; `dim` is the length of `phi`.

    Args:
        space: the `tfnas.search.encoding.SpaceEncoding` of the search space.

    Example:

    ```python
    phi = FeatureMap(space)
    phi(values) @ phi(expert)  # Fraction of the attributes they share.
    ```
    """

    def __init__(self, space: encoding.SpaceEncoding):
        self.space = space
        groups: dict[str, list[encoding.Decision]] = {}
        for decision in space.decisions:
            groups.setdefault(_candidates_key(decision), []).append(decision)
        self.groups = [members for members in groups.values() if len(members) >= 2]
        self.conditional = any(d.hp.conditions for d in space.decisions)
        self.attributes: list[tuple[str, int]] = [
            (f"decision:{d.key}", d.size + 1) for d in space.decisions
        ]
        for members in self.groups:
            for candidate in members[0].candidates:
                name = f"count:{candidate!r}:" + ",".join(d.key for d in members)
                self.attributes.append((name, len(members) + 1))
        if self.conditional:
            self.attributes.append(("depth", len(space.decisions) + 1))
        self.offsets = np.cumsum([0] + [slots for _, slots in self.attributes])
        self.dim = int(self.offsets[-1])
        self.scale = 1.0 / math.sqrt(len(self.attributes)) if self.attributes else 0.0

    def slots(self, values: encoding.Values) -> list[int]:
        """The slot each attribute of `values` takes, in `attributes` order."""
        indices = self.space.indices(values)
        slots = [int(i) if i >= 0 else d.size for d, i in zip(self.space.decisions, indices)]
        for members in self.groups:
            picked = [int(indices[d.index]) for d in members]
            slots += [picked.count(c) for c in range(members[0].size)]
        if self.conditional:
            slots.append(int((indices >= 0).sum()))
        return slots

    def __call__(self, values: encoding.Values) -> np.ndarray:
        """Returns `phi(values)`, of length `dim` and norm 1."""
        phi = np.zeros(self.dim)
        for offset, slot in zip(self.offsets, self.slots(values)):
            phi[offset + slot] = self.scale
        return phi

    def mean(self, architectures: list[encoding.Values]) -> np.ndarray:
        """The feature expectation of a set of architectures (the mean of their `phi`)."""
        if not architectures:
            raise ValueError("mean needs at least one architecture. Received: architectures=[]")
        return np.mean([self(values) for values in architectures], axis=0)


def feature_similarity(space: encoding.SpaceEncoding, a: encoding.Values, b: encoding.Values):
    """`phi(a) . phi(b)`: the fraction of topology attributes `a` and `b` share, in [0, 1]."""
    phi = FeatureMap(space)
    return float(phi(a) @ phi(b))


def topological_distance(
    space: encoding.SpaceEncoding, a: encoding.Values, b: encoding.Values
) -> int:
    """The number of decisions on which `a` and `b` differ (an inactive decision differs
    from an active one): in a cell space, the edges whose operation differs."""
    return int((space.indices(a) != space.indices(b)).sum())


def projection_fit(
    mu_expert: np.ndarray, mus: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Abbeel & Ng's projection method over the policies' feature expectations `mus`.

    Args:
        mu_expert: `mu_E`, the expert's feature expectation.
        mus: `mu_0, mu_1, ...`, the feature expectations of the successive policies
            (at least `mu_0`).

    Returns:
        `(w, mu_bar, margins)`: `w = mu_E - mu_bar` after the last policy, the projection
        `mu_bar`, and the margin `t_i = ||mu_E - mu_bar_i||` after each policy
        (non-increasing).

    Raises:
        ValueError: when `mus` is empty or a vector's length differs from `mu_expert`'s.
    """
    mu_expert = np.asarray(mu_expert, dtype=float)
    if not mus:
        raise ValueError("projection_fit needs mu_0 at least. Received: mus=[]")
    for mu in mus:
        if np.shape(mu) != mu_expert.shape:
            raise ValueError(
                f"Every mu must have the expert's shape {mu_expert.shape}. "
                f"Received: a mu of shape {np.shape(mu)}"
            )
    mu_bar = np.asarray(mus[0], dtype=float)
    margins = [float(np.linalg.norm(mu_expert - mu_bar))]
    for mu in mus[1:]:
        step = np.asarray(mu, dtype=float) - mu_bar
        norm2 = float(step @ step)
        if norm2 > 0:
            alpha = min(max(float(step @ (mu_expert - mu_bar)) / norm2, 0.0), 1.0)
            mu_bar = mu_bar + alpha * step
        margins.append(float(np.linalg.norm(mu_expert - mu_bar)))
    return mu_expert - mu_bar, mu_bar, margins


class IRLASController(Controller):
    """The NAS-RL controller learning from `R + mirror_weight * w^T phi(a) / ||w||`.

    `R` is the reward it is told (the accuracy); `w` is refitted by `projection_fit` after
    every `refit_interval` learned samples, from the expert's features and the mean
    features of each window of the controller's learned samples (see the module
    docstring). All of it is JSON in `get_state()`: the windows are kept as architectures
    and `w` is recomputed from them, so a space that grows keeps a consistent `phi`.

    Args:
        expert: the expert architecture, a values dict of the space (missing or illegal
            values are completed with defaults; `tfnas.tuners.irlas.IRLAS` refuses them).
        mirror_weight: lambda, the weight of the mirror term (>= 0; 0: plain REINFORCE).
        refit_interval: learned samples per IRL iteration (>= 1).
        num_reference_samples: uniform samples that estimate `mu_0` (>= 1).
        **kwargs: the arguments of `tfnas.search.reinforce.Controller`.

    Example:

    ```python
    controller = IRLASController(expert={"op0": "conv", "op1": "skip"}, mirror_weight=0.1,
                                 batch_size=4, reuse_seen=True, seed=0)
    values = controller.propose(space, is_seen=lambda v: False)
    controller.observe(space, values, reward=0.8)
    controller.mirror(space, values)  # Its mirror stimulus, in [-1, 1].
    ```
    """

    def __init__(
        self,
        expert: encoding.Values,
        mirror_weight: float = 0.1,
        refit_interval: int = 8,
        num_reference_samples: int = 256,
        **kwargs: Any,
    ):
        if not isinstance(expert, dict):
            raise ValueError(f"expert must be a dict of values. Received: expert={expert!r}")
        self.expert = dict(expert)
        self.mirror_weight = validation.check_float("mirror_weight", mirror_weight, low=0)
        self.refit_interval = validation.check_int("refit_interval", refit_interval, low=1)
        self.num_reference_samples = validation.check_int(
            "num_reference_samples", num_reference_samples, low=1
        )
        super().__init__(**kwargs)
        # The learned samples of each finished IRL iteration, and of the current one.
        self.windows: list[list[encoding.Values]] = []
        self.window: list[encoding.Values] = []
        self._cache: dict[str, Any] | None = None

    def _fit(self, space: encoding.SpaceEncoding) -> tuple[FeatureMap, np.ndarray, list[float]]:
        key = (id(space), len(space))
        if self._cache is None or self._cache["key"] != key:
            phi = FeatureMap(space)
            reference_rng = np.random.default_rng(0)
            reference = [space.sample(reference_rng) for _ in range(self.num_reference_samples)]
            self._cache = {
                "key": key,
                "phi": phi,
                "mu_expert": phi(space.complete(self.expert)),
                "mus": [phi.mean(reference)],
                "fit": None,
            }
        cache = self._cache
        if len(cache["mus"]) != len(self.windows) + 1:
            phi = cache["phi"]
            cache["mus"] += [phi.mean(window) for window in self.windows[len(cache["mus"]) - 1 :]]
            cache["fit"] = None
        if cache["fit"] is None:
            w, _, margins = projection_fit(cache["mu_expert"], cache["mus"])
            cache["fit"] = (w, margins)
        return cache["phi"], *cache["fit"]

    def weights(self, space: encoding.SpaceEncoding) -> np.ndarray:
        """The current IRL weights `w = mu_E - mu_bar` (not normalized)."""
        return self._fit(space)[1]

    def margins(self, space: encoding.SpaceEncoding) -> list[float]:
        """The projection margins `t_0, t_1, ...` so far (non-increasing)."""
        return list(self._fit(space)[2])

    def mirror(self, space: encoding.SpaceEncoding, values: encoding.Values) -> float:
        """The mirror stimulus `w^T phi(values) / ||w||` (0 once `w` is 0)."""
        phi, w, _ = self._fit(space)
        norm = float(np.linalg.norm(w))
        if norm == 0.0:
            return 0.0
        return float(phi(space.complete(values)) @ w) / norm

    def _learn(self, space: encoding.SpaceEncoding, values: encoding.Values, reward: float) -> None:
        total = reward
        if self.mirror_weight > 0:
            total = reward + self.mirror_weight * self.mirror(space, values)
        super()._learn(space, values, total)
        self.window.append(dict(values))
        if len(self.window) >= self.refit_interval:
            self.windows.append(self.window)
            self.window = []

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(),
            "irl_windows": [[dict(v) for v in window] for window in self.windows],
            "irl_window": [dict(v) for v in self.window],
        }

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.windows = [[dict(v) for v in window] for window in state["irl_windows"]]
        self.window = [dict(v) for v in state["irl_window"]]
        self._cache = None
