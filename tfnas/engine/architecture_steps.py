"""Architecture steps: the gradient updates of a strategy's architecture parameters.

A differentiable strategy (`tfnas.tuners.differentiable`, `gumbel`, `partial_channels`)
configures one of these; `SupernetTrainer` runs it. The trainer calls `connect(supernet,
rule, validation_data, training_data)` once the supernet is built, `begin_epoch(epoch)`
before each epoch and `step(step, progress)` before the weight step of each batch. A step
owns what training the alphas needs (the optimizer, the data iterators, the traced update);
`get_state()` is the JSON the oracle keeps in its own state, so one checkpoint of the oracle
covers it.

- `FirstOrderStep`: one Adam step on the gradient of the supernet's loss on the next batch
  of a split with respect to the alphas: the validation split for the bilevel methods
  (DARTS first order, P-DARTS, PC-DARTS, GDAS). Plug-ins: a `loss_term` added to that
  loss (`ExpectedMacs`, `ResourceScore`), a `resample` hook run before the alpha step and
  again before the weight step (`GumbelSampling`: fresh Gumbel noise and the annealed
  temperature), and `alphas_frozen(epoch)`: epochs in which the step leaves the alphas
  alone (the alpha-frozen warm-up of P-DARTS and PC-DARTS), so only the weights train.
- `SingleLossStep`: SNAS's single loss. The weight step itself also updates the alphas:
  one forward pass with one Gumbel sample, one backward pass giving the gradients of the
  weights (applied by the supernet's optimizer) and of the alphas (this step's Adam).
- `SecondOrderStep`: DARTS's unrolled step with the finite-difference Hessian-vector
  product; the weights and batch-norm statistics are restored afterwards.

Every step uses Adam (`epsilon=1e-8`, or the strategy's `optimizer`) with the L2 decay
added to the gradient, checks in the graph that the loss and the alphas are finite, and is
traced once for every batch size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np

from tfnas import cost, validation
from tfnas.blocks.supernet import LayerChoice
from tfnas.engine.supernet import (
    batch_norm_layers,
    choice_layers,
    moving_statistics_kept,
    synchronous,
)

SPLITS = ("validation", "training")


def check_built_with(supernet: keras.Model, rule, owner: str) -> None:
    """Raises ValueError unless `supernet` was built with the mixing rule `rule`."""
    if not any(layer.mixing_rule is rule for layer in choice_layers(supernet)):
        raise ValueError(
            f"{owner}'s architecture step needs a supernet built with the rule returned by "
            "the oracle's make_mixing_rule()."
        )


class ArchitectureStep:
    """The protocol between `SupernetTrainer` and a strategy's architecture update."""

    def connect(self, supernet: keras.Model, rule, validation_data, training_data=None) -> None:
        """Binds the step to a built supernet, its mixing rule and the data.

        Args:
            supernet: the compiled supernet, built with `rule`.
            rule: the supernet's `MixingRule`, holding the architecture parameters.
            validation_data: the batched validation `tf.data.Dataset` of `(x, y)`.
            training_data: the batched training `tf.data.Dataset` of `(x, y)` (one pass).
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement connect.")

    def begin_epoch(self, epoch: int) -> None:
        """Called before each supernet epoch (0-based)."""

    def end_epoch(self, epoch: int) -> None:
        """Called after each supernet epoch's last weight step, before the oracle's epoch
        hook and the checkpoint."""

    def step(self, step: int, progress: float) -> None:
        """One architecture update, before the weight step of a batch.

        Args:
            step: the global step, counted over all epochs.
            progress: fraction of the supernet training done, in [0, 1).
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement step.")

    def get_state(self) -> dict[str, Any]:
        """The step's state as JSON (e.g. its optimizer's slots)."""
        return {}

    def set_state(self, state: Mapping[str, Any] | None) -> None:
        """Restores `get_state()`'s JSON (None: keep the fresh state)."""


