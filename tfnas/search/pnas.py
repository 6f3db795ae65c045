"""Progressive neural architecture search (PNAS, Liu et al. 2017, arXiv 1712.00559).

PNAS grows architectures block by block: stage 1 trains the networks whose cells have one
block, stage b + 1 expands each network of stage b by one block in every possible way,
ranks the expansions with a surrogate fitted on all networks trained so far, and trains the
top K. The paper's defaults: B = 5 blocks, beam K = 256, all |B1| = 136 one-block cells at
stage 1 (its normal and reduction cells share one structure), so 136 + 4 * 256 = 1160
models; E = 20 epochs per model; the surrogate is an LSTM or an ensemble of MLPs that reads
the blocks of a cell, trained on every model so far.

Two kinds of space are searched.

**Cell spaces** (`tfnas.spaces.DartsSpace`, or any hypermodel built with
`tfnas.blocks.darts_cell`): the space registers the `Fixed` hyperparameter `NUM_BLOCKS`
(`tfnas.blocks.cells.NUM_BLOCKS`), the number of intermediate nodes its cells build, and
the choices of node j live under the condition `NUM_BLOCKS > j`. A block is one node of
every cell (node j of the normal and of the reduction cell: DARTS searches two genotypes
where PNAS shares one). At stage b the search sets `NUM_BLOCKS = b` in the trial's values,
so the trained network's cells have exactly b nodes (the later ones are absent, not at a
default) and its architecture holds only their choices.

* Stage 1 proposes every configuration of block 1 (B1) when the budget allows: with
  `budget` (the oracle's `max_trials`) it proposes `min(|B1|, max(K, budget - (B - 1) K))`
  of them, so that the B - 1 later stages still run; `initial_width` overrides this. Above
  `num_candidates` configurations a random subset of that size is drawn.
* Stage b + 1 expands every network measured at stage b (the paper's S_b; the top K of
  them once `beam_width` are measured, which after stage 1 is all of them) by block b + 1,
  a random subset of at most `num_candidates` expansions in all, and proposes the K
  expansions the surrogate ranks best.
* The surrogate (`BlockSurrogate`) reads a network as the sequence of its blocks: each
  block is a token, the one-hot of its (role, value) pairs, where a role is a decision's
  name without its node ("normal/node2/edge3" plays "normal/edge3": an operation on the
  edge from state 3), so tokens of different blocks share columns; it embeds each token
  linearly, averages the embeddings over the blocks (the paper's MLP predictor) and feeds
  an MLP. It is fitted on networks of every length seen and ranks the (b + 1)-block
  expansions.
* After stage B the search goes on at B blocks, expanding any one block (or any group of
  decisions outside the cells) of the best K full-size networks.

**Flat spaces** (any other KerasTuner hypermodel, `NasBench201Space`, tabular benchmarks):
there is nothing to grow, so PNAS is a beam search over groups of hyperparameters. A group
(a "block") is by default the hyperparameters sharing the name prefix before the last "/"
("normal/node2/inputs" and "normal/node2/edge0" form block "normal/node2"; a name without
"/" is a block of its own), or whatever a user's `block_of(name)` returns, ordered by first
appearance. Stage b keeps blocks 1..b searched and every later block at its default values.
Stage 1 proposes `initial_width` configurations of block 1 (default `beam_width`); stage
b + 1 takes the `beam_width` best architectures measured at stage b, expands each over all
configurations of block b + 1 (a random subset of `num_candidates` when there are more),
ranks the unseen expansions with a surrogate (`Surrogate`, an MLP ensemble or ridge
regression on the one-hot encoding), and proposes the top `beam_width`. Once every block is
expanded the search goes on the same way, expanding any one block of the best so far.

Deviations from the paper, in both modes: the surrogate is refitted from scratch on every
trained network at each stage (the paper fine-tunes it on the new stage's data); its
defaults are smaller (`ensemble_size=3`, `hidden_size=32` and an embedding of 32 against
the paper's ensemble of 5 and 100 units), for a numpy fit in well under a second; pass
`ensemble_size=5, hidden_size=100` for the paper's sizes. Each ensemble member of the
`BlockSurrogate` is fitted on its own 1 - 1/ensemble_size of the data, as the paper's 5
members on 4/5 each. The expansions are a random subset of at most `num_candidates`
(the paper ranks all of them, up to K * |B_b|). Stages do not wait for running trials:
under a parallel search a stage is ranked with whatever has finished.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tfnas import validation
from tfnas.search import base, encoding, numpy_nn

# The `Fixed` hyperparameter a cell space grows (`tfnas.blocks.cells.NUM_BLOCKS`).
NUM_BLOCKS = "cells/num_blocks"

# A path segment naming the node (block) a decision belongs to, dropped from its role.
_NODE_SEGMENT = re.compile(r"(node|block)\d+")


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

    # Activations of the network's layers after the input.
    activations: tuple[str, ...] = ("relu", "linear")

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

    def _sizes(self, input_size: int) -> list[int]:
        return [input_size, self.hidden_size, 1]

    def _member_rows(self, n: int, rng: np.random.Generator) -> list[np.ndarray | None]:
        """The rows each ensemble member is fitted on (None: all of them)."""
        return [None] * self.ensemble_size

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
        activations = self.activations
        for m, rows in enumerate(self._member_rows(len(x), rng)):
            prefix = f"m{m}/"
            params = numpy_nn.mlp_init(rng, self._sizes(x.shape[1]), prefix)
            xm, tm = (x, target) if rows is None else (x[rows], target[rows])

            def loss_and_grads(params, prefix=prefix, xm=xm, tm=tm):
                out, cache = numpy_nn.mlp_forward(params, xm, activations, prefix)
                error = out[:, 0] - tm
                grad_out = (2.0 / len(xm)) * error[:, None]
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
                numpy_nn.mlp_forward(self.params, x, self.activations, f"m{m}/")[0][:, 0]
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


class BlockSurrogate(Surrogate):
    """Predicts the reward of a cell from the sequence of its blocks (the PNAS MLP predictor).

    A network is a sequence of block tokens, `(b, token_size)` for b blocks (any b), plus
    optional features outside the blocks. Each token is embedded linearly into
    `embedding_size` dimensions and the embeddings are averaged over the blocks, as the
    paper's MLP predictor does; the average (with the extra features) feeds a ReLU layer
    of `hidden_size` units and a linear output. A linear embedding commutes with the
    average, so the network computes it on the averaged tokens. Each of the
    `ensemble_size` members is fitted on the data minus its own fold of
    `1 / ensemble_size` (the paper: 5 members, 4/5 of the data each); their predictions
    are averaged. With `kind="ridge"`, a ridge regression on the averaged tokens.

    Args:
        embedding_size: Dimension of the block embedding.
        **kwargs: Those of `Surrogate`.

    Example:

    ```python
    surrogate = BlockSurrogate(embedding_size=16)
    surrogate.fit_sequences([tokens_a, tokens_b], rewards, rng)  # (2, d) and (2, d) tokens
    surrogate.predict_sequences([tokens_c])                        # a (3, d) sequence
    ```
    """

    activations = ("linear", "relu", "linear")

    def __init__(self, embedding_size: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.embedding_size = embedding_size

    def _sizes(self, input_size: int) -> list[int]:
        return [input_size, self.embedding_size, self.hidden_size, 1]

    def _member_rows(self, n: int, rng: np.random.Generator) -> list[np.ndarray | None]:
        if self.ensemble_size == 1 or n < 2 * self.ensemble_size:
            return [None] * self.ensemble_size
        fold = rng.permutation(n) % self.ensemble_size
        return [np.flatnonzero(fold != m) for m in range(self.ensemble_size)]

    @staticmethod
    def features(sequences: Sequence[np.ndarray], extra: np.ndarray | None = None) -> np.ndarray:
        """Returns the average token of each sequence, followed by its `extra` features."""
        pooled = np.stack(
            [np.asarray(tokens, dtype=np.float64).mean(axis=0) for tokens in sequences]
        )
        return pooled if extra is None else np.hstack([pooled, extra])

    def fit_sequences(
        self,
        sequences: Sequence[np.ndarray],
        y: np.ndarray,
        rng: np.random.Generator,
        extra: np.ndarray | None = None,
    ) -> None:
        """Fits on block sequences (each `(num_blocks, token_size)`) and rewards `y`."""
        self.fit(self.features(sequences, extra), y, rng)

    def predict_sequences(
        self, sequences: Sequence[np.ndarray], extra: np.ndarray | None = None
    ) -> np.ndarray:
        """Returns the predicted rewards of block sequences of any length."""
        return self.predict(self.features(sequences, extra))


@dataclasses.dataclass(frozen=True)
class CellStructure:
    """The blocks of a cell space, as `ProgressiveSearch` grows them.

    Attributes:
        name: The `Fixed` hyperparameter holding the number of blocks built.
        max_blocks: Its value in the space, B.
        blocks: `blocks[j]`: the decisions of block j + 1 (active when the number of blocks
            is > j), in space order.
        others: The decisions in no block (the rest of the hypermodel), in space order.
        columns: The column of each `(role, value)` pair in a block token.
    """

    name: str
    max_blocks: int
    blocks: tuple[tuple[encoding.Decision, ...], ...]
    others: tuple[encoding.Decision, ...]
    columns: dict[tuple[str, str], int]

    @property
    def token_size(self) -> int:
        return len(self.columns)


def block_role(name: str) -> str:
    """The role of a decision within its block: its name without the node segment.

    "normal/node2/edge3" -> "normal/edge3", so the same role in two blocks (the operation
    on the edge from state 3 of the normal cell) fills the same token columns.
    """
    return "/".join(part for part in name.split("/") if not _NODE_SEGMENT.fullmatch(part))


def cell_structure(space: encoding.SpaceEncoding, name: str = NUM_BLOCKS) -> CellStructure | None:
    """Returns the blocks of a cell space, or None when the space has no `Fixed` `name`.

    A decision belongs to block b when it carries the condition `name in [b, ...]` (the
    smallest value of its condition on `name`), as `tfnas.blocks.darts_cell` registers.
    """
    hp = space.fixed_hyperparameters().get(name)
    if hp is None:
        return None
    max_blocks = int(hp.value)
    blocks: list[list[encoding.Decision]] = [[] for _ in range(max_blocks)]
    others = []
    columns: dict[tuple[str, str], int] = {}
    for decision in space.decisions:
        index = None
        for condition in decision.hp.conditions:
            if getattr(condition, "name", None) == name:
                index = min(int(v) for v in condition.values) - 1
        if index is None or not 0 <= index < max_blocks:
            others.append(decision)
            continue
        blocks[index].append(decision)
        role = block_role(decision.name)
        for candidate in decision.candidates:
            columns.setdefault((role, json.dumps(candidate)), len(columns))
    return CellStructure(name, max_blocks, tuple(tuple(b) for b in blocks), tuple(others), columns)


class ProgressiveSearch(base.SearchAlgorithm):
    """The PNAS algorithm on a KerasTuner space, without Keras.

    A space with the `Fixed` hyperparameter `blocks_hyperparameter` is a cell space and its
    cells are grown block by block; any other is searched as a beam search over groups of
    hyperparameters (see the module docstring for both).

    Args:
        beam_width: Architectures proposed per stage after the first (K; the paper: 256),
            and, on flat spaces and after the last block, the parents expanded per stage.
        num_candidates: At most this many expansions are ranked per stage (random subset).
        initial_width: Architectures proposed at stage 1. Default: on a cell space every
            configuration of block 1 the budget allows (see `budget`); on a flat space
            `beam_width`.
        surrogate: "mlp" or "ridge".
        ensemble_size: MLPs in the surrogate ensemble (the paper: 5).
        hidden_size: Hidden units of each surrogate MLP (the paper: 100).
        train_steps: Adam steps per surrogate fit.
        learning_rate: Adam step size of the surrogate.
        l2: Weight decay (MLP) or ridge penalty of the surrogate.
        embedding_size: Block embedding size of the cell-space surrogate (the paper: 100).
        block_of: Maps a hyperparameter name to its block name on flat spaces (default
            `default_block_of`), and groups the decisions outside the cells of a cell space.
        blocks_hyperparameter: The `Fixed` hyperparameter that makes a space a cell space
            (default `NUM_BLOCKS`, which `tfnas.blocks.darts_cell` registers); None
            searches every space as a flat one.
        budget: The number of trials the search will run (the oracle passes `max_trials`),
            to size stage 1 on a cell space; None: no limit.
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
        embedding_size: int = 32,
        block_of: Callable[[str], str] | None = None,
        blocks_hyperparameter: str | None = NUM_BLOCKS,
        budget: int | None = None,
        seed: int | None = None,
    ):
        super().__init__(seed)
        self.beam_width = validation.check_int("beam_width", beam_width, low=1)
        self.num_candidates = validation.check_int("num_candidates", num_candidates, low=beam_width)
        self.initial_width = initial_width
        if initial_width is not None:
            self.initial_width = validation.check_int("initial_width", initial_width, low=1)
        if block_of is not None and not callable(block_of):
            raise ValueError(
                f"block_of must be a callable mapping a hyperparameter name to a block name. "
                f"Received: block_of={block_of!r}"
            )
        if blocks_hyperparameter is not None and (
            not isinstance(blocks_hyperparameter, str) or not blocks_hyperparameter
        ):
            raise ValueError(
                "blocks_hyperparameter must be the name of a Fixed hyperparameter, or None. "
                f"Received: blocks_hyperparameter={blocks_hyperparameter!r}"
            )
        self.blocks_hyperparameter = blocks_hyperparameter
        self.budget = None if budget is None else validation.check_int("budget", budget, low=1)
        self.block_of = block_of or default_block_of
        kwargs = dict(
            kind=validation.check_one_of("surrogate", surrogate, ("mlp", "ridge")),
            ensemble_size=validation.check_int("ensemble_size", ensemble_size, low=1),
            hidden_size=validation.check_int("hidden_size", hidden_size, low=1),
            train_steps=validation.check_int("train_steps", train_steps, low=1),
            learning_rate=validation.check_float(
                "learning_rate", learning_rate, low=0, low_inclusive=False
            ),
            l2=validation.check_float("l2", l2, low=0),
        )
        self.surrogate = Surrogate(**kwargs)
        self.block_surrogate = BlockSurrogate(
            validation.check_int("embedding_size", embedding_size, low=1), **kwargs
        )
        # Flat space: number of blocks expanded so far; cell space: number of blocks of the
        # current stage's cells (0: not started).
        self.stage = 0
        # Architectures selected at the current stage, best predicted first.
        self.queue: list[encoding.Values] = []
        # Finished trials: {"values", "reward", "stage"}.
        self.history: list[dict[str, Any]] = []

    def blocks(self, space: encoding.SpaceEncoding) -> list[tuple[str, list[encoding.Decision]]]:
        """Returns the flat blocks of the space (`block_of` groups) in order of appearance."""
        return self._groups(space.decisions)

    def _groups(
        self, decisions: Sequence[encoding.Decision]
    ) -> list[tuple[str, list[encoding.Decision]]]:
        groups: dict[str, list[encoding.Decision]] = collections.OrderedDict()
        for decision in decisions:
            groups.setdefault(str(self.block_of(decision.name)), []).append(decision)
        return list(groups.items())

    def cell(self, space: encoding.SpaceEncoding) -> CellStructure | None:
        """Returns the cell structure of the space, or None for a flat space."""
        if self.blocks_hyperparameter is None:
            return None
        return cell_structure(space, self.blocks_hyperparameter)

    def propose(
        self, space: encoding.SpaceEncoding, is_seen: base.IsSeen
    ) -> encoding.Values | None:
        cell = self.cell(space)
        while True:
            while self.queue:
                values = self.queue.pop(0)
                fixed = None
                if cell is not None and cell.name in values:
                    fixed = {cell.name: values[cell.name]}
                values = space.complete(values, fixed=fixed)
                if not is_seen(values):
                    return values
            found = (
                self._next_stage(space, is_seen)
                if cell is None
                else self._next_cell_stage(space, cell, is_seen)
            )
            if not found:
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
                initial = self.beam_width if self.initial_width is None else self.initial_width
                width = initial if self.stage == 1 and not refining else self.beam_width
                self.queue = self._rank(space, candidates)[:width]
                return True
            if refining:
                return False

    def _next_cell_stage(
        self, space: encoding.SpaceEncoding, cell: CellStructure, is_seen: base.IsSeen
    ) -> bool:
        """`_next_stage` for a cell space: stage b trains b-block cells."""
        while True:
            refining = self.stage >= cell.max_blocks
            if refining:
                fixed = {cell.name: cell.max_blocks}
                groups = [list(b) for b in cell.blocks if b]
                groups += [decisions for _, decisions in self._groups(cell.others)]
                parents = self._cell_parents(space, cell.max_blocks, self.beam_width, fixed)
            else:
                self.stage += 1
                fixed = {cell.name: self.stage}
                groups = [list(cell.blocks[self.stage - 1])]
                # Stage 1 grows from the empty cell; later stages from every network of
                # the stage before (the paper's S_b).
                parents = self._cell_parents(space, self.stage - 1, None, fixed)
            candidates = self._expand(space, parents, groups, is_seen, fixed)
            if candidates:
                width = self.beam_width
                if self.stage == 1 and not refining:
                    width = self._initial_cell_width(cell, len(candidates))
                self.queue = self._rank(space, candidates)[:width]
                return True
            if refining:
                return False

    def _initial_cell_width(self, cell: CellStructure, num_candidates: int) -> int:
        if self.initial_width is not None:
            return self.initial_width
        if self.budget is None:
            return num_candidates
        later = (cell.max_blocks - 1) * self.beam_width
        return min(num_candidates, max(self.beam_width, self.budget - later))

    def _cell_parents(
        self,
        space: encoding.SpaceEncoding,
        stage: int,
        limit: int | None,
        fixed: dict[str, Any],
    ) -> list[encoding.Values]:
        """The distinct networks measured with `stage` blocks, best first (at most `limit`).

        Under a parallel search none may have finished: then those of any earlier stage.
        """
        if stage == 0:
            return [space.complete({}, fixed=fixed)]
        entries = [e for e in self.history if e["stage"] == stage]
        entries = entries or [e for e in self.history if e["stage"] <= stage]
        if not entries:
            return [space.complete({}, fixed=fixed)]
        return self._distinct_best(entries, limit)

    def _distinct_best(self, entries, limit: int | None) -> list[encoding.Values]:
        parents, keys = [], set()
        for entry in sorted(entries, key=lambda e: -e["reward"]):
            key = encoding.values_key(entry["values"])
            if key not in keys:
                keys.add(key)
                parents.append(entry["values"])
            if limit is not None and len(parents) == limit:
                break
        return parents

    def _beam(self, stage: int | None, space: encoding.SpaceEncoding) -> list[encoding.Values]:
        entries = self.history
        if stage is not None:
            entries = [e for e in self.history if e["stage"] == stage] or self.history
        if stage == 0 or not entries:
            return [space.defaults()]
        return self._distinct_best(entries, self.beam_width)

    def _expand(
        self,
        space: encoding.SpaceEncoding,
        parents: Sequence[encoding.Values],
        groups: Sequence[Sequence[encoding.Decision]],
        is_seen,
        fixed: dict[str, Any] | None = None,
    ) -> list[encoding.Values]:
        found: dict[str, encoding.Values] = {}
        # Bounds the work when many parents and blocks are expanded at once.
        per_group = -(-self.num_candidates // (len(parents) * len(groups)))
        for parent in parents:
            base = space.complete(parent, fixed=fixed)
            for decisions in groups:
                if space.size_upper_bound(decisions) <= per_group:
                    expansions = space.architectures(base, decisions, fixed=fixed)
                else:
                    expansions = (
                        self._sample_group(space, base, decisions, fixed) for _ in range(per_group)
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
        fixed: dict[str, Any] | None = None,
    ) -> encoding.Values:
        varied = {d.index for d in decisions}

        def pick(decision: encoding.Decision, _: encoding.Values) -> Any:
            if decision.index in varied:
                return decision.candidates[int(self.rng.integers(decision.size))]
            value = base.get(decision.name)
            return value if value is not None and decision.accepts(value) else decision.hp.default

        return space.assemble(pick, fixed)

    def block_sequence(
        self, space: encoding.SpaceEncoding, cell: CellStructure, values: encoding.Values
    ) -> np.ndarray:
        """Returns the block tokens of a cell-space architecture, `(num_blocks, token_size)`.

        Token j holds a 1 in the column of each `(role, value)` of block j + 1's active
        decisions; there is one token per block the architecture builds.
        """
        num_blocks = values.get(cell.name, cell.max_blocks)
        tokens = np.zeros((max(1, int(num_blocks)), cell.token_size))
        block_of = {d.index: j for j, block in enumerate(cell.blocks) for d in block}
        for decision in space.active(values):
            j = block_of.get(decision.index)
            if j is None or j >= len(tokens):
                continue
            value = decision.candidates[decision.index_of(values[decision.name])]
            tokens[j, cell.columns[(block_role(decision.name), json.dumps(value))]] = 1.0
        return tokens

    def _cell_features(
        self,
        space: encoding.SpaceEncoding,
        cell: CellStructure,
        architectures: Sequence[encoding.Values],
    ) -> tuple[list[np.ndarray], np.ndarray | None]:
        sequences = [self.block_sequence(space, cell, v) for v in architectures]
        if not cell.others:
            return sequences, None
        columns = np.concatenate([np.arange(d.offset, d.offset + d.size) for d in cell.others])
        return sequences, space.one_hot_batch(architectures)[:, columns]

    def _rank(
        self, space: encoding.SpaceEncoding, candidates: list[encoding.Values]
    ) -> list[encoding.Values]:
        if len(self.history) < 2:
            order = self.rng.permutation(len(candidates))
        else:
            y = np.array([e["reward"] for e in self.history])
            cell = self.cell(space)
            if cell is None:
                x = space.one_hot_batch([e["values"] for e in self.history])
                self.surrogate.fit(x, y, self.rng)
                scores = self.surrogate.predict(space.one_hot_batch(candidates))
            else:
                sequences, extra = self._cell_features(
                    space, cell, [e["values"] for e in self.history]
                )
                self.block_surrogate.fit_sequences(sequences, y, self.rng, extra)
                scores = self.block_surrogate.predict_sequences(
                    *self._cell_features(space, cell, candidates)
                )
            order = np.argsort(-scores, kind="stable")
        return [candidates[i] for i in order]

    def observe(
        self, space: encoding.SpaceEncoding, values: encoding.Values, reward: float | None
    ) -> None:
        if reward is None:
            return
        stage = self.stage
        cell = self.cell(space)
        if cell is not None and isinstance(values.get(cell.name), int):
            # The network's own number of blocks: under a parallel search it may finish
            # after the search moved on to the next stage.
            stage = int(values[cell.name])
        self.history.append({"values": dict(values), "reward": float(reward), "stage": stage})

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(),
            "stage": self.stage,
            "queue": [dict(v) for v in self.queue],
            "history": [dict(e) for e in self.history],
            "surrogate": self.surrogate.get_state(),
            "block_surrogate": self.block_surrogate.get_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.stage = int(state["stage"])
        self.queue = [dict(v) for v in state["queue"]]
        self.history = [dict(e) for e in state["history"]]
        self.surrogate.set_state(state["surrogate"])
        if "block_surrogate" in state:  # Absent from states saved before cell spaces.
            self.block_surrogate.set_state(state["block_surrogate"])
