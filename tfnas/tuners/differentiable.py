"""The differentiable family: DARTS (first and second order), DARTS+ and P-DARTS.

Differentiable strategies relax every discrete choice into a softmax mixture of its
candidates and learn the mixture's logits (the architecture parameters, alpha) by gradient
descent, alternating with the supernet's weights:

- The supernet is built with `tfnas.blocks.rules.SoftmaxMixture`: a `LayerChoice` outputs
  `sum_k softmax(alpha)_k * candidate_k(x)`, one alpha vector per choice name (so all
  normal cells share one), and an `InputChoice` reduces all of its inputs (a DARTS node
  sums all its incoming edges, each already a mixed operation).
- `DifferentiableOracle` holds what every member shares. The engine trains: the supernet
  trainer fits the weights on the training split and, before every weight step, runs the
  oracle's architecture step (`tfnas.engine.architecture_steps`: one Adam step on the
  alphas on the next validation batch for the bilevel methods, none in the alpha-frozen
  warm-up epochs of P-DARTS and PC-DARTS; SNAS's single loss updates the alphas inside
  the weight step, from the same backward pass). The oracle configures that step, keeps
  the alphas, the step's optimizer state and the per-epoch history in its state (so one
  checkpoint of `get_state()` covers them), and derives architectures with the pure rules of
  `tfnas.search.derivation`. After training, the derived architecture is proposed first
  and becomes an ordinary trial evaluated with inherited weights; further candidates
  (`max_trials > 1`) are sampled from the learned distributions. The history goes to
  TensorBoard (when a `keras.callbacks.TensorBoard` is among the search's callbacks) and
  to PNG heatmaps.
- `DARTS` (Liu et al. 2018, arXiv 1806.09055) with `order=1` or the unrolled `order=2`,
  `DARTSPlus` (Liang et al. 2019) with its early stopping, and `PDARTS` (Chen et al. 2019)
  with progressive stages.

SNAS and GDAS (Gumbel relaxations) live in `tfnas.tuners.gumbel`, PC-DARTS (partial
channels) in `tfnas.tuners.partial_channels`; all are subclasses of `DifferentiableOracle`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tfnas import validation
from tfnas.results import alpha_logging
from tfnas.search import base, derivation, encoding
from tfnas.search.derivation import SKIP_OP, candidate_label
from tfnas.tuners.weight_sharing import WeightSharingOracle

if TYPE_CHECKING:
    import keras

    from tfnas.blocks.rules import MixingRule, SoftmaxMixture
    from tfnas.engine import architecture_steps

logger = logging.getLogger(__name__)


class _Derivation(base.SearchAlgorithm):
    """Proposes the derived architecture, then samples from the learned distributions."""

    def __init__(self, oracle: DifferentiableOracle, seed: int | None = None):
        super().__init__(seed)
        self._oracle = oracle

    def propose(self, space, is_seen):
        derived = self._oracle.derive(space)
        if not is_seen(derived):
            return derived
        return self._oracle.derive(space, rng=self.rng)

    def observe(self, space, values, reward) -> None:
        pass


class DifferentiableOracle(WeightSharingOracle):
    """Base class of the differentiable strategies: alphas learned by gradient descent.

    Subclasses choose the rule (`_new_rule`), the split the alpha steps use (`arch_split`:
    "validation" for bilevel methods, "training" for a single loss), and the architecture
    step (`_new_architecture_step`, `_architecture_step_options`: DARTS's second order,
    Gumbel sampling, a resource term).

    Args:
        objective: the candidates' objective, measured with inherited weights.
        max_trials: candidates evaluated (default 1: the derived architecture only).
        arch_learning_rate: Adam learning rate of the alphas (> 0; DARTS: 3e-4).
        arch_beta_1, arch_beta_2: Adam betas of the alphas (DARTS: 0.5, 0.999).
        arch_weight_decay: L2 penalty added to the alphas' gradient (>= 0; DARTS: 1e-3).
        **kwargs: the arguments of `WeightSharingOracle` (constraints,
            bn_recalibration_batches, seed, hyperparameters, ...).
    """

    arch_split = "validation"

    def __init__(
        self,
        objective="val_accuracy",
        max_trials: int = 1,
        *,
        arch_learning_rate: float = 3e-4,
        arch_beta_1: float = 0.5,
        arch_beta_2: float = 0.999,
        arch_weight_decay: float = 1e-3,
        **kwargs,
    ):
        self.arch_learning_rate = validation.check_float(
            "arch_learning_rate", arch_learning_rate, low=0.0, low_inclusive=False
        )
        self.arch_beta_1 = validation.check_float(
            "arch_beta_1", arch_beta_1, low=0.0, high=1.0, high_inclusive=False
        )
        self.arch_beta_2 = validation.check_float(
            "arch_beta_2", arch_beta_2, low=0.0, high=1.0, high_inclusive=False
        )
        self.arch_weight_decay = validation.check_float(
            "arch_weight_decay", arch_weight_decay, low=0.0
        )
        self._alphas: dict[str, list[float]] = {}
        # The architecture step's JSON state (its optimizer), kept while no step is made.
        self._step_state: dict[str, Any] | None = None
        # One entry per supernet epoch: {"epoch", "distributions"} (JSON-able).
        self.history: list[dict[str, Any]] = []
        # What the derivation needs, recorded from the rule's choices (JSON-able).
        self._structure: dict[str, Any] = {}
        self._rule: SoftmaxMixture | None = None
        self._architecture_step: architecture_steps.FirstOrderStep | None = None
        # The supernet's training epochs, known once training starts (not state: the
        # trainer gives them again on resume).
        self._supernet_epochs: int | None = None
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)

    def make_search_algorithm(self, seed):
        return _Derivation(self, seed)

    def _new_rule(self) -> SoftmaxMixture:
        from tfnas.blocks.rules import SoftmaxMixture

        return SoftmaxMixture(seed=self.seed, initial_alphas=self._alphas)

    def make_mixing_rule(self) -> MixingRule:
        """A fresh rule, starting from the alphas the oracle holds, if any."""
        self._rule = self._new_rule()
        self._architecture_step = None
        return self._rule

    # --- Connecting to the supernet -----------------------------------------------------

    def on_supernet_built(self, supernet: keras.Model, validation_data, training_data=None):
        """Records the structure of the supernet built with the oracle's rule.

        Args:
            supernet: the compiled supernet, built with the rule of `make_mixing_rule`.
            validation_data: a batched `tf.data.Dataset` of `(x, y)`.
            training_data: a batched `tf.data.Dataset` of `(x, y)` (needed by SNAS's single
                loss and by DARTS's second order).

        Raises:
            ValueError: when no rule of this oracle was built, it has no layer choice for
                alphas to act on, or the data the alpha steps need is missing.
        """
        name = type(self).__name__
        structure = None if self._rule is None else self._rule.structure()
        if structure is None or not any(structure.values()):
            raise ValueError(
                f"{name}.on_supernet_built needs a supernet built with the rule returned by "
                "this oracle's make_mixing_rule()."
            )
        rule = self._rule
        if not rule.alpha_variables:
            raise ValueError(
                f"{name} found no layer choice for its architecture parameters to act on: the "
                "supernet has only input choices (e.g. repeat depths), which alphas do not "
                "relax. Use a space with layer_choice/attribute_choice points, or a "
                "one-shot oracle (spos, random_weight_sharing)."
            )
        arch_data = training_data if self.arch_split == "training" else validation_data
        if arch_data is None or (self._needs_training_data() and training_data is None):
            missing = "training" if arch_data is not None else self.arch_split
            raise ValueError(
                f"{name} needs {missing} data for its architecture steps. Received: "
                f"{missing}_data=None; pass validation_data=... (or numpy inputs with a "
                "validation_split) to search()."
            )
        self._structure = structure
        if self._alphas:
            rule.set_alphas(self._alphas)
        else:
            self._alphas = rule.get_alphas()

    def _needs_training_data(self) -> bool:
        return self.arch_split == "training"

    # --- The architecture step ----------------------------------------------------------

    def make_architecture_step(self) -> architecture_steps.FirstOrderStep:
        """The alpha step the supernet trainer runs before every weight step.

        It starts from the optimizer state this oracle holds (none for a new search or a
        new P-DARTS stage); the oracle reads its state back in `get_state()`.
        """
        from tfnas.engine import architecture_steps

        step = self._new_architecture_step(
            architecture_steps, **self._architecture_step_options(architecture_steps)
        )
        step.set_state(self._step_state)
        self._architecture_step = step
        return step

    def _architecture_step_options(self, steps) -> dict[str, Any]:
        """Keyword arguments of the step (`steps` is `tfnas.engine.architecture_steps`)."""
        return {
            "learning_rate": self.arch_learning_rate,
            "beta_1": self.arch_beta_1,
            "beta_2": self.arch_beta_2,
            "weight_decay": self.arch_weight_decay,
            "split": self.arch_split,
            "alphas_frozen": self.alphas_frozen,
            "owner": type(self).__name__,
        }

    def start_supernet_stage(self, epoch: int, epochs: int) -> bool:
        """Records the supernet's epochs (the warm-up is a share of them)."""
        self.check_epochs(epochs)
        self._supernet_epochs = int(epochs)
        return super().start_supernet_stage(epoch, epochs)

    def alphas_frozen(self, epoch: int) -> bool:
        """Whether the alphas stay unchanged in `epoch` (0-based): an alpha-frozen warm-up
        in which only the weights train. None here; P-DARTS and PC-DARTS have one."""
        return False

    def _new_architecture_step(self, steps, **options) -> architecture_steps.FirstOrderStep:
        """The step (default: first order on `arch_split`)."""
        return steps.FirstOrderStep(**options)

    def prepare_training_step(
        self, rule: MixingRule, step: int, path: int, progress: float
    ) -> None:
        """Nothing to set: the architecture step, run just before, left the rule in mixture
        mode (with a fresh sample for the weight step where the strategy samples).

        Raises:
            RuntimeError: when the supernet and the architecture step are not connected.
        """
        connected = self._architecture_step is not None and self._architecture_step.connected
        if self._rule is not rule or not connected:
            raise RuntimeError(
                f"{type(self).__name__} trains alphas on the supernet built with its own "
                "rule: search with tfnas.Tuner, or call "
                "oracle.on_supernet_built(supernet, validation_data, training_data) and "
                "connect oracle.make_architecture_step() before training the supernet."
            )

    # --- After each epoch ---------------------------------------------------------------

    def on_supernet_epoch_end(self, epoch, evaluate, logs=None, callbacks=None) -> None:
        """Records the distributions (and checks they are finite), logs them to TensorBoard."""
        self._sync_from_rule()
        distributions = self.distributions()
        self.history = [h for h in self.history if h["epoch"] < epoch + 1]
        self.history.append({"epoch": epoch + 1, "distributions": distributions})
        alpha_logging.write_tensorboard(callbacks, epoch + 1, distributions, self.labels())
        logger.info("%s epoch %d: %s", type(self).__name__, epoch + 1, distributions)

    def _sync_from_rule(self) -> None:
        if self._rule is not None and self._rule.alpha_variables:
            self._alphas = self._rule.get_alphas()
            derivation.check_finite(self._alphas)
        if self._architecture_step is not None:
            self._step_state = self._architecture_step.get_state()

    # --- Reading the result -------------------------------------------------------------

    def alphas(self) -> dict[str, list[float]]:
        """The architecture logits, `{choice_name: [alpha_k]}`."""
        if self._rule is not None and self._rule.alpha_variables:
            return self._rule.get_alphas()
        return {name: list(values) for name, values in self._alphas.items()}

    def excluded(self) -> dict[str, list[int]]:
        """Candidates left out of the search, `{choice_name: [index]}` (P-DARTS)."""
        return {}

    def softmax(self) -> dict[str, list[float]]:
        """The mixing weights, `{choice_name: softmax(alpha)}` (0 for excluded candidates)."""
        excluded = self.excluded()
        return {
            name: derivation.softmax(values, excluded.get(name, []))
            for name, values in self.alphas().items()
        }

    def distributions(self) -> dict[str, list[float]]:
        """The distribution over each choice's candidates that this strategy learns."""
        return self.softmax()

    def labels(self) -> dict[str, list[str]]:
        """Readable candidate names per choice, e.g. `{"normal/node0/edge1": [...]}`."""
        return {
            name: [candidate_label(v) for v in values]
            for name, values in self._structure.get("candidates", {}).items()
        }

    def plot_history(self, path: str) -> str:
        """Writes a PNG heatmap of every choice's distribution over the epochs."""
        if not self.history:
            raise RuntimeError(f"{type(self).__name__} has no history yet: train it first.")
        return alpha_logging.plot_alpha_history(self.history, path, self.labels())

    def plot_cell(self, path: str, prefix: str = "normal", values=None) -> str:
        """Writes a PNG diagram of the derived cell `prefix` (or that of `values`)."""
        return alpha_logging.plot_cell(values or self.derive(), path, prefix)

    def input_weights(self) -> dict[str, list[float]]:
        """Per input choice, a weight per incoming edge (PC-DARTS's edge normalization)."""
        return {}

    def derive(
        self, space: encoding.SpaceEncoding | None = None, rng: np.random.Generator | None = None
    ) -> encoding.Values:
        """The derived architecture (DARTS rule), or one sampled from the alphas with `rng`.

        Without `rng`: every layer choice takes its argmax candidate; every input choice
        keeps the `n_chosen` inputs whose producing layer choice has the largest non-`none`
        weight (times the edge's weight, with edge normalization; inputs not produced by a
        layer choice count 0, ties go to the lower index), and those edges take their
        argmax non-`none` operation (`tfnas.search.derivation.darts_picker`). With `rng`,
        the same with sampling proportional to the weights. Decisions outside the supernet
        take their frozen value or default.

        Raises:
            RuntimeError: before the supernet was built.
            ValueError: when an alpha is not finite.
        """
        return self._derive(space, rng, forbidden={})

    def _derive(self, space, rng, forbidden: Mapping[str, Sequence[int]]) -> encoding.Values:
        """`derive`, with `forbidden` candidates `{choice_name: [index]}` given weight 0."""
        if not self._structure:
            raise RuntimeError(
                f"{type(self).__name__}.derive needs the supernet: train it first (search())."
            )
        space = space or self.encoding()
        pick = derivation.darts_picker(
            self._structure,
            self._derivation_weights(rng),
            edge_weights=self.input_weights(),
            forbidden=forbidden,
            rng=rng,
        )

        def assemble(decision: encoding.Decision, _: encoding.Values) -> Any:
            if decision.name in self.frozen_values:
                return self.frozen_values[decision.name]
            value = pick(decision.name)
            if value is None or not decision.accepts(value):
                return decision.hp.default
            return value

        return space.assemble(assemble)

    def _derivation_weights(self, rng) -> dict[str, list[float]]:
        """The weights the derivation picks from (the argmax without `rng`, a sample with
        it): the learned distributions."""
        return self.distributions()

    def names_with_op(
        self, values: Mapping[str, Any], op: str = SKIP_OP, scope: str = "normal/"
    ) -> list[str]:
        """The active decisions of `values` under `scope` (a name prefix) that pick `op`.

        Decisions whose name starts with `scope` are considered; when no decision does (a
        space without a "normal" cell, e.g. NAS-Bench-201's "cell/"), every one is.
        """
        return derivation.names_with_op(self._structure, values, op, scope)

    def count_op(self, values: Mapping[str, Any], op: str = SKIP_OP, scope: str = "normal/"):
        """How many decisions `names_with_op` finds."""
        return len(self.names_with_op(values, op, scope))

    # --- State --------------------------------------------------------------------------

    def _differentiable_state(self) -> dict[str, Any]:
        self._sync_from_rule()
        return {
            "alphas": {name: list(values) for name, values in self._alphas.items()},
            "distributions": self.distributions() if self._alphas else {},
            "architecture_step": self._step_state,
            "structure": self._structure,
            "history": self.history,
        }

    def _set_differentiable_state(self, state: Mapping[str, Any]) -> None:
        alphas = {name: [float(a) for a in values] for name, values in state["alphas"].items()}
        derivation.check_finite(alphas)
        self._alphas = alphas
        self._step_state = state.get("architecture_step")
        self._structure = dict(state.get("structure") or {})
        self.history = list(state.get("history") or [])
        if self._rule is not None:
            self._rule.set_alphas(alphas)
        if self._architecture_step is not None:
            self._architecture_step.set_state(self._step_state)

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["differentiable"] = self._differentiable_state()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        if "differentiable" in state:
            self._set_differentiable_state(state["differentiable"])


class DARTS(DifferentiableOracle):
    """DARTS (Liu et al. 2018), first or second order, as a weight-sharing oracle.

    The supernet is built with `SoftmaxMixture`; the engine trains its weights on the
    training split while, before every weight step, the architecture parameters take one
    Adam step on the next validation batch (`tfnas.engine.architecture_steps`). After
    training, the derived architecture (argmax of alpha; per cell node the `n_chosen`
    strongest incoming edges, `none` excluded) is the first candidate; further candidates
    are sampled from the softmax distributions. Each candidate is a trial evaluated with
    the inherited weights (batch norm recalibrated).

    `order=2` is the paper's unrolled step: the alpha gradient is taken at the weights
    after one virtual SGD step `w' = w - xi * grad_w L_train(w, alpha)`, and the implicit
    term `-xi * grad^2_{alpha,w} L_train(w, alpha) grad_{w'} L_val(w', alpha)` uses the
    finite-difference Hessian-vector product (two extra passes at `w +- eps * grad_{w'}
    L_val`, `eps = 0.01 / ||grad_{w'} L_val||`). The virtual step has no momentum (the
    paper reuses the weight optimizer's momentum buffer), and its training batch comes from
    the step's own pass over the training split, not the batch of the weight step that
    follows. The weights and batch-norm statistics are restored after the step.

    The alphas, their optimizer's state, their per-epoch history and what the derivation
    needs are kept in the oracle state and in every supernet checkpoint, so a resumed
    search continues exactly. `alphas()`, `softmax()` and `history` expose them,
    `plot_history(path)` draws them and `plot_cell(path)` draws the derived cell. The
    alpha step runs on one device (it does not use the tuner's distribution strategy).

    Args:
        objective: the candidates' objective, measured with inherited weights.
        max_trials: candidates evaluated (default 1: the derived architecture only).
        order: 1 (first order) or 2 (unrolled second order).
        unrolled_learning_rate: xi of the virtual step (order 2; > 0). Default: the
            supernet optimizer's current learning rate, as in the paper.
        **kwargs: the arguments of `DifferentiableOracle` (arch_learning_rate,
            arch_weight_decay, ...) and `WeightSharingOracle` (seed, constraints, ...).

    Example:

    ```python
    oracle = tfnas.oracles.DARTS(seed=0)
    space = tfnas.spaces.DartsSpace((8, 8, 1), 10, init_channels=8, num_cells=5)
    tuner = tfnas.Tuner(space, oracle=oracle, directory="runs", project_name="darts")
    tuner.search(x, y, epochs=10, validation_data=(x_val, y_val),
                 callbacks=[keras.callbacks.TensorBoard("runs/logs")])
    print(oracle.derive())                # the derived architecture
    oracle.plot_history("alphas.png")
    model = tuner.get_best_models(1)[0]   # plain Keras model with inherited weights
    ```
    """

    def __init__(
        self,
        objective="val_accuracy",
        max_trials: int = 1,
        *,
        order: int = 1,
        unrolled_learning_rate: float | None = None,
        **kwargs,
    ):
        if order not in (1, 2) or isinstance(order, bool):
            raise ValueError(f"order must be 1 or 2. Received: order={order!r}")
        self.order = int(order)
        self.unrolled_learning_rate = (
            None
            if unrolled_learning_rate is None
            else validation.check_float(
                "unrolled_learning_rate", unrolled_learning_rate, low=0.0, low_inclusive=False
            )
        )
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)

    def _needs_training_data(self) -> bool:
        return self.order == 2 or super()._needs_training_data()

    def _new_architecture_step(self, steps, **options) -> architecture_steps.FirstOrderStep:
        if self.order == 1:
            return super()._new_architecture_step(steps, **options)
        return steps.SecondOrderStep(unrolled_learning_rate=self.unrolled_learning_rate, **options)


