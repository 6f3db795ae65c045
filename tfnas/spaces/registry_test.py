"""Spaces by name, and the promise that ready spaces work with plain KerasTuner."""

import subprocess
import sys

import keras
import keras_tuner
import numpy as np
import pytest

import tfnas
from tfnas import spaces


@pytest.mark.parametrize("name", spaces.CLASSIFICATION_SPACES)
def test_tiny_spaces_build_and_train_a_step(name):
    space = spaces.make(name, (8, 8, 1), 10)
    model = space.build(keras_tuner.HyperParameters())
    x = np.random.default_rng(0).random((8, 8, 8, 1), dtype="float32")
    if name in ("darts", "nasnet"):
        # Tracing their training steps takes up to a minute on 2 cores; darts_test and
        # nasnet_test train a step. Here: compiled, and the forward pass runs.
        assert model.optimizer is not None
        model.predict(x, verbose=0)
    else:
        model.fit(x, np.arange(8) % 10, epochs=1, verbose=0)
    assert model.count_params() < 100_000


def _batch_norm_momenta(model) -> set:
    return {
        layer.momentum
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
    }


@pytest.mark.parametrize("name", ["mobile", "fbnet", "proxyless", "mnasnet", "mobilenet_v2"])
def test_tiny_mobile_family_spaces_use_a_momentum_a_short_trial_can_use(name):
    model = spaces.make(name, (8, 8, 1), 10).build(keras_tuner.HyperParameters())
    assert _batch_norm_momenta(model) == {0.9}


def test_a_short_trial_in_the_tiny_mobile_space_validates_above_chance():
    # With MobileNet's momentum 0.999 the moving statistics of 2 epochs (42 steps) stay
    # near their initial values: validation accuracy 0.10 at a training accuracy of 0.58.
    data = tfnas.data.load("digits")
    keras.utils.set_random_seed(0)
    model = spaces.make("mobile", data.input_shape, 10).build(keras_tuner.HyperParameters())
    model.fit(data.x_train, data.y_train, epochs=2, batch_size=64, verbose=0)
    assert model.evaluate(data.x_val, data.y_val, verbose=0)[1] > 0.3


@pytest.mark.parametrize("space", [spaces.MobileSpace, spaces.FBNetSpace, spaces.ProxylessSpace])
def test_mobile_family_momentum_default_and_error(space):
    assert space().batch_norm_momentum == 0.999  # Keras applications' MobileNet setting.
    with pytest.raises(
        ValueError,
        match=r"batch_norm_momentum must be in \[0, 1\)\. Received: batch_norm_momentum=1\.0",
    ):
        space((8, 8, 1), 10, batch_norm_momentum=1.0)


def test_the_segmentation_space_is_sized_for_shapes_and_segments():
    info = tfnas.data.DATASETS["shapes"]
    space = spaces.make("auto_deeplab", info.input_shape, info.num_classes)
    assert isinstance(space, spaces.AutoDeepLabSpace)
    assert spaces.task_of("auto_deeplab") == "segmentation" and spaces.task_of("darts") == (
        "classification"
    )
    spaces.check_task("auto_deeplab", "shapes")
    spaces.check_task("darts", "digits")
    with pytest.raises(ValueError, match=r"--space=auto_deeplab segments.*dataset='mnist'"):
        spaces.check_task("auto_deeplab", "mnist")
    with pytest.raises(ValueError, match=r"--dataset=shapes is a segmentation.*--space=mobile"):
        spaces.check_task("mobile", "shapes")


def test_unknown_space():
    with pytest.raises(
        ValueError,
        match=r"Unknown space. Received: name='amoebanet'; expected one of \['darts', 'nasbench201', 'mobile', 'fbnet', 'proxyless', 'mnasnet', 'nasnet', 'resnet', 'mobilenet_v2', 'auto_deeplab', 'path_level'\]",
    ):
        spaces.make("amoebanet", (8, 8, 1), 10)


def test_keras_tuner_random_search_runs_a_tfnas_space_unchanged(tmp_path):
    space = spaces.make("mobile", (8, 8, 1), 10)
    tuner = keras_tuner.RandomSearch(
        space, objective="val_accuracy", max_trials=2, seed=1,
        directory=str(tmp_path), project_name="kt",
    )  # fmt: skip
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 8, 8, 1), dtype="float32"), rng.integers(0, 10, 32)
    tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    assert len(tuner.oracle.trials) == 2
    # KerasTuner explored the conditional scopes: the deeper blocks' choices are known.
    names = {p.name for p in tuner.oracle.hyperparameters.space}
    assert "stage1/block1/kernel_size" in names
    best = tuner.get_best_models(1)[0]
    path = tmp_path / "best.keras"
    best.save(path)
    # A fixed-mode model loads where tfnas was never imported.
    code = (
        "import sys, keras; m = keras.saving.load_model(sys.argv[1]); "
        "assert not any(k.startswith('tfnas') for k in sys.modules); print(m.count_params())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip().splitlines()[-1]) == best.count_params()
    assert isinstance(best, keras.Model)