class BatchScoringStep(ArchitectureStep):
    """Base of the steps that score given architectures on the next batch of one split.

    For strategies that learn without gradients through the supernet (ASNG-NAS, MANAS):
    `score(values, x, y)` sets the architecture through the rule's variables (one trace
    serves every architecture) and computes `batch_score(supernet)(x, y)` with the supernet
    in training mode and the batch-norm moving statistics left unchanged. The batches of
    the split restart every epoch, so a resumed search sees the same batches.

    Args:
        split: "validation" or "training".
        owner: the strategy's name, for error messages.
        split_argument: the argument name `split` is checked under.
    """

    def __init__(self, split: str, owner: str, split_argument: str = "split"):
        self.split = validation.check_one_of(split_argument, split, SPLITS)
        self.owner = owner
        self._supernet: keras.Model | None = None
        self._rule = None
        self._data = None
        self._iterator = None
        self._epoch = 0
        self._function = None

    @property
    def connected(self) -> bool:
        """Whether `connect` bound the step to a supernet."""
        return self._supernet is not None

    def connect(self, supernet, rule, validation_data, training_data=None) -> None:
        """Binds the step to the supernet built with `rule` and to the data.

        Raises:
            ValueError: when the supernet was not built with `rule`, or the split is
                missing.
        """
        check_built_with(supernet, rule, self.owner)
        data = validation_data if self.split == "validation" else training_data
        if data is None:
            raise ValueError(
                f"{self.owner} needs {self.split} data for its architecture steps. Received: "
                f"{self.split}_data=None."
            )
        self._supernet, self._rule, self._data = supernet, rule, data
        self._iterator, self._function = None, None

    def begin_epoch(self, epoch: int) -> None:
        self._iterator = None
        self._epoch = int(epoch)

    def _check_connected(self) -> None:
        if not self.connected:
            raise RuntimeError(f"{self.owner}'s architecture step runs after connect(...).")

    def next_batch(self):
        """The next `(x, y)` of the split."""
        if self._iterator is None:
            self._iterator = iter(synchronous(self._data.repeat()))
        return next(self._iterator)[:2]

    def batch_score(self, supernet: keras.Model) -> Callable:
        """`score(x, y) -> scalar tensor` of the supernet's current architecture."""
        raise NotImplementedError(f"{type(self).__name__} does not implement batch_score.")

    def score(self, values: Mapping[str, Any], x, y) -> float:
        """The score of architecture `values` on the batch `(x, y)`."""
        self._rule.set_architecture(values)
        if self._function is None:
            import tensorflow as tf

            traced = tf.function(
                self.batch_score(self._supernet), reduce_retracing=True, autograph=False
            )
            norms = batch_norm_layers(self._supernet)

            def kept(x, y):
                with moving_statistics_kept(norms):
                    return traced(x, y)

            self._function = kept
        return float(self._function(x, y))


class GumbelSampling:
    """A `resample` hook: fresh Gumbel noise and the annealed temperature (SNAS, GDAS).

    Args:
        rng: returns the generator the noise is drawn from (the oracle's seeded training
            random state, read at each call so a restored state is used).
        temperature: `temperature(progress)`, tau after `progress` of the search.
    """

    def __init__(
        self, rng: Callable[[], np.random.Generator], temperature: Callable[[float], float]
    ):
        self.rng = rng
        self.temperature = temperature

    def __call__(self, rule, progress: float) -> None:
        rng = self.rng()
        noise = {
            name: rng.gumbel(size=len(values)).tolist()
            for name, values in rule.get_alphas().items()
        }
        rule.set_noise(noise)
        rule.set_temperature(self.temperature(progress))