class DARTSPlus(DARTS):
    """DARTS+ (Liang et al. 2019): DARTS with early stopping against its collapse.

    After each supernet epoch the derived architecture is checked: training stops when the
    normal cell has `max_skip_connections` or more skip connections (criterion 1), or when
    the ranking of every choice's candidates by alpha has not changed for `stable_epochs`
    epochs (criterion 2; None to disable). `supernet_stop_reason` says which fired; the
    supernet keeps the weights of the epoch that triggered it, and a resumed search does
    not train further.

    Args:
        max_skip_connections: skip connections in the normal cell that stop the search
            (>= 1; DARTS+: 2).
        stable_epochs: epochs with an unchanged alpha ranking that stop the search (>= 1,
            or None).
        skip_op: the skip operation's name (DARTS: "skip_connect").
        normal_scope: the name prefix of the normal cell's choices; when no choice has it,
            all choices count.
        **kwargs: the arguments of `DARTS`.
    """

    def __init__(
        self,
        objective="val_accuracy",
        max_trials: int = 1,
        *,
        max_skip_connections: int = 2,
        stable_epochs: int | None = 10,
        skip_op: str = SKIP_OP,
        normal_scope: str = "normal/",
        **kwargs,
    ):
        self.max_skip_connections = validation.check_int(
            "max_skip_connections", max_skip_connections, low=1
        )
        self.stable_epochs = (
            None
            if stable_epochs is None
            else validation.check_int("stable_epochs", stable_epochs, low=1)
        )
        self.skip_op = skip_op
        self.normal_scope = normal_scope
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)

    def on_supernet_epoch_end(self, epoch, evaluate, logs=None, callbacks=None) -> None:
        super().on_supernet_epoch_end(epoch, evaluate, logs=logs, callbacks=callbacks)
        reason = derivation.darts_plus_stop_reason(
            epoch,
            self.derive(),
            self._structure,
            self.history,
            max_skip_connections=self.max_skip_connections,
            stable_epochs=self.stable_epochs,
            skip_op=self.skip_op,
            normal_scope=self.normal_scope,
        )
        if reason is not None:
            self.stop_supernet_training(reason)


