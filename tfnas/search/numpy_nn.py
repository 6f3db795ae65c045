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


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def lstm_init(rng: np.random.Generator, input_size: int, hidden_size: int, prefix: str) -> Params:
    """Returns the parameters of one LSTM layer: `{prefix}w` `(input + hidden, 4 * hidden)`
    (gates i, f, o, g) and `{prefix}b` (the forget gate's bias starts at 1)."""
    bias = np.zeros(4 * hidden_size)
    bias[hidden_size : 2 * hidden_size] = 1.0
    return {
        f"{prefix}w": glorot(rng, input_size + hidden_size, 4 * hidden_size),
        f"{prefix}b": bias,
    }


def lstm_forward(
    params: Params, xs: np.ndarray, h0: np.ndarray, c0: np.ndarray, prefix: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[np.ndarray, ...]]]:
    """Runs an LSTM layer over a batch of sequences.

    Args:
        params: From `lstm_init`.
        xs: Inputs `(n, steps, input_size)`.
        h0: Initial hidden state `(n, hidden_size)`.
        c0: Initial cell state `(n, hidden_size)`.
        prefix: The prefix given to `lstm_init`.

    Returns:
        `(hs, h, c, cache)`: the hidden states `(n, steps, hidden_size)`, the last hidden
        and cell states, and what `lstm_backward` needs.
    """
    w, b = params[f"{prefix}w"], params[f"{prefix}b"]
    size = b.size // 4
    h, c = h0, c0
    hs, cache = [], []
    for t in range(xs.shape[1]):
        xh = np.concatenate([xs[:, t], h], axis=1)
        z = xh @ w + b
        i, f, o = (_sigmoid(z[:, k * size : (k + 1) * size]) for k in range(3))
        g = np.tanh(z[:, 3 * size :])
        c_prev = c
        c = f * c_prev + i * g
        tanh_c = np.tanh(c)
        h = o * tanh_c
        hs.append(h)
        cache.append((xh, i, f, o, g, c_prev, tanh_c))
    hs_array = np.stack(hs, axis=1) if hs else np.zeros((len(xs), 0, size))
    return hs_array, h, c, cache


def lstm_backward(
    params: Params,
    cache: list[tuple[np.ndarray, ...]],
    grad_hs: np.ndarray,
    prefix: str,
    grad_h: np.ndarray | None = None,
    grad_c: np.ndarray | None = None,
) -> tuple[Params, np.ndarray, np.ndarray, np.ndarray]:
    """Backpropagates through `lstm_forward` (backpropagation through time).

    Args:
        params: From `lstm_init`.
        cache: From `lstm_forward`.
        grad_hs: d loss / d hs, `(n, steps, hidden_size)`.
        prefix: The prefix given to `lstm_init`.
        grad_h: d loss / d (last hidden state), if the loss reads it.
        grad_c: d loss / d (last cell state), if the loss reads it.

    Returns:
        `(grads, grad_xs, grad_h0, grad_c0)`.
    """
    w = params[f"{prefix}w"]
    size = w.shape[1] // 4
    n = grad_hs.shape[0]
    dh_next = np.zeros((n, size)) if grad_h is None else grad_h
    dc_next = np.zeros((n, size)) if grad_c is None else grad_c
    dw, db = np.zeros_like(w), np.zeros(4 * size)
    grad_xs = np.zeros((n, len(cache), w.shape[0] - size))
    for t in reversed(range(len(cache))):
        xh, i, f, o, g, c_prev, tanh_c = cache[t]
        dh = grad_hs[:, t] + dh_next
        dc = dc_next + dh * o * (1.0 - tanh_c**2)
        dz = np.concatenate(
            [
                dc * g * i * (1.0 - i),
                dc * c_prev * f * (1.0 - f),
                dh * tanh_c * o * (1.0 - o),
                dc * i * (1.0 - g**2),
            ],
            axis=1,
        )
        dw += xh.T @ dz
        db += dz.sum(axis=0)
        dxh = dz @ w.T
        grad_xs[:, t] = dxh[:, : w.shape[0] - size]
        dh_next, dc_next = dxh[:, w.shape[0] - size :], dc * f
    return {f"{prefix}w": dw, f"{prefix}b": db}, grad_xs, dh_next, dc_next


def l2_normalize(x: np.ndarray, epsilon: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Returns `(x / ||x||, ||x||)` along the last axis (the norm kept for the backward)."""
    norm = np.sqrt((x**2).sum(axis=-1, keepdims=True)) + epsilon
    return x / norm, norm


def l2_normalize_backward(y: np.ndarray, norm: np.ndarray, grad_y: np.ndarray) -> np.ndarray:
    """d loss / d x for `y, norm = l2_normalize(x)`, given d loss / d y."""
    return (grad_y - y * (y * grad_y).sum(axis=-1, keepdims=True)) / norm