class ResourceScore:
    """SNAS's resource constraint as the paper defines it (Xie et al. 2019, sec. 2.4).

    The cost of the sampled network is locally decomposable, `C(Z) = sum over choices of
    C(Z_i)` with `C(Z_i) = sum_k Z_ik * MMACs_ik` (the relaxed sample Z times each
    candidate's multiply-adds in millions), and is not differentiated through: its
    gradient is the score-function one, `grad_alpha E[C(Z)] = E[C(Z) grad_alpha log
    p_alpha(Z)]`, credited per choice. The term is `weight * sum_i log p_alpha(Z_i) *
    stop_gradient(C(Z_i))`, p the Gumbel-softmax density at the drawn sample
    (`GumbelMixture.sample_log_density`); all layers of one choice name share its sample,
    so their costs add up under one log-density. Deviations: the cost is multiply-adds
    only (SNAS combines parameter size, FLOPs and memory access cost), and Z is held fixed
    in log p (the authors' code also lets the gradient pass through the sample's
    reparameterization).

    Args:
        weight: lambda (> 0).
    """

    def __init__(self, weight: float):
        self.weight = float(weight)
        self.candidate_macs: list[tuple[str, np.ndarray]] = []
        self._rule = None

    def connect(self, supernet: keras.Model, rule) -> None:
        self._rule = rule
        self.candidate_macs = _candidate_macs(supernet)

    def sampled_macs(self) -> dict[str, Any]:
        """`{choice_name: C(Z_i)}`, the sample's multiply-adds in millions (tensors)."""
        costs: dict[str, Any] = {}
        for name, macs in self.candidate_macs:
            sampled = keras.ops.sum(self._rule.relaxed_weights(name) * macs)
            costs[name] = costs[name] + sampled if name in costs else sampled
        return costs

    def __call__(self):
        total = 0.0
        for name, sampled in self.sampled_macs().items():
            density = self._rule.sample_log_density(name)
            total = total + density * keras.ops.stop_gradient(sampled)
        return self.weight * total


def _candidate_macs(supernet: keras.Model) -> list[tuple[str, np.ndarray]]:
    """`(choice_name, MMACs of each candidate)` of every layer choice of the supernet."""
    return [
        (
            layer.choice_name,
            np.asarray(
                [cost.layer_macs(c, layer.built_input_shape) / 1e6 for c in layer.candidates],
                dtype="float32",
            ),
        )
        for layer in choice_layers(supernet)
        if isinstance(layer, LayerChoice)
    ]


class ExpectedMacs:
    """SNAS's resource term: `weight * sum over layer choices of sum_k w_k * MMACs_k`.

    `w` is the rule's relaxed sample (`relaxed_weights`), so the term is differentiable in
    alpha; `MMACs_k` the multiply-adds of candidate k in millions.

    Args:
        weight: lambda (> 0).
    """

    def __init__(self, weight: float):
        self.weight = float(weight)
        self.candidate_macs: list[tuple[str, np.ndarray]] = []
        self._rule = None

    def connect(self, supernet: keras.Model, rule) -> None:
        self._rule = rule
        self.candidate_macs = _candidate_macs(supernet)

    def expected_macs(self):
        """The relaxed sample's multiply-adds in millions (a tensor)."""
        total = 0.0
        for name, macs in self.candidate_macs:
            total = total + keras.ops.sum(self._rule.relaxed_weights(name) * macs)
        return total

    def __call__(self):
        return self.weight * self.expected_macs()


def _batch_signature(data) -> tuple:
    """`(x_spec, y_spec)` of a batched dataset's elements, with any batch size."""
    import tensorflow as tf

    def any_batch(spec):
        if not isinstance(spec, tf.TensorSpec) or spec.shape.rank is None:
            return spec
        return tf.TensorSpec([None, *spec.shape[1:]], spec.dtype)

    return tuple(tf.nest.map_structure(any_batch, tuple(data.element_spec)[:2]))