class PDARTS(DARTS):
    """P-DARTS (Chen et al. 2019): progressive DARTS in stages.

    The search's epochs are split evenly into `len(keep) + 1` stages. Each stage builds a
    new supernet (fresh weights, alphas and optimizers) and, as the authors' code
    (`train_search.py`) does:

    - starts with an alpha-frozen warm-up: the paper trains 25 epochs per stage and
      updates the alphas from epoch 10 on, so by default the first `round(0.4 * L)`
      epochs of a stage of L epochs (at most 10, and at least one alpha epoch is left)
      train only the weights; `warmup_epochs` sets the count per stage instead.
    - drops out the skip candidates at the reference schedule, with `p0 = skip_dropout[s]`
      and e the epoch in the stage: `p0 * (L - e - 1) / L` during the warm-up, then
      `p0 * exp(-0.2 * (e - warm-up))`.
    - between stages, keeps only each choice's `keep[s]` strongest candidates
      (search-space approximation; `get_min_k`): `none` competes there like every
      operation, and is left out only by the final derivation (`get_min_k_no_zero`, as
      `derive` ignores `none`).
    - deepens the supernet: `depths[s]` sets the hypermodel's `depth_attribute` (e.g.
      `DartsSpace.num_cells`). By default ("auto") a hypermodel with a
      `progressive_depths(num_stages)` method (`DartsSpace`: 5 -> 11 -> 17 cells from a
      5-cell space, the paper's, scaled for other depths) gives them; other hypermodels
      keep their depth.

    The derived normal cell has at most `max_skip_connections` skip connections: the
    weakest extra ones are replaced by the edges' next-best operations. The alphas' Adam
    uses the authors' learning rate 6e-4 by default (`arch_learning_rate`).

    Args:
        keep: candidates kept per choice after each stage but the last (decreasing;
            P-DARTS on DARTS's 8 operations: (5, 3)).
        depths: the stage depths (`len(keep) + 1` ints, e.g. (5, 11, 17)), "auto" (the
            hypermodel's `progressive_depths`, when it has one), or None to keep the
            hypermodel's. The last stage's supernet is the one candidates are exported
            from, so its depth is that of models with inherited weights.
        depth_attribute: the hypermodel attribute set to `depths[s]`.
        skip_dropout: the initial dropout rate of skip candidates per stage, in [0, 1)
            (the authors' CIFAR-10 run: 0.1, 0.4, 0.7).
        warmup_epochs: alpha-frozen epochs at the start of every stage (>= 0), or None
            for the paper's 10 of 25 scaled to the stage's length.
        max_skip_connections: cap of skip connections in the derived normal cell (>= 0).
        skip_op, normal_scope: as in `DARTSPlus`.
        **kwargs: the arguments of `DARTS`.
    """

    # The paper: 25 epochs per stage, the alphas frozen for the first 10.
    PAPER_STAGE_EPOCHS, PAPER_WARMUP_EPOCHS = 25, 10
    # The reference code's `scale_factor` of the skip dropout's decay.
    DROPOUT_DECAY = 0.2

    def __init__(
        self,
        objective="val_accuracy",
        max_trials: int = 1,
        *,
        keep: Sequence[int] = (5, 3),
        depths: Sequence[int] | str | None = "auto",
        depth_attribute: str = "num_cells",
        skip_dropout: Sequence[float] = (0.1, 0.4, 0.7),
        warmup_epochs: int | None = None,
        max_skip_connections: int = 2,
        skip_op: str = SKIP_OP,
        normal_scope: str = "normal/",
        arch_learning_rate: float = 6e-4,
        **kwargs,
    ):
        keep = [validation.check_int("keep", k, low=1) for k in keep]
        if any(a <= b for a, b in zip(keep, keep[1:])):
            raise ValueError(f"keep must decrease from stage to stage. Received: keep={keep}")
        self.keep = keep
        self.num_stages = len(keep) + 1
        if isinstance(depths, str):
            if depths != "auto":
                raise ValueError(
                    "depths must be a sequence of ints, 'auto' or None. Received: "
                    f"depths={depths!r}"
                )
            self.depths = depths
        else:
            self.depths = None if depths is None else [int(d) for d in depths]
            self._check_depths(self.depths, depths)
        self.depth_attribute = depth_attribute
        self.skip_dropout = [float(r) for r in skip_dropout]
        if len(self.skip_dropout) != self.num_stages or not all(
            0.0 <= r < 1.0 for r in self.skip_dropout
        ):
            raise ValueError(
                f"skip_dropout must give {self.num_stages} rates in [0, 1) (one per stage). "
                f"Received: skip_dropout={list(skip_dropout)}"
            )
        self.warmup_epochs = (
            None
            if warmup_epochs is None
            else validation.check_int("warmup_epochs", warmup_epochs, low=0)
        )
        self.max_skip_connections = validation.check_int(
            "max_skip_connections", max_skip_connections, low=0
        )
        self.skip_op = skip_op
        self.normal_scope = normal_scope
        self.stage = 0
        self.stage_start = 0
        self._excluded: dict[str, list[int]] = {}
        self._dropout_rate = self.skip_dropout[0]
        # The skip-dropout masks' generator state in the current stage (None: fresh).
        self._dropout_random_state: list[int] | None = None
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            arch_learning_rate=arch_learning_rate,
            **kwargs,
        )

    def _check_depths(self, depths: list[int] | None, received) -> None:
        if depths is not None and (len(depths) != self.num_stages or min(depths) < 1):
            raise ValueError(
                f"depths must give {self.num_stages} positive depths (len(keep) + 1). "
                f"Received: depths={list(received)}"
            )

    def _new_rule(self) -> SoftmaxMixture:
        from tfnas.blocks.rules import SoftmaxMixture

        rule = SoftmaxMixture(
            seed=None if self.seed is None else self.seed + self.stage,
            initial_alphas=self._alphas,
            excluded=self._excluded,
            dropout_op=self.skip_op,
        )
        rule.set_dropout_rate(self._dropout_rate)
        rule.set_random_state(self._dropout_random_state)
        return rule

    def excluded(self) -> dict[str, list[int]]:
        return {name: list(indices) for name, indices in self._excluded.items()}

    def stage_depths(self, hypermodel) -> list[int] | None:
        """The depth of every stage for `hypermodel` (None: the hypermodel's own)."""
        if self.depths != "auto":
            return self.depths
        progressive = getattr(hypermodel, "progressive_depths", None)
        if progressive is None:
            return None
        depths = [int(d) for d in progressive(self.num_stages)]
        self._check_depths(depths, depths)
        return depths

    def stage_hypermodel(self, hypermodel):
        depths = self.stage_depths(hypermodel)
        if depths is None:
            return hypermodel
        import copy
        import types

        if not hasattr(hypermodel, self.depth_attribute):
            raise ValueError(
                f"PDARTS sets the hypermodel's {self.depth_attribute!r} per stage, but "
                f"{type(hypermodel).__name__} has no such attribute. Received: "
                f"depth_attribute={self.depth_attribute!r}, depths={depths}"
            )
        staged = copy.copy(hypermodel)
        # keras_tuner.HyperModel keeps `build` as an instance attribute (a bound method of
        # the original, wrapping it): rebind such methods, or the copy builds the original.
        for name, value in vars(staged).items():
            if isinstance(value, types.MethodType) and value.__self__ is hypermodel:
                setattr(staged, name, types.MethodType(value.__func__, staged))
        setattr(staged, self.depth_attribute, depths[self.stage])
        return staged

    def check_epochs(self, epochs: int) -> None:
        """Checks that every stage gets at least one of the `epochs`."""
        super().check_epochs(epochs)
        if epochs < self.num_stages:
            raise ValueError(
                f"PDARTS needs at least one epoch per stage ({self.num_stages} stages). "
                f"Received: epochs={epochs}"
            )

    # --- The stages' schedule ------------------------------------------------------------

    def stage_of(self, epoch: int, epochs: int) -> int:
        """The stage (0-based) that trains `epoch` of `epochs`."""
        return min(self.num_stages - 1, epoch * self.num_stages // epochs)

    def stage_bounds(self, stage: int, epochs: int) -> tuple[int, int]:
        """`(first epoch, epochs)` of `stage` when the search trains `epochs` epochs."""
        first = -(-stage * epochs // self.num_stages)  # ceil: stage_of(first) == stage
        end = (
            epochs if stage == self.num_stages - 1 else -(-(stage + 1) * epochs // self.num_stages)
        )
        return first, end - first

    def stage_warmup(self, stage_epochs: int) -> int:
        """Alpha-frozen epochs at the start of a stage of `stage_epochs` epochs.

        `warmup_epochs`, or the paper's 10 of 25 scaled: `round(0.4 * stage_epochs)`, at
        most 10; either way at least one epoch of the stage trains the alphas.
        """
        if self.warmup_epochs is not None:
            warmup = self.warmup_epochs
        else:
            scaled = self.PAPER_WARMUP_EPOCHS * stage_epochs / self.PAPER_STAGE_EPOCHS
            warmup = min(self.PAPER_WARMUP_EPOCHS, math.floor(scaled + 0.5))
        return max(0, min(warmup, stage_epochs - 1))

    def skip_dropout_rate(self, epoch: int, epochs: int) -> float:
        """The skip candidates' dropout rate in `epoch` of `epochs` (reference schedule).

        With `p0 = skip_dropout[stage]`, L the stage's epochs, W its warm-up and e the
        epoch in the stage: `p0 * (L - e - 1) / L` while e < W, then `p0 * exp(-0.2 *
        (e - W))` (P-DARTS `train_search.py`: `model.module.p`).
        """
        stage = self.stage_of(epoch, epochs)
        first, length = self.stage_bounds(stage, epochs)
        warmup, e, rate = self.stage_warmup(length), epoch - first, self.skip_dropout[stage]
        if e < warmup:
            return rate * (length - e - 1) / length
        return rate * math.exp(-self.DROPOUT_DECAY * (e - warmup))

    def alphas_frozen(self, epoch: int) -> bool:
        """True in the warm-up epochs of each stage (needs the supernet's epochs)."""
        epochs = self._supernet_epochs
        if epochs is None:
            return False
        first, length = self.stage_bounds(self.stage_of(epoch, epochs), epochs)
        return epoch - first < self.stage_warmup(length)

    def start_supernet_stage(self, epoch: int, epochs: int) -> bool:
        super().start_supernet_stage(epoch, epochs)
        stage = self.stage_of(epoch, epochs)
        rebuild = False
        while self.stage < stage:
            self._sync_from_rule()
            self._drop_candidates(self.keep[self.stage])
            self.stage += 1
            self.stage_start = epoch
            # A new stage starts from fresh alphas, alpha optimizer and dropout masks.
            self._alphas, self._step_state, self._architecture_step = {}, None, None
            self._dropout_random_state = None
            rebuild = True
        self._dropout_rate = self.skip_dropout_rate(epoch, epochs)
        if self._rule is not None and not rebuild:
            self._rule.set_dropout_rate(self._dropout_rate)
        return rebuild

    def _drop_candidates(self, keep: int) -> None:
        # The reference's `get_min_k` between stages: `none` is ranked like the others;
        # the final derivation leaves it out (`get_min_k_no_zero`).
        candidates = self._structure["candidates"]
        self._excluded = derivation.drop_candidates(
            self.softmax(), candidates, self._excluded, keep, last=False
        )
        logger.info("PDARTS stage %d: kept %s", self.stage + 2, {
            name: [candidate_label(values[i]) for i in range(len(values))
                   if i not in self._excluded[name]]
            for name, values in candidates.items() if name in self._excluded
        })  # fmt: skip

    def derive(self, space=None, rng=None) -> encoding.Values:
        """The DARTS derivation without `none`, then at most `max_skip_connections` skips in
        the normal cell: the weakest extra skip edges take their next-best operation.

        `none` competes between stages but is removed at the end (the reference's
        `get_min_k_no_zero`), on every layer choice, cell edge or not (e.g. NAS-Bench-201's
        edges), unless it is all a choice has left.
        """
        no_none = self._none_indices()

        def derive_without_none(forbidden):
            merged = {name: [*no_none.get(name, []), *forbidden.get(name, [])]
                      for name in {*no_none, *forbidden}}  # fmt: skip
            return self._derive(space, rng, merged)

        return derivation.cap_skip_connections(
            derive_without_none,
            self._structure,
            self.softmax(),
            max_skip_connections=self.max_skip_connections,
            skip_op=self.skip_op,
            normal_scope=self.normal_scope,
        )

    def _none_indices(self) -> dict[str, list[int]]:
        """`{layer_choice_name: [index of none]}` where another candidate is still kept."""
        result = {}
        for name, values in self._structure.get("candidates", {}).items():
            kept = [i for i in range(len(values)) if i not in self._excluded.get(name, [])]
            nones = [i for i in kept if derivation.is_op(values[i], derivation.NONE_OP)]
            if nones and len(nones) < len(kept):
                result[name] = nones
        return result

    def _sync_from_rule(self) -> None:
        super()._sync_from_rule()
        random_state = None if self._rule is None else self._rule.get_random_state()
        if random_state is not None:
            self._dropout_random_state = random_state

    def _differentiable_state(self) -> dict[str, Any]:
        state = super()._differentiable_state()
        state["stages"] = {
            "stage": self.stage,
            "stage_start": self.stage_start,
            "excluded": self._excluded,
            "dropout_rate": self._dropout_rate,
            "dropout_random_state": self._dropout_random_state,
        }
        return state

    def _set_differentiable_state(self, state: Mapping[str, Any]) -> None:
        stages = state["stages"]
        self.stage, self.stage_start = int(stages["stage"]), int(stages["stage_start"])
        self._excluded = {k: list(v) for k, v in stages["excluded"].items()}
        self._dropout_rate = float(stages["dropout_rate"])
        random_state = stages.get("dropout_random_state")
        self._dropout_random_state = None if random_state is None else list(random_state)
        if self._rule is not None:
            self._rule.set_random_state(self._dropout_random_state)
        super()._set_differentiable_state(state)
