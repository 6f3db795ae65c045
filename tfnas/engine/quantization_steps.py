"""The cost term of Wu et al. (2018)'s mixed-precision DNAS and its architecture step.

DNAS (arXiv 1812.00090, sec. 3.2) trains the architecture parameters theta on the loss

    L(a, w_a) = CrossEntropy(a, w_a) x C(Cost(a)),    C(Cost) = beta * (log Cost)^gamma,

multiplicative, not additive: beta scales the whole loss and gamma sets how strongly the
cost trades against accuracy. The cost of the relaxed (Gumbel-softmax sampled) network is
the sum over layers of `sum_i m_{l,i} * Cost(edge_{l,i})`, `m_l = GumbelSoftmax(theta_l)`,
with the paper's two costs:

- "model_size": kernel parameters x weight bits (+ bias parameters x 32), in bits;
- "bitops": multiply-adds x weight bits x activation bits.

Layers outside the searched choices add their fixed cost (a plain Keras layer at 32 bits,
a quantized one at its bits), so `log Cost` is that of the whole network.
`ExpectedBitCost` computes it; `CostScaledStep` is `FirstOrderStep` with the alpha loss
multiplied by `C(Cost)` (on the validation split: the paper trains theta on 20% of the
training set held out from the weights).

Deviation: the weight step trains the weights on the compiled loss (cross-entropy). In
the paper's L the cost factor does not depend on the weights, so it only rescales their
gradient by a positive number per step; the engine's weight step is left unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from tfnas import cost as cost_lib
from tfnas.blocks.rules.bit_width import candidate_precisions
from tfnas.blocks.supernet import LayerChoice
from tfnas.engine.architecture_steps import FirstOrderStep
from tfnas.engine.supernet import choice_layers
from tfnas.quantization import report

COST_METRICS = ("bitops", "model_size")


def _check_metric(metric: str) -> str:
    if metric not in COST_METRICS:
        raise ValueError(f"cost must be one of {COST_METRICS}. Received: cost={metric!r}")
    return metric


def candidate_costs(choice: LayerChoice, metric: str) -> np.ndarray:
    """The cost of each candidate of a built layer choice (bits or bit-operations)."""
    input_shape = choice.built_input_shape
    precisions = candidate_precisions(choice)
    costs = []
    for candidate, precision in zip(choice.candidates, precisions):
        layer = getattr(candidate, "shared", candidate)
        weight_bits, activation_bits = precision or (32, 32)
        if metric == "bitops":
            macs = cost_lib.layer_macs(layer, input_shape)
            costs.append(float(macs) * weight_bits * activation_bits)
            continue
        if precision is None:
            costs.append(float(candidate.count_params()) * 32)
            continue
        kernel = sum(math.prod(k.shape) for k in layer.kernels().values())
        bias = 0 if getattr(layer, "bias", None) is None else math.prod(layer.bias.shape)
        costs.append(float(kernel * weight_bits + bias * 32))
    return np.asarray(costs, dtype="float64")


class ExpectedBitCost:
    """`Cost(a)` of the relaxed network: fixed layers plus `sum_l sum_i m_{l,i} Cost_{l,i}`.

    Args:
        metric: "bitops" (multiply-adds x weight bits x activation bits) or "model_size"
            (bits of the weights).
    """

    def __init__(self, metric: str = "bitops"):
        self.metric = _check_metric(metric)
        self.fixed = 0.0
        self.candidate_costs: list[tuple[str, np.ndarray]] = []
        self._rule = None

    def connect(self, supernet: keras.Model, rule) -> None:
        self._rule = rule
        self.candidate_costs = [
            (layer.choice_name, candidate_costs(layer, self.metric))
            for layer in choice_layers(supernet)
            if isinstance(layer, LayerChoice)
        ]
        key = "bitops" if self.metric == "bitops" else "weight_bits_total"
        self.fixed = float(sum(row[key] for row in report.layer_bits(supernet)))

    def expected_cost(self):
        """The relaxed network's cost (a scalar tensor)."""
        total = keras.ops.convert_to_tensor(self.fixed, "float32")
        for name, costs in self.candidate_costs:
            weights = self._rule.relaxed_weights(name)
            total = total + keras.ops.sum(weights * costs.astype("float32"))
        return total

    def __call__(self):
        return self.expected_cost()


def cost_factor(expected_cost, beta: float, gamma: float):
    """`beta * (log Cost)^gamma` (a tensor)."""
    return beta * keras.ops.power(keras.ops.log(expected_cost), gamma)


class CostScaledStep(FirstOrderStep):
    """`FirstOrderStep` on DNAS's loss `CE x beta * (log Cost)^gamma` (see the module doc).

    Args:
        cost: an `ExpectedBitCost`.
        beta, gamma: the cost factor's coefficients (> 0).
        **kwargs: the arguments of `FirstOrderStep` (learning_rate, resample, ...).

    Raises:
        ValueError: at `connect`, when the network's cost is <= e (log Cost must be > 1
            so that the factor grows with the cost for every gamma).
    """

    def __init__(self, *, cost: ExpectedBitCost, beta: float, gamma: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.cost = cost
        self.beta = float(beta)
        self.gamma = float(gamma)

    def connect(self, supernet, rule, validation_data, training_data=None) -> None:
        super().connect(supernet, rule, validation_data, training_data)
        self.cost.connect(supernet, rule)
        smallest = self.cost.fixed + sum(float(c.min()) for _, c in self.cost.candidate_costs)
        if not smallest > math.e:
            raise ValueError(
                f"{self.owner}'s cost term needs a network cost > e, so that log(cost) > 1. "
                f"Received: the cheapest architecture costs {smallest} ({self.cost.metric})."
            )

    def cost_factor(self):
        """`beta * (log E[Cost])^gamma` of the current relaxed sample (a tensor)."""
        return cost_factor(self.cost.expected_cost(), self.beta, self.gamma)

    def _loss(self, x, y, training: bool = True):
        return super()._loss(x, y, training=training) * self.cost_factor()
