import keras_tuner
import numpy as np
import pytest

from tfnas.search import encoding, nao
from tfnas.tuners import multi_trial_testing as testing


def _space():
    hp = keras_tuner.HyperParameters()
    hp.Choice("op", ["conv", "pool", "skip"])
    with hp.conditional_scope("op", ["conv"]):
        hp.Int("kernel", 1, 7, step=2)
    for i in range(3):
        hp.Choice(f"d{i}", [0, 1, 2, 3])
    return encoding.SpaceEncoding(hp)


def test_loss_gradients_match_finite_differences():
    space = _space()
    algorithm = nao.ArchitectureOptimizer(hidden_size=4, embedding_size=3, seed=0)
    rng = np.random.default_rng(0)
    x = space.one_hot_batch([space.sample(rng) for _ in range(5)])
    target = rng.normal(size=5)
    algorithm._init_params(space.feature_size)
    _, grads = algorithm.loss_and_grads(space, x, target)
    for name, grad in grads.items():
        flat = algorithm.params[name].reshape(-1)
        for j in range(0, flat.size, 3):
            old = flat[j]
            flat[j] = old + 1e-6
            up, _ = algorithm.loss_and_grads(space, x, target)
            flat[j] = old - 1e-6
            down, _ = algorithm.loss_and_grads(space, x, target)
            flat[j] = old
            assert grad.reshape(-1)[j] == pytest.approx((up - down) / 2e-6, abs=1e-6), name


def test_trained_model_reconstructs_predicts_and_ascends():
    space = _space()
    algorithm = nao.ArchitectureOptimizer(seed=0)
    rng = np.random.default_rng(1)
    for _ in range(30):
        values = space.sample(rng)
        algorithm.observe(space, values, float(sum(values[f"d{i}"] for i in range(3))))
    algorithm.fit(space)
    history = [e["values"] for e in algorithm.history]
    embeddings = algorithm.encode(space.one_hot_batch(history))
    decoded = [algorithm.decode(space, e) for e in embeddings]
    assert np.mean([d == v for d, v in zip(decoded, history)]) > 0.9
    rewards = [e["reward"] for e in algorithm.history]
    assert np.corrcoef(algorithm.predict(embeddings), rewards)[0, 1] > 0.9
    seen = {encoding.values_key(v) for v in history}
    new = algorithm.generate(space, lambda v: encoding.values_key(v) in seen)
    assert 0 < len(new) <= algorithm.batch_size
    assert all(encoding.values_key(v) not in seen and space.complete(v) == v for v in new)


def test_sanity_beats_random_search():
    testing.check_sanity(nao.ArchitectureOptimizer(seed=0))


def _perturbed_lstm(space, hidden_size=3):
    algorithm = nao.ArchitectureOptimizer(model="lstm", hidden_size=hidden_size, seed=0)
    algorithm._init_params(space.feature_size)
    rng = np.random.default_rng(1)
    for name, value in algorithm.params.items():
        algorithm.params[name] = value + 0.3 * rng.normal(size=value.shape)
    return algorithm


def test_lstm_loss_gradients_match_finite_differences():
    space = _space()
    algorithm = _perturbed_lstm(space)
    rng = np.random.default_rng(0)
    x = space.one_hot_batch([space.sample(rng) for _ in range(4)])
    target = rng.normal(size=4)
    _, grads = algorithm.loss_and_grads(space, x, target)
    assert set(grads) == set(algorithm.params)
    for name, grad in grads.items():
        flat = algorithm.params[name].reshape(-1)
        for j in range(0, flat.size, 2):
            old = flat[j]
            flat[j] = old + 1e-6
            up, _ = algorithm.loss_and_grads(space, x, target)
            flat[j] = old - 1e-6
            down, _ = algorithm.loss_and_grads(space, x, target)
            flat[j] = old
            assert grad.reshape(-1)[j] == pytest.approx((up - down) / 2e-6, abs=1e-6), name


def test_lstm_ascent_direction_is_the_predictor_gradient():
    space = _space()
    algorithm = _perturbed_lstm(space)
    outputs = algorithm._embed(space, space.one_hot_batch([space.defaults()]))
    assert np.allclose(np.linalg.norm(outputs, axis=-1), 1.0)  # Normalized, as the paper's.
    direction = algorithm.ascent_direction(outputs)

    def predicted(moved):
        return algorithm.predict(algorithm._pool(moved)[0])[0] / algorithm.std

    for index in np.ndindex(outputs.shape):
        old = outputs[index]
        outputs[index] = old + 1e-6
        up = predicted(outputs)
        outputs[index] = old - 1e-6
        down = predicted(outputs)
        outputs[index] = old
        assert direction[index] == pytest.approx((up - down) / 2e-6, abs=1e-7)


def test_ascent_step_grows_and_stays_normalized():
    algorithm = nao.ArchitectureOptimizer(step_size=0.5, seed=0)
    start = np.array([[1.0, 0.0]])
    direction = np.array([[0.0, 1.0]])
    for k in (1, 2, 4):
        moved = algorithm._step(start, direction, k)
        expected = np.array([1.0, 0.5 * k]) / np.hypot(1.0, 0.5 * k)
        np.testing.assert_allclose(moved[0], expected)


@pytest.mark.parametrize("model", ["mlp", "lstm"])
def test_embeddings_are_unit_norm_and_reconstruct(model):
    space = _space()
    algorithm = nao.ArchitectureOptimizer(model=model, hidden_size=16, seed=0)
    rng = np.random.default_rng(1)
    for _ in range(20):
        values = space.sample(rng)
        algorithm.observe(space, values, float(sum(values[f"d{i}"] for i in range(3))))
    history = [e["values"] for e in algorithm.history]
    x = space.one_hot_batch(history)

    def reconstructed() -> float:
        moved = algorithm._embed(space, x)
        decoded = [space.from_indices(i) for i in algorithm.decode_indices(space, moved)]
        return float(np.mean([d == v for d, v in zip(decoded, history)]))

    algorithm._init_params(space.feature_size)
    untrained = reconstructed()
    algorithm.fit(space)
    assert np.allclose(np.linalg.norm(algorithm.encode(x, space), axis=-1), 1.0)
    # Exact reconstruction of whole architectures (chance: 1 in 48 to 192).
    assert untrained < 0.2 and reconstructed() >= 0.75
