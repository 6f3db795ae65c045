"""Tiny numpy networks for the learned parts of multi-trial strategies.

The controllers and predictors of NAS-RL, PNAS and NAO are small (tens of units), run on a
few hundred examples and must be saved as JSON in the oracle state, so they are written here
in numpy with hand-written backward passes instead of Keras models. Parameters are flat
`{name: np.ndarray}` dicts; `params_to_json` / `params_from_json` convert them to and from the
oracle state. Float64 throughout, so a JSON round trip is exact and a resumed search repeats
the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Params = dict[str, np.ndarray]

_ACTIVATIONS = ("tanh", "relu", "linear")


def params_to_json(params: Params) -> dict[str, Any]:
    """Returns `params` as JSON-able nested lists (float64 values round-trip exactly)."""
    return {name: value.tolist() for name, value in params.items()}


def params_from_json(state: dict[str, Any]) -> Params:
    """Inverse of `params_to_json`."""
    return {name: np.asarray(value, dtype=np.float64) for name, value in state.items()}


def glorot(rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
    """Glorot-uniform `(fan_in, fan_out)` weights."""
    limit = np.sqrt(6.0 / max(1, fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


def mlp_init(rng: np.random.Generator, sizes: Sequence[int], prefix: str = "") -> Params:
    """Returns the parameters of a dense network with layer sizes `sizes` (input first).

    Layer `i` has `{prefix}w{i}` of shape `(sizes[i], sizes[i + 1])` and `{prefix}b{i}`.
    """
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        params[f"{prefix}w{i}"] = glorot(rng, fan_in, fan_out)
        params[f"{prefix}b{i}"] = np.zeros(fan_out)
    return params


def _activate(z: np.ndarray, activation: str) -> np.ndarray:
    if activation == "tanh":
        return np.tanh(z)
    if activation == "relu":
        return np.maximum(z, 0.0)
    return z


def _activation_grad(out: np.ndarray, activation: str) -> np.ndarray:
    if activation == "tanh":
        return 1.0 - out**2
    if activation == "relu":
        return (out > 0).astype(out.dtype)
    return np.ones_like(out)


def mlp_forward(
    params: Params, x: np.ndarray, activations: Sequence[str], prefix: str = ""
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Runs a dense network on a batch `x` of shape `(n, sizes[0])`.

    Args:
        params: From `mlp_init`.
        x: The inputs.
        activations: One of "tanh", "relu", "linear" per layer.
        prefix: The prefix given to `mlp_init`.

    Returns:
        `(outputs, cache)`, the cache being what `mlp_backward` needs.
    """
    cache = [x]
    for i, activation in enumerate(activations):
        if activation not in _ACTIVATIONS:
            raise ValueError(f"Unknown activation {activation!r}; expected one of {_ACTIVATIONS}.")
        x = _activate(x @ params[f"{prefix}w{i}"] + params[f"{prefix}b{i}"], activation)
        cache.append(x)
    return x, cache


def mlp_backward(
    params: Params,
    cache: list[np.ndarray],
    grad_out: np.ndarray,
    activations: Sequence[str],
    prefix: str = "",
) -> tuple[Params, np.ndarray]:
    """Backpropagates `grad_out` (d loss / d outputs) through `mlp_forward`.

    Returns:
        `(grads, grad_inputs)`: gradients keyed like `params`, and d loss / d inputs.
    """
    grads = {}
    grad = grad_out
    for i in reversed(range(len(activations))):
        grad = grad * _activation_grad(cache[i + 1], activations[i])
        grads[f"{prefix}w{i}"] = cache[i].T @ grad
        grads[f"{prefix}b{i}"] = grad.sum(axis=0)
        grad = grad @ params[f"{prefix}w{i}"].T
    return grads, grad


class Adam:
    """Adam (or plain SGD) over a `{name: array}` dict, with JSON state.

    Parameters may be added between steps (a controller growing with the search space); each
    gets its own moments, created on its first step.

    Args:
        learning_rate: Step size.
        beta_1: Decay of the first moment.
        beta_2: Decay of the second moment.
        epsilon: Numerical stabilizer.
        use_adam: If False, plain gradient descent (`param -= learning_rate * grad`).

    Example:

    ```python
    params = {"w": np.zeros(3)}
    opt = Adam(learning_rate=0.1)
    opt.step(params, {"w": np.ones(3)})  # minimizes: w moves against the gradient
    ```
    """

    def __init__(
        self,
        learning_rate: float = 1e-2,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        use_adam: bool = True,
    ):
        self.learning_rate = learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.use_adam = use_adam
        self.m: Params = {}
        self.v: Params = {}
        self.t: dict[str, int] = {}

    def step(self, params: Params, grads: Params) -> None:
        """Updates `params` in place to decrease the loss whose gradients are `grads`."""
        # Updates are in place, so views into a packed buffer (see `minimize`) stay valid.
        for name, grad in grads.items():
            if not self.use_adam:
                params[name] -= self.learning_rate * grad
                continue
            t = self.t.get(name, 0) + 1
            m = self.beta_1 * self.m.get(name, 0.0) + (1 - self.beta_1) * grad
            v = self.beta_2 * self.v.get(name, 0.0) + (1 - self.beta_2) * grad**2
            m_hat = m / (1 - self.beta_1**t)
            v_hat = v / (1 - self.beta_2**t)
            params[name] -= self.learning_rate * m_hat / (np.sqrt(v_hat) + self.epsilon)
            self.m[name], self.v[name], self.t[name] = m, v, t

    def get_state(self) -> dict[str, Any]:
        return {"m": params_to_json(self.m), "v": params_to_json(self.v), "t": dict(self.t)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.m = params_from_json(state["m"])
        self.v = params_from_json(state["v"])
        self.t = {name: int(t) for name, t in state["t"].items()}


def minimize(
    params: Params,
    loss_and_grads: Callable[[Params], tuple[float, Params]],
    steps: int,
    learning_rate: float,
) -> float:
    """Runs `steps` full-batch Adam steps on `params` (updated in place); returns the last loss.

    The parameters are packed into one buffer (each `params[name]` becomes a view into it),
    so an Adam step costs a handful of numpy calls however many arrays the model has.
    """
    names = list(params)
    flat = np.concatenate([params[name].ravel() for name in names])
    offset = 0
    for name in names:
        size, shape = params[name].size, params[name].shape
        params[name] = flat[offset : offset + size].reshape(shape)
        offset += size
    optimizer = Adam(learning_rate)
    packed = {"all": flat}
    loss = 0.0
    for _ in range(steps):
        loss, grads = loss_and_grads(params)
        optimizer.step(packed, {"all": np.concatenate([grads[name].ravel() for name in names])})
    return loss
