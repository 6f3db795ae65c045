"""Latency terms of the hardware-aware losses: FBNet's factor and Single-Path NAS's log.

FBNet's latency term (Wu et al. 2018, arXiv 1812.03443, sec. 3.2-3.3) for `CostScaledStep`.

FBNet trains the architecture parameters theta on

    L(a, w_a) = CE(a, w_a) * alpha * log(LAT(a))^beta,

the latency of the relaxed network being the lookup table's sum over layers of
`sum_i m_{l,i} * LAT(b_{l,i})`, `m_l = GumbelSoftmax(theta_l)`. That is the loss of
Wu et al.'s mixed-precision DNAS with the latency as the cost, so the step is
`tfnas.engine.quantization_steps.CostScaledStep` (its `beta` is FBNet's alpha, its `gamma`
FBNet's beta) with `ExpectedLatencyCost` as its cost: the expected latency comes from
`tfnas.latency.LookupTable.expected_latency` of the rule's relaxed weights.

`log(LAT)^beta` is read as `(log LAT)^beta`, as the mixed-precision paper of the same
authors writes its `beta (log Cost)^gamma` (some unofficial FBNet code computes
`log(LAT^beta) = beta log LAT` instead). A fractional power of the log needs `log LAT > 0`,
and the factor only rises with the latency where it is > 1, so the latency is expressed in
a unit (`latency_unit`: the paper's milliseconds, or microseconds for the sub-millisecond
networks of small inputs) in which the fastest architecture of the space exceeds e;
`connect` refuses, before any training, a table whose fastest architecture does not.

Single-Path NAS (Stamoulis et al. 2019) adds `lambda * log(R)` to the cross-entropy, R the
runtime of the layers' selected candidates, and trains the weights and the thresholds
on that one loss: `RuntimeLogLoss` is the term, `SinglePathStep` the step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from tfnas import validation
from tfnas.blocks.supernet import LayerChoice
from tfnas.engine.architecture_steps import SingleLossStep
from tfnas.engine.supernet import choice_layers

# Milliseconds (the table's unit) -> the unit the loss factor takes the log of.
LATENCY_UNITS = {"ms": 1.0, "us": 1000.0}


def check_table_describes(table, supernet: keras.Model, owner: str) -> None:
    """Raises unless a bound latency table describes the supernet's layer choices.

    Raises:
        ValueError: when the table has no layout or lacks operations, when a choice is
            conditional on a depth choice (which the strategies do not learn), or when its
            choices are not the supernet's layer choices (names, candidates).
    """
    table._check_layout()
    layers = {
        layer.choice_name: layer
        for layer in choice_layers(supernet)
        if isinstance(layer, LayerChoice)
    }
    conditional = sorted({row["name"] for row in table.choices if row["conditions"]})
    if conditional:
        raise ValueError(
            f"{owner} learns layer choices only, but the latency table's choices "
            f"{conditional} run under depth choices, whose probabilities it does not "
            "learn. Use a space whose depth is a `skip` operation of each block (e.g. "
            "MobileSpace(..., joint_ops=True))."
        )
    for row in table.choices:
        layer = layers.get(row["name"])
        values = [dict(c["values"]) for c in row["candidates"]]
        if layer is None or [dict(v) for v in layer.candidate_values] != values:
            raise ValueError(
                f"The latency table {table.path or '(in memory)'!r} does not describe "
                f"this supernet: its choice {row['name']!r} with candidates {values} "
                f"is not among the supernet's layer choices {sorted(layers)} with the "
                "same candidates. Bind the table to the searched space "
                "(`table.bind(space)`)."
            )


class ExpectedLatencyCost:
    """LAT(a) of the relaxed network from a latency lookup table, in `unit`.

    The cost interface of `CostScaledStep` (as `ExpectedBitCost`): `connect(supernet,
    rule)`, `fixed` (the table's fixed term), `candidate_costs` (`(choice name, latency of
    each candidate)`), `expected_cost()` (a differentiable scalar) and `metric`.

    Args:
        table: a `LookupTable` bound to the space the supernet was built from.
        unit: "ms" or "us", the unit the loss factor takes the log of.
        owner: the strategy's name, for error messages.
        fractional_power: whether the loss takes a fractional power of log(LAT) (FBNet),
            which needs log(LAT) > 1; otherwise LAT > 0 is enough (a plain log).
    """

    def __init__(self, table, unit: str = "ms", owner: str = "FBNet", fractional_power=True):
        self.table = table
        self.fractional_power = bool(fractional_power)
        self.unit = validation.check_one_of("latency_unit", unit, tuple(LATENCY_UNITS))
        self.scale = LATENCY_UNITS[self.unit]
        self.metric = f"latency_{self.unit}"
        self.owner = owner
        self.fixed = 0.0
        self.candidate_costs: list[tuple[str, np.ndarray]] = []
        self.names: list[str] = []
        self._rule = None

    def connect(self, supernet: keras.Model, rule) -> None:
        """Matches the table's choices with the supernet's and checks `log(LAT) > 1`.

        Raises:
            ValueError: when the table has no layout or lacks operations, when its choices
                are not the supernet's layer choices (names, candidates), when a choice is
                conditional on a depth choice (which the rule does not relax), or when the
                fastest architecture's latency is <= e in `unit`.
        """
        table = self.table
        check_table_describes(table, supernet, self.owner)
        names = list(dict.fromkeys(row["name"] for row in table.choices))
        self._rule = rule
        self.names = names
        self.fixed = float(table.fit["fixed_ms"]) * self.scale
        self.candidate_costs = [
            (name, np.asarray(table.candidate_latencies(name), "float64") * self.scale)
            for name in names
        ]
        fastest = table.fastest_architecture()[0] * self.scale
        if not self.fractional_power:
            if not fastest > 0:
                raise ValueError(
                    f"{self.owner}'s runtime loss takes log(LAT), which needs a positive "
                    f"latency for every architecture. Received: the table {table.path!r} "
                    f"predicts {fastest:.4g} {self.unit} for the fastest one; rebuild it."
                )
            return
        if not fastest > math.e:
            suggestion = (
                "pass latency_unit='us' (the loss then takes the log of microseconds)"
                if self.unit == "ms"
                else "the table's latencies are too small for any unit offered"
            )
            raise ValueError(
                f"{self.owner}'s loss factor alpha * log(LAT)^beta needs log(LAT) > 1 for "
                f"every architecture, so that it grows with the latency. Received: the "
                f"fastest architecture's predicted latency is {fastest:.4g} {self.unit} "
                f"(log = {math.log(fastest) if fastest > 0 else float('-inf'):.3g}) with "
                f"latency_unit={self.unit!r}; {suggestion}."
            )

    def expected_cost(self):
        """LAT of the current relaxed sample, in `unit` (a scalar tensor)."""
        weights = {name: self._rule.relaxed_weights(name) for name in self.names}
        return self.table.expected_latency(weights) * self.scale

    def __call__(self) -> Any:
        return self.expected_cost()


# The authors' search_main.py: `runtime_lambda * 1e3 * tf.log(runtime_val)`.
RUNTIME_LOSS_SCALE = 1e3


class RuntimeLogLoss:
    """Single-Path NAS's runtime term `1000 * lambda * log(R)`, R in milliseconds.

    R is the lookup table's latency of the layers' candidate weights
    (`SuperKernelThresholds.relaxed_weights`: the selected candidates in the forward pass,
    the indicators' sigmoid surrogates in the backward pass), plus the table's fixed term.
    The factor 1000 is the authors' (their lambda values, e.g. 0.020, are for this form).
    `set_active(False)` turns the term off (the reference's warm-up, lambda = 0).

    Args:
        table: a `LookupTable` bound to the searched space.
        runtime_lambda: lambda (> 0).
        owner: the strategy's name, for error messages.
    """

    def __init__(self, table, runtime_lambda: float, owner: str = "SinglePathNAS"):
        self.runtime_lambda = validation.check_float(
            "runtime_lambda", runtime_lambda, low=0.0, low_inclusive=False
        )
        self.latency = ExpectedLatencyCost(table, unit="ms", owner=owner, fractional_power=False)
        self.weight: keras.Variable | None = None
        self._active: bool | None = None

    def connect(self, supernet: keras.Model, rule) -> None:
        """Matches the table with the supernet (see `ExpectedLatencyCost.connect`)."""
        self.latency.connect(supernet, rule)
        self.weight = keras.Variable(0.0, trainable=False, name="runtime_lambda")
        self._active = False

    def set_active(self, active: bool) -> None:
        """lambda (scaled) when active, 0 otherwise (assigned only when it changes)."""
        if bool(active) != self._active:
            self.weight.assign(RUNTIME_LOSS_SCALE * self.runtime_lambda if active else 0.0)
            self._active = bool(active)

    def __call__(self) -> Any:
        return self.weight.value * keras.ops.log(self.latency.expected_cost())


def authors_rmsprop(learning_rate: float) -> keras.optimizers.Optimizer:
    """The thresholds' optimizer of the authors' `nas_utils.build_optimizer`: RMSProp with
    decay 0.9, momentum 0.9 and epsilon 1e-3."""
    return keras.optimizers.RMSprop(
        learning_rate, rho=0.9, momentum=0.9, epsilon=1e-3, name="threshold_rmsprop"
    )


class SinglePathStep(SingleLossStep):
    """Single-Path NAS's single loss, with the reference's warm-up (Stamoulis et al. 2019).

    The weights and the thresholds learn from one backward pass of the training loss plus
    `RuntimeLogLoss` (`SingleLossStep`). In the warm-up epochs (`in_warmup(epoch)`) the
    runtime term is off and each indicator is dropped (set to 0) with probability
    `gate_drop_rate` at every step, the masks drawn from `rng()` (the oracle's seeded
    training random state), as the authors' `build_dropout_rate` / `build_runtime_lambda`
    do for their first 6255 of 10008 steps.

    Args:
        runtime_loss: the `RuntimeLogLoss`.
        in_warmup: `in_warmup(epoch)` for the 0-based epoch.
        gate_drop_rate: the warm-up's indicator dropout, in [0, 1).
        rng: returns the generator of the dropout masks.
        **kwargs: the arguments of `SingleLossStep` (`optimizer` defaults to
            `authors_rmsprop`).
    """

    def __init__(
        self,
        *,
        runtime_loss: RuntimeLogLoss,
        in_warmup: Callable[[int], bool],
        gate_drop_rate: float,
        rng: Callable[[], np.random.Generator],
        **kwargs,
    ):
        kwargs.setdefault("optimizer", authors_rmsprop)
        super().__init__(loss_term=runtime_loss, **kwargs)
        self.in_warmup = in_warmup
        self.gate_drop_rate = validation.check_float(
            "gate_drop_rate", gate_drop_rate, low=0.0, high=1.0, high_inclusive=False
        )
        self.rng = rng
        self._masks_dropped = True  # Unknown after connect: set them at the first step.

    def connect(self, supernet, rule, validation_data, training_data=None) -> None:
        super().connect(supernet, rule, validation_data, training_data)
        self._masks_dropped = True

    def step(self, step: int, progress: float) -> None:
        """Sets the runtime term and the indicators' dropout for the coming weight step."""
        super().step(step, progress)
        warm = bool(self.in_warmup(self._epoch))
        self.loss_term.set_active(not warm)
        sizes = {name: layout.num_thresholds for name, layout in self._rule.layouts().items()}
        if warm and self.gate_drop_rate > 0:
            rng = self.rng()
            self._rule.set_gate_dropout(
                {n: (rng.random(size) >= self.gate_drop_rate).astype("float32")
                 for n, size in sizes.items()}
            )  # fmt: skip
            self._masks_dropped = True
        elif self._masks_dropped:
            self._rule.set_gate_dropout({n: np.ones(size, "float32") for n, size in sizes.items()})
            self._masks_dropped = False