class FirstOrderStep(ArchitectureStep):
    """One Adam step on the gradient of the supernet's loss on a batch w.r.t. the alphas.

    Before the step the rule is put back in mixture mode (and `resample` is called); after
    it, `resample` is called again, so the weight step gets its own sample.

    Args:
        learning_rate: Adam's learning rate.
        beta_1, beta_2: Adam's betas.
        weight_decay: L2 penalty added to the alphas' gradient.
        split: the data the step takes its batches from: "validation" or "training".
        loss_term: optional `term()` added to the loss, with `connect(supernet, rule)`
            (e.g. `ExpectedMacs`).
        resample: optional `resample(rule, progress)`, run before the alpha step and
            before the weight step (e.g. `GumbelSampling`).
        alphas_frozen: optional `alphas_frozen(epoch)`: True for the (0-based, global)
            epochs whose steps leave the alphas unchanged (a warm-up that trains only the
            weights, with the mixture of the current alphas); the step then takes no
            batch and only sets the rule for the weight step.
        owner: the strategy's name, for error messages.
        optimizer: optional `optimizer(learning_rate)` returning the Keras optimizer of
            the alphas (default: Adam with `beta_1`, `beta_2` and `epsilon=1e-8`).

    Example:

    ```python
    step = FirstOrderStep(learning_rate=3e-4, beta_1=0.5, beta_2=0.999, weight_decay=1e-3)
    step.connect(supernet, rule, validation_data, training_data)
    step.begin_epoch(0)
    step.step(0, 0.0)    # alphas updated on the first validation batch
    ```
    """

    def __init__(
        self,
        *,
        learning_rate: float,
        beta_1: float,
        beta_2: float,
        weight_decay: float,
        split: str = "validation",
        loss_term=None,
        resample: Callable[[Any, float], None] | None = None,
        alphas_frozen: Callable[[int], bool] | None = None,
        owner: str = "DARTS",
        optimizer: Callable[[float], keras.optimizers.Optimizer] | None = None,
    ):
        self.split = validation.check_one_of("split", split, SPLITS)
        self.make_optimizer = optimizer
        self.alphas_frozen = alphas_frozen
        self.learning_rate = float(learning_rate)
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.weight_decay = float(weight_decay)
        self.loss_term = loss_term
        self.resample = resample
        self.owner = owner
        self.optimizer: keras.optimizers.Optimizer | None = None
        self._optimizer_state: list | None = None
        self._supernet: keras.Model | None = None
        self._rule = None
        self._data: dict[str, Any] = {}
        self._iterators: dict[str, Any] = {}
        self._epoch = 0
        self._function = None

    @property
    def connected(self) -> bool:
        """Whether `connect` bound the step to a supernet."""
        return self._supernet is not None

    def connect(self, supernet, rule, validation_data, training_data=None) -> None:
        """Binds the step to the supernet built with `rule` and to the data.

        Raises:
            ValueError: when the supernet was not built with `rule`, or the split the step
                needs is missing.
        """
        check_built_with(supernet, rule, self.owner)
        self._data = {"validation": validation_data, "training": training_data}
        for split in self._splits():
            if self._data[split] is None:
                raise ValueError(
                    f"{self.owner} needs {split} data for its architecture steps. Received: "
                    f"{split}_data=None."
                )
        self._supernet, self._rule = supernet, rule
        self._iterators, self._function, self.optimizer = {}, None, None
        if self.loss_term is not None:
            self.loss_term.connect(supernet, rule)

    def _splits(self) -> tuple[str, ...]:
        """The splits the step's batches come from, in argument order."""
        return (self.split,)

    def begin_epoch(self, epoch: int) -> None:
        # The batches restart every epoch, so a resumed search sees the same batches as an
        # uninterrupted one.
        self._iterators = {}
        self._epoch = int(epoch)

    def step(self, step: int, progress: float) -> None:
        """Takes one alpha step on the next batch, then sets the rule for the weight step.

        Raises:
            RuntimeError: before `connect`.
            FloatingPointError: when the alpha step's loss or the alphas are not finite.
        """
        if not self.connected:
            raise RuntimeError(f"{self.owner}'s architecture step runs after connect(...).")
        self._rule.use_mixture()
        if self.resample is not None:
            self.resample(self._rule, progress)
        if self.frozen():
            return  # Warm-up: the weight step trains with the current alphas.
        batches = [tensor for split in self._splits() for tensor in self._next_batch(split)[:2]]
        loss, alphas_finite = (float(v) for v in self._checked_function()(*batches))
        if not np.isfinite(loss) or not alphas_finite:
            raise FloatingPointError(
                f"{self.owner}'s architecture step at global step {step} (epoch "
                f"{self._epoch + 1}) gave loss {loss} and alphas "
                f"{'finite' if alphas_finite else 'with NaN/inf'}: the "
                "search diverged. The checkpoint of the last finished epoch is kept; lower "
                "arch_learning_rate or the supernet's learning rate and resume or restart."
            )
        if self.resample is not None:
            self.resample(self._rule, progress)

    def frozen(self) -> bool:
        """Whether the alphas stay unchanged in the current epoch (`alphas_frozen`)."""
        return self.alphas_frozen is not None and bool(self.alphas_frozen(self._epoch))

    def _next_batch(self, split: str):
        if split not in self._iterators:
            self._iterators[split] = iter(synchronous(self._data[split].repeat()))
        return next(self._iterators[split])

    def _signature(self) -> tuple:
        """The `input_signature` of the step: one trace for every batch size."""
        return tuple(
            spec for split in self._splits() for spec in _batch_signature(self._data[split])
        )

    # --- State --------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """`{"optimizer": Adam's variables as lists}` (None before the first step)."""
        if self.optimizer is None:
            return {"optimizer": self._optimizer_state}
        return {
            "optimizer": [
                keras.ops.convert_to_numpy(v.value).tolist() for v in self.optimizer.variables
            ]
        }

    def set_state(self, state: Mapping[str, Any] | None) -> None:
        self._optimizer_state = (state or {}).get("optimizer")
        if self.optimizer is not None and self._optimizer_state is not None:
            self._assign_optimizer_state()

    def _assign_optimizer_state(self) -> None:
        for variable, value in zip(self.optimizer.variables, self._optimizer_state):
            variable.assign(np.asarray(value, dtype=variable.dtype))

    # --- The update ---------------------------------------------------------------------

    def _get_optimizer(self) -> keras.optimizers.Optimizer:
        if self.optimizer is None:
            if self.make_optimizer is not None:
                self.optimizer = self.make_optimizer(self.learning_rate)
            else:
                self.optimizer = keras.optimizers.Adam(
                    self.learning_rate,
                    beta_1=self.beta_1,
                    beta_2=self.beta_2,
                    epsilon=1e-8,
                    name="arch_adam",
                )
            self.optimizer.build(self._rule.alpha_variables)
            if self._optimizer_state is not None:
                self._assign_optimizer_state()
        return self.optimizer

    def _loss(self, x, y, training: bool = True):
        """The supernet's loss on a batch (the compiled loss, plus regularization)."""
        y_pred = self._supernet(x, training=training)
        return self._supernet.compute_loss(x=x, y=y, y_pred=y_pred, training=training)

    def _apply_gradients(self, gradients) -> None:
        import tensorflow as tf

        alphas, decay = self._rule.alpha_variables, self.weight_decay
        gradients = [
            (tf.zeros_like(alpha.value) if g is None else g) + decay * alpha.value
            for g, alpha in zip(gradients, alphas)
        ]
        self._get_optimizer().apply_gradients(zip(gradients, alphas))

    def _build_function(self):
        """The alpha update as a `tf.function` of the batches, returning the loss."""
        import tensorflow as tf

        alphas = self._rule.alpha_variables
        self._get_optimizer()

        @tf.function(input_signature=self._signature(), autograph=False)
        def arch_step(x, y):
            with tf.GradientTape() as tape:
                loss = self._loss(x, y)
                if self.loss_term is not None:
                    loss = loss + self.loss_term()
            self._apply_gradients(tape.gradient(loss, [a.value for a in alphas]))
            return loss

        return arch_step

    def _checked_function(self):
        """The update, returning `[loss, 1.0 if every alpha is finite else 0.0]`.

        The check runs in the graph: one small transfer per step instead of reading
        every alpha back to NumPy.
        """
        if self._function is None:
            import tensorflow as tf

            arch_step, alphas = self._build_function(), self._rule.alpha_variables

            @tf.function(input_signature=arch_step.input_signature, autograph=False)
            def checked_arch_step(*batch):
                loss = tf.cast(arch_step(*batch), "float32")
                finite = [tf.reduce_all(tf.math.is_finite(a.value)) for a in alphas]
                return tf.stack([loss, tf.cast(tf.reduce_all(finite), "float32")])

            self._function = checked_arch_step
        return self._function


