"""Progressive neural architecture search (PNAS, Liu et al. 2017, arXiv 1712.00559).

PNAS grows architectures block by block. In a general KerasTuner space a *block* is a group
of hyperparameters: by default those sharing the name prefix before the last "/" ("normal/
node2/inputs" and "normal/node2/edge0" form block "normal/node2"; a name without "/" is a
block of its own), or whatever a user's `block_of(name)` returns. Blocks are ordered by first
appearance in the space.

Stage b keeps blocks 1..b searched and every later block at its default values. Stage 1
proposes `initial_width` configurations of block 1 (the paper trains all of them: pass
`initial_width` >= their number); stage b + 1 takes the `beam_width` best architectures
measured at stage b, expands each over all configurations of block b + 1 (a random subset of
`num_candidates` when there are more), ranks the unseen expansions with a surrogate fitted on
every finished trial, and proposes the top `beam_width`. Once every block is expanded the
search goes on the same way, expanding any one block of the best architectures so far.

The surrogate is an ensemble of small MLPs (the paper's MLP-ensemble predictor) or a ridge
regression, on the one-hot encoding, refitted from scratch at each stage. Stages do not wait
for running trials: under a parallel search a stage is ranked with whatever has finished.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tfnas import validation
from tfnas.search import base, encoding, numpy_nn


def default_block_of(name: str) -> str:
    """Returns the block of a hyperparameter: its name up to the last "/" (or the name)."""
    return name.rsplit("/", 1)[0] if "/" in name else name


class Surrogate:
    """Predicts the reward of architectures from their one-hot encoding.

    Args:
        kind: "mlp" (an ensemble of one-hidden-layer ReLU networks) or "ridge".
        ensemble_size: Number of MLPs, averaged.
        hidden_size: Hidden units of each MLP.
        train_steps: Full-batch Adam steps per fit.
        learning_rate: Adam step size.
        l2: Weight decay (MLP) or ridge penalty.

    Example:

    ```python
    surrogate = Surrogate("ridge")
    surrogate.fit(x, y, rng)
    scores = surrogate.predict(x_new)
    ```
    """

    def __init__(
        self,
        kind: str = "mlp",
        ensemble_size: int = 3,
        hidden_size: int = 32,
        train_steps: int = 200,
        learning_rate: float = 0.01,
        l2: float = 1e-3,
    ):
        self.kind = kind
        self.ensemble_size = ensemble_size
        self.hidden_size = hidden_size
        self.train_steps = train_steps
        self.learning_rate = learning_rate
        self.l2 = l2
        self.params: numpy_nn.Params = {}
        self.mean, self.std = 0.0, 1.0

    def fit(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> None:
        """Fits the surrogate from scratch on features `x` `(n, d)` and rewards `y` `(n,)`."""
        self.mean = float(y.mean())
        self.std = float(y.std()) or 1.0
        target = (y - self.mean) / self.std
        if self.kind == "ridge":
            x1 = np.hstack([x, np.ones((len(x), 1))])
            penalty = self.l2 * np.eye(x1.shape[1])
            penalty[-1, -1] = 0.0  # The intercept is not shrunk.
            self.params = {"w": np.linalg.solve(x1.T @ x1 + penalty, x1.T @ target)}
            return
        self.params = {}
        activations = ("relu", "linear")
        for m in range(self.ensemble_size):
            prefix = f"m{m}/"
            params = numpy_nn.mlp_init(rng, [x.shape[1], self.hidden_size, 1], prefix)

            def loss_and_grads(params, prefix=prefix):
                out, cache = numpy_nn.mlp_forward(params, x, activations, prefix)
                error = out[:, 0] - target
                grad_out = (2.0 / len(x)) * error[:, None]
                grads, _ = numpy_nn.mlp_backward(params, cache, grad_out, activations, prefix)
                for name in grads:
                    if name.startswith(f"{prefix}w"):
                        grads[name] = grads[name] + self.l2 * params[name]
                return float(np.mean(error**2)), grads

            numpy_nn.minimize(params, loss_and_grads, self.train_steps, self.learning_rate)
            self.params.update(params)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Returns the predicted rewards of `x` `(n, d)`."""
        if self.kind == "ridge":
            out = np.hstack([x, np.ones((len(x), 1))]) @ self.params["w"]
        else:
            outs = [
                numpy_nn.mlp_forward(self.params, x, ("relu", "linear"), f"m{m}/")[0][:, 0]
                for m in range(self.ensemble_size)
            ]
            out = np.mean(outs, axis=0)
        return out * self.std + self.mean

    def get_state(self) -> dict[str, Any]:
        return {
            "params": numpy_nn.params_to_json(self.params),
            "mean": self.mean,
            "std": self.std,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.params = numpy_nn.params_from_json(state["params"])
        self.mean, self.std = state["mean"], state["std"]


class ProgressiveSearch(base.SearchAlgorithm):
    """The PNAS algorithm on a KerasTuner space, without Keras.

    Args:
        beam_width: Architectures proposed per stage (K), and parents expanded per stage.
        num_candidates: At most this many expansions are ranked per stage (random subset).
        initial_width: Architectures proposed at stage 1 (default: `beam_width`).
        surrogate: "mlp" or "ridge".
        ensemble_size: MLPs in the surrogate ensemble.
        hidden_size: Hidden units of each surrogate MLP.
        train_steps: Adam steps per surrogate fit.
        learning_rate: Adam step size of the surrogate.
        l2: Weight decay (MLP) or ridge penalty of the surrogate.
        block_of: Maps a hyperparameter name to its block name (default `default_block_of`).
        seed: Random seed.

    Example:

    ```python
    algorithm = ProgressiveSearch(beam_width=4, seed=0)
    values = algorithm.propose(space, is_seen=lambda v: False)  # stage 1: block 1
    algorithm.observe(space, values, reward=0.5)
    ```
    """

    def __init__(
        self,
        beam_width: int = 8,
        num_candidates: int = 1000,
        initial_width: int | None = None,
        surrogate: str = "mlp",
        ensemble_size: int = 3,
        hidden_size: int = 32,
        train_steps: int = 200,
        learning_rate: float = 0.01,
        l2: float = 1e-3,
        block_of: Callable[[str], str] | None = None,
        seed: int | None = None,
    ):
        super().__init__(seed)
        self.beam_width = validation.check_int("beam_width", beam_width, low=1)
        self.num_candidates = validation.check_int("num_candidates", num_candidates, low=beam_width)
        self.initial_width = beam_width
        if initial_width is not None:
            self.initial_width = validation.check_int("initial_width", initial_width, low=1)
        if block_of is not None and not callable(block_of):
            raise ValueError(
                f"block_of must be a callable mapping a hyperparameter name to a block name. "
                f"Received: block_of={block_of!r}"
            )
        self.block_of = block_of or default_block_of
        self.surrogate = Surrogate(
            kind=validation.check_one_of("surrogate", surrogate, ("mlp", "ridge")),
            ensemble_size=validation.check_int("ensemble_size", ensemble_size, low=1),
            hidden_size=validation.check_int("hidden_size", hidden_size, low=1),
            train_steps=validation.check_int("train_steps", train_steps, low=1),
            learning_rate=validation.check_float(
                "learning_rate", learning_rate, low=0, low_inclusive=False
            ),
            l2=validation.check_float("l2", l2, low=0),
        )
        # Number of blocks expanded so far (0: not started).
        self.stage = 0
        # Architectures selected at the current stage, best predicted first.
        self.queue: list[encoding.Values] = []
        # Finished trials: {"values", "reward", "stage"}.
        self.history: list[dict[str, Any]] = []

    def blocks(self, space: encoding.SpaceEncoding) -> list[tuple[str, list[encoding.Decision]]]:
        """Returns the blocks of the space in order of first appearance."""
        groups: dict[str, list[encoding.Decision]] = collections.OrderedDict()
        for decision in space.decisions:
            groups.setdefault(str(self.block_of(decision.name)), []).append(decision)
        return list(groups.items())

    def propose(
        self, space: encoding.SpaceEncoding, is_seen: base.IsSeen
    ) -> encoding.Values | None:
        while True:
            while self.queue:
                values = space.complete(self.queue.pop(0))
                if not is_seen(values):
                    return values
            if not self._next_stage(space, is_seen):
                return None

    def _next_stage(self, space: encoding.SpaceEncoding, is_seen: base.IsSeen) -> bool:
        """Fills the queue with the next stage's selection; False when nothing is left."""
        blocks = self.blocks(space)
        while True:
            refining = self.stage >= len(blocks)
            if refining:
                groups = [decisions for _, decisions in blocks]
                parents = self._beam(stage=None, space=space)
            else:
                self.stage += 1
                groups = [blocks[self.stage - 1][1]]
                parents = self._beam(stage=self.stage - 1, space=space)
            candidates = self._expand(space, parents, groups, is_seen)
            if candidates:
                width = self.initial_width if self.stage == 1 and not refining else self.beam_width
                self.queue = self._rank(space, candidates)[:width]
                return True
            if refining:
                return False

    def _beam(self, stage: int | None, space: encoding.SpaceEncoding) -> list[encoding.Values]:
        entries = self.history
        if stage is not None:
            entries = [e for e in self.history if e["stage"] == stage] or self.history
        if stage == 0 or not entries:
            return [space.defaults()]
        parents, keys = [], set()
        for entry in sorted(entries, key=lambda e: -e["reward"]):
            key = encoding.values_key(entry["values"])
            if key not in keys:
                keys.add(key)
                parents.append(entry["values"])
            if len(parents) == self.beam_width:
                break
        return parents

    def _expand(
        self,
        space: encoding.SpaceEncoding,
        parents: Sequence[encoding.Values],
        groups: Sequence[Sequence[encoding.Decision]],
        is_seen,
    ) -> list[encoding.Values]:
        found: dict[str, encoding.Values] = {}
        # Bounds the work when many parents and blocks are expanded at once.
        per_group = -(-self.num_candidates // (len(parents) * len(groups)))
        for parent in parents:
            base = space.complete(parent)
            for decisions in groups:
                if space.size_upper_bound(decisions) <= per_group:
                    expansions = space.architectures(base, decisions)
                else:
                    expansions = (
                        self._sample_group(space, base, decisions) for _ in range(per_group)
                    )
                for values in expansions:
                    key = encoding.values_key(values)
                    if key not in found and not is_seen(values):
                        found[key] = values
        candidates = list(found.values())
        if len(candidates) > self.num_candidates:
            keep = self.rng.choice(len(candidates), size=self.num_candidates, replace=False)
            candidates = [candidates[i] for i in sorted(keep)]
        return candidates

    def _sample_group(
        self,
        space: encoding.SpaceEncoding,
        base: encoding.Values,
        decisions: Sequence[encoding.Decision],
    ) -> encoding.Values:
        varied = {d.index for d in decisions}

        def pick(decision: encoding.Decision, _: encoding.Values) -> Any:
            if decision.index in varied:
                return decision.candidates[int(self.rng.integers(decision.size))]
            value = base.get(decision.name)
            return value if value is not None and decision.accepts(value) else decision.hp.default

        return space.assemble(pick)

    def _rank(
        self, space: encoding.SpaceEncoding, candidates: list[encoding.Values]
    ) -> list[encoding.Values]:
        if len(self.history) < 2:
            order = self.rng.permutation(len(candidates))
        else:
            x = space.one_hot_batch([e["values"] for e in self.history])
            y = np.array([e["reward"] for e in self.history])
            self.surrogate.fit(x, y, self.rng)
            scores = self.surrogate.predict(space.one_hot_batch(candidates))
            order = np.argsort(-scores, kind="stable")
        return [candidates[i] for i in order]

    def observe(
        self, space: encoding.SpaceEncoding, values: encoding.Values, reward: float | None
    ) -> None:
        if reward is None:
            return
        self.history.append({"values": dict(values), "reward": float(reward), "stage": self.stage})

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(),
            "stage": self.stage,
            "queue": [dict(v) for v in self.queue],
            "history": [dict(e) for e in self.history],
            "surrogate": self.surrogate.get_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.stage = int(state["stage"])
        self.queue = [dict(v) for v in state["queue"]]
        self.history = [dict(e) for e in state["history"]]
        self.surrogate.set_state(state["surrogate"])
