import json

import numpy as np
import pytest

from tfnas.search import numpy_nn


@pytest.mark.parametrize("activations", [("tanh", "linear"), ("relu", "tanh", "linear")])
def test_mlp_backward_matches_finite_differences(activations):
    rng = np.random.default_rng(0)
    sizes = [3] + [4] * (len(activations) - 1) + [2]
    params = numpy_nn.mlp_init(rng, sizes, "net/")
    x = rng.normal(size=(5, 3))
    weights = rng.normal(size=(5, 2))

    def loss():
        out, _ = numpy_nn.mlp_forward(params, x, activations, "net/")
        return float((weights * out).sum())

    _, cache = numpy_nn.mlp_forward(params, x, activations, "net/")
    grads, grad_x = numpy_nn.mlp_backward(params, cache, weights, activations, "net/")
    for name, grad in grads.items():
        flat = params[name].reshape(-1)
        for j in range(flat.size):
            old = flat[j]
            flat[j] = old + 1e-6
            up = loss()
            flat[j] = old - 1e-6
            down = loss()
            flat[j] = old
            assert grad.reshape(-1)[j] == pytest.approx((up - down) / 2e-6, abs=1e-6), name
    assert grad_x.shape == x.shape


def test_unknown_activation_is_rejected():
    params = numpy_nn.mlp_init(np.random.default_rng(0), [2, 2])
    with pytest.raises(ValueError, match="Unknown activation 'gelu'"):
        numpy_nn.mlp_forward(params, np.zeros((1, 2)), ["gelu"])


def test_adam_state_round_trip_continues_identically():
    target = np.array([1.0, -2.0, 3.0])

    def grads(params):
        return {"w": 2 * (params["w"] - target)}

    params = {"w": np.zeros(3)}
    optimizer = numpy_nn.Adam(learning_rate=0.1)
    for _ in range(5):
        optimizer.step(params, grads(params))
    state = json.loads(json.dumps(optimizer.get_state()))
    copy_params = numpy_nn.params_from_json(json.loads(json.dumps(numpy_nn.params_to_json(params))))
    copy = numpy_nn.Adam(learning_rate=0.1)
    copy.set_state(state)
    for _ in range(200):
        optimizer.step(params, grads(params))
        copy.step(copy_params, grads(copy_params))
    np.testing.assert_array_equal(params["w"], copy_params["w"])
    np.testing.assert_allclose(params["w"], target, atol=1e-2)


def test_minimize_packs_parameters_and_fits_a_regression():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3))
    y = x @ np.array([1.0, -1.0, 0.5]) + 0.2
    params = numpy_nn.mlp_init(rng, [3, 1])

    def loss_and_grads(params):
        out, cache = numpy_nn.mlp_forward(params, x, ["linear"])
        error = out[:, 0] - y
        grads, _ = numpy_nn.mlp_backward(params, cache, (2 / len(x)) * error[:, None], ["linear"])
        return float(np.mean(error**2)), grads

    loss = numpy_nn.minimize(params, loss_and_grads, steps=500, learning_rate=0.05)
    assert loss < 1e-4
    np.testing.assert_allclose(params["w0"][:, 0], [1.0, -1.0, 0.5], atol=1e-2)
    assert json.loads(json.dumps(numpy_nn.params_to_json(params)))["b0"][0] == pytest.approx(
        0.2, abs=1e-2
    )


def _numeric_grad(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        old = x[index]
        x[index] = old + eps
        up = f()
        x[index] = old - eps
        down = f()
        x[index] = old
        grad[index] = (up - down) / (2 * eps)
    return grad


def test_lstm_backward_matches_finite_differences():
    rng = np.random.default_rng(0)
    params = numpy_nn.lstm_init(rng, 2, 3, "l/")
    xs, h0, c0 = rng.normal(size=(2, 4, 2)), rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    weights = rng.normal(size=(2, 4, 3))  # loss = sum(weights * hs) + sum(h) + 2 sum(c)

    def loss():
        hs, h, c, _ = numpy_nn.lstm_forward(params, xs, h0, c0, "l/")
        return float((weights * hs).sum() + h.sum() + 2 * c.sum())

    _, _, _, cache = numpy_nn.lstm_forward(params, xs, h0, c0, "l/")
    grads, grad_xs, grad_h0, grad_c0 = numpy_nn.lstm_backward(
        params, cache, weights, "l/", grad_h=np.ones((2, 3)), grad_c=2 * np.ones((2, 3))
    )
    assert params["l/b"][3:6].tolist() == [1.0, 1.0, 1.0]  # Forget gate starts open.
    for name in params:
        np.testing.assert_allclose(grads[name], _numeric_grad(loss, params[name]), atol=1e-6)
    np.testing.assert_allclose(grad_xs, _numeric_grad(loss, xs), atol=1e-6)
    np.testing.assert_allclose(grad_h0, _numeric_grad(loss, h0), atol=1e-6)
    np.testing.assert_allclose(grad_c0, _numeric_grad(loss, c0), atol=1e-6)


def test_l2_normalize_backward_matches_finite_differences():
    rng = np.random.default_rng(0)
    x, weights = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    y, norm = numpy_nn.l2_normalize(x)
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), 1.0)
    grad = numpy_nn.l2_normalize_backward(y, norm, weights)

    def loss():
        return float((weights * numpy_nn.l2_normalize(x)[0]).sum())

    np.testing.assert_allclose(grad, _numeric_grad(loss, x), atol=1e-6)