class SecondOrderStep(FirstOrderStep):
    """DARTS's unrolled second-order step (Liu et al. 2018, eq. 7-8).

    The alpha gradient is taken at the weights after one virtual SGD step
    `w' = w - xi * (grad_w L_train(w, alpha) + decay * w)` (no momentum; `decay` is the
    supernet optimizer's `weight_decay`), and the implicit term
    `-xi * grad^2_{alpha,w} L_train(w, alpha) grad_{w'} L_val(w', alpha)` uses the
    finite-difference Hessian-vector product (two extra passes at `w +- eps * v`,
    `v = grad_{w'} L_val`, `eps = 0.01 / ||v||`). The training batch comes from the step's
    own pass over the training split. The weights and batch-norm statistics are restored
    afterwards.

    Args:
        unrolled_learning_rate: xi (> 0), or None for the supernet optimizer's current
            learning rate, as in the paper.
        **kwargs: the arguments of `FirstOrderStep` (`split` is the validation split).
    """

    def __init__(self, *, unrolled_learning_rate: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.unrolled_learning_rate = unrolled_learning_rate

    def _splits(self) -> tuple[str, ...]:
        return (self.split, "training")

    def _build_function(self):
        import tensorflow as tf

        supernet, alphas = self._supernet, self._rule.alpha_variables
        self._get_optimizer()
        weights = list(supernet.trainable_variables)
        state = list(supernet.non_trainable_variables)
        weight_decay = float(getattr(supernet.optimizer, "weight_decay", None) or 0.0)

        def gradients(loss_fn, variables):
            with tf.GradientTape() as tape:
                loss = loss_fn()
            grads = tape.gradient(loss, [v.value for v in variables])
            return loss, [
                tf.zeros_like(v.value) if g is None else g for g, v in zip(grads, variables)
            ]

        @tf.function(input_signature=self._signature(), autograph=False)
        def arch_step(x_val, y_val, x_train, y_train):
            xi = (
                self.unrolled_learning_rate
                if self.unrolled_learning_rate is not None
                else tf.cast(supernet.optimizer.learning_rate, "float32")
            )
            saved_weights = [tf.identity(w.value) for w in weights]
            saved_state = [tf.identity(v.value) for v in state]
            # The virtual step w' = w - xi * (grad_w L_train + decay * w).
            _, grads = gradients(lambda: self._loss(x_train, y_train), weights)
            for w, g in zip(weights, grads):
                w.assign_sub(xi * (g + weight_decay * w.value))
            loss, grads = gradients(lambda: self._loss(x_val, y_val), alphas + weights)
            alpha_grads, vector = grads[: len(alphas)], grads[len(alphas) :]
            epsilon = 0.01 / (tf.linalg.global_norm(vector) + 1e-12)
            # grad_alpha L_train at w + eps * v and w - eps * v (the original w).
            hessian = []
            for sign in (1.0, -1.0):
                for w, saved, v in zip(weights, saved_weights, vector):
                    w.assign(saved + sign * epsilon * v)
                hessian.append(gradients(lambda: self._loss(x_train, y_train), alphas)[1])
            for w, saved in zip(weights, saved_weights):
                w.assign(saved)
            for v, saved in zip(state, saved_state):
                v.assign(saved)
            self._apply_gradients(
                [
                    g - xi * (plus - minus) / (2.0 * epsilon)
                    for g, plus, minus in zip(alpha_grads, *hessian)
                ]
            )
            return loss

        return arch_step


class SingleLossStep(FirstOrderStep):
    """SNAS's single loss: the weights and the alphas learn from one backward pass.

    SNAS (Xie et al. 2019) minimizes one loss, the training loss of the sampled network,
    over the weights and the alphas together: each training step draws one Gumbel sample,
    runs one forward and one backward pass, and both optimizers step. `connect` installs
    that step as the supernet's `train_step` (the trainer's `fit` then calls it on each of
    its batches): the gradient of the compiled loss (plus `loss_term`, which only the
    alphas see) w.r.t. the supernet's trainable weights and the alphas is taken in one
    `tape.gradient`; the weights' part goes to the supernet's optimizer, the alphas' part
    (plus the L2 decay) to this step's Adam. `step(...)` only draws the sample of the
    coming training step (`resample`) and checks the alphas of the previous one.

    The supernet must be compiled without a distribution strategy (the alphas live on one
    device) and without loss scaling (the alpha gradient is taken unscaled).

    Args:
        **kwargs: the arguments of `FirstOrderStep` (`split` is "training"; no batches of
            its own are drawn).
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("split", "training")
        super().__init__(**kwargs)
        self._alphas_finite = None

    def _splits(self) -> tuple[str, ...]:
        return ()

    def connect(self, supernet, rule, validation_data, training_data=None) -> None:
        """Binds the step and installs the combined weight-and-alpha `train_step`.

        Raises:
            ValueError: as `FirstOrderStep.connect`, and when the supernet was compiled
                under a distribution strategy.
        """
        super().connect(supernet, rule, validation_data, training_data)
        if getattr(supernet, "_distribute_strategy", None) is not None:
            raise ValueError(
                f"{self.owner}'s single-loss step updates the alphas inside the weight step, "
                "on one device. Received: a supernet compiled under "
                f"{type(supernet._distribute_strategy).__name__}; search without "
                "distribution_strategy."
            )
        self._get_optimizer()
        self._alphas_finite = keras.Variable(1.0, trainable=False, name="alphas_finite")
        supernet.train_step = self._train_step
        # A train function traced before would still run the plain weight step.
        supernet.train_function = None

    def _train_step(self, data):
        import tensorflow as tf

        supernet, alphas = self._supernet, self._rule.alpha_variables
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = supernet(x, training=True)
            loss = supernet.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
            )
            total = loss if self.loss_term is None else loss + self.loss_term()
        tracker = getattr(supernet, "_loss_tracker", None)
        if tracker is not None:  # What Keras's train_step reports as "loss".
            tracker.update_state(loss, sample_weight=tf.shape(tf.nest.flatten(x)[0])[0])
        weights = list(supernet.trainable_weights)
        gradients = tape.gradient(total, [w.value for w in weights] + [a.value for a in alphas])
        supernet.optimizer.apply_gradients(zip(gradients[: len(weights)], weights))
        self._apply_gradients(gradients[len(weights) :])
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(a.value)) for a in alphas])
        self._alphas_finite.assign(tf.cast(finite, "float32"))
        return supernet.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def step(self, step: int, progress: float) -> None:
        """Draws the sample of the coming training step (weights and alphas share it).

        Raises:
            RuntimeError: before `connect`.
            FloatingPointError: when the previous step left an alpha that is not finite.
        """
        if not self.connected:
            raise RuntimeError(f"{self.owner}'s architecture step runs after connect(...).")
        if float(self._alphas_finite.value) != 1.0:
            raise FloatingPointError(
                f"{self.owner}'s single-loss step before global step {step} (epoch "
                f"{self._epoch + 1}) left alphas with NaN/inf: the search diverged. The "
                "checkpoint of the last finished epoch is kept; lower arch_learning_rate or "
                "the supernet's learning rate and resume or restart."
            )
        self._rule.use_mixture()
        if self.resample is not None:
            self.resample(self._rule, progress)
