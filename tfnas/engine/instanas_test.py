import numpy as np
import pytest

from tfnas.engine.instanas import InstaNAS
from tfnas.spaces.instanas import InstaNASSpace

SPACE = dict(stages=((8, 1, 1), (8, 1, 2)), stem_filters=8, controller_filters=(4, 4))


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1), dtype="float32"), rng.integers(0, 10, n)


def _search(tmp_path, **kwargs):
    return InstaNAS(InstaNASSpace(**SPACE), str(tmp_path), seed=3, batch_size=16, **kwargs)


def test_resumed_search_ends_where_an_uninterrupted_one_does(tmp_path):
    x, y = _data()
    val = _data(16, 1)
    whole = _search(tmp_path / "whole")
    whole.search(x, y, validation_data=val, pretrain_epochs=2, epochs=2, verbose=0)

    class Killed(Exception):
        pass

    def kill(entry):
        if entry["phase"] == "search":
            raise Killed

    first = _search(tmp_path / "resumed")
    with pytest.raises(Killed):
        first.search(x, y, validation_data=val, pretrain_epochs=2, epochs=2, callbacks=[kill])
    resumed = _search(tmp_path / "resumed")
    assert (resumed.pretrain_epochs_done, resumed.search_epochs_done) == (2, 1)
    resumed.search(x, y, validation_data=val, pretrain_epochs=2, epochs=2, verbose=0)
    assert resumed.history == whole.history
    for a, b in zip(resumed.controller.get_weights(), whole.controller.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(resumed.predict(val[0]), whole.predict(val[0]), atol=1e-6)


def test_exported_model_routes_like_the_search_and_reloads(tmp_path):
    import keras

    x, y = _data()
    search = _search(tmp_path)
    search.search(x, y, validation_data=_data(16, 1), pretrain_epochs=1, epochs=1, verbose=0)
    paths = search.export(str(tmp_path / "out"))
    reloaded = keras.models.load_model(paths["keras"])
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), search.predict(x), atol=1e-5)
    policy = search.policies(x[:1])[0]
    np.testing.assert_allclose(
        search.network(policy).predict(x[:1], verbose=0), search.predict(x[:1]), atol=1e-5
    )
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=paths["tflite"])
    interpreter.allocate_tensors()


def test_meta_graph_equals_the_network_of_each_policy():
    space = InstaNASSpace(**SPACE)
    meta = space.meta_graph()
    x, _ = _data(4)
    rng = np.random.default_rng(0)
    for policy in (np.zeros(space.policy_shape), (rng.random(space.policy_shape) < 0.5) * 1.0):
        from tfnas.spaces.instanas import inherit

        network = inherit(space.network(policy), meta)
        batch = np.repeat(policy[None].astype("float32"), len(x), axis=0)
        np.testing.assert_allclose(meta([x, batch]), network(x), atol=1e-5)


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="correct_weight"):
        _search(tmp_path, correct_weight=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        _search(tmp_path, alpha=0.2)
    with pytest.raises(ValueError, match="divisible"):
        InstaNASSpace((9, 9, 1), stages=((8, 1, 2),))
    search = _search(tmp_path)
    x, y = _data()
    with pytest.raises(ValueError, match="input shape"):
        search.search(x[:, :4], y, validation_data=_data(16))
    with pytest.raises(ValueError, match="class indices"):
        search.search(x, y + 10, validation_data=_data(16))
    search.search(x, y, validation_data=_data(16), pretrain_epochs=1, epochs=0, verbose=0)
    with pytest.raises(ValueError, match="other settings"):
        _search(tmp_path, entropy_weight=0.1)
