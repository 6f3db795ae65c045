"""FBNet's latency term (Wu et al. 2018, arXiv 1812.03443, sec. 3.2-3.3) for `CostScaledStep`.

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
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from tfnas import validation
from tfnas.blocks.supernet import LayerChoice
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
    """

    def __init__(self, table, unit: str = "ms", owner: str = "FBNet"):
        self.table = table
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
