"""TAS: a search on a tiny ResNet, its derivation, bad input, save / reload / continue."""

import json

import keras
import numpy as np
import pytest

import tfnas
from tfnas.architecture import Architecture
from tfnas.engine import testing as engine_testing
from tfnas.spaces.resnet import ResNetSpace
from tfnas.tuners.tas import TAS

# One block per stage (no depth choice): the depth mixture is tested with the rule and the
# FLOPs term; three searches of a two-block space would take a minute.
SPACE = ResNetSpace((8, 8, 1), 10, depth=8, base_filters=4, width_fractions=(0.5, 1.0))


def _search(tmp_path, name, oracle=None, space=SPACE, callbacks=None, overwrite=True):
    oracle = oracle or TAS(flops_ratio=0.5, seed=3, bn_recalibration_batches=1)
    (x, y), validation = engine_testing.data(96)
    tuner = tfnas.Tuner(space, oracle=oracle, directory=str(tmp_path), project_name=name,
                        overwrite=overwrite)  # fmt: skip
    tuner.search(x, y, validation_data=validation, epochs=2, batch_size=32, verbose=0,
                 callbacks=callbacks)  # fmt: skip
    return tuner


def test_interrupted_search_resumes_exactly_and_exports_the_derived_shape(tmp_path):
    straight = _search(tmp_path, "straight")
    oracle = straight.oracle
    derived = oracle.derive()
    assert set(oracle.distributions()) == {
        "stem",
        *(f"stage{s}/block0/{c}" for s in range(3) for c in "ab"),
    }
    assert oracle.flops()["target"] == pytest.approx(0.5 * oracle.flops()["largest"])
    assert oracle.temperature_at(0.0) == pytest.approx(5.0)
    assert oracle.temperature_at(0.99) == pytest.approx(2.55)  # Epoch 2 of 2: cos(pi/2).
    (trial,) = oracle.trials.values()
    assert trial.hyperparameters.values == derived and trial.status == "COMPLETED"
    Architecture(SPACE, derived)  # A valid shape of the space.
    model = straight.get_best_models(1)[0]
    assert all(type(layer).__module__.startswith("keras") for layer in model._flatten_layers())
    assert model(np.zeros((1, 8, 8, 1), "float32")).shape == (1, 10)

    with pytest.raises(KeyboardInterrupt):
        _search(tmp_path, "resumed", callbacks=[engine_testing.InterruptSupernet()])
    info = json.loads((tmp_path / "resumed" / "supernet" / "supernet.json").read_text())
    assert info["epochs_done"] == 1
    resumed = _search(tmp_path, "resumed", overwrite=False)
    # Noise, sampled widths and the alphas' Adam state were restored: the same alphas.
    np.testing.assert_allclose(
        np.concatenate([np.asarray(v) for v in resumed.oracle.alphas().values()]),
        np.concatenate([np.asarray(v) for v in oracle.alphas().values()]),
        atol=1e-6,
    )
    assert resumed.oracle.derive() == derived


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"flops_ratio": 0.0}, "flops_ratio"),
        ({"flops_ratio": 1.5}, "flops_ratio"),
        ({"flops_tolerance": -1}, "flops_tolerance"),
        ({"temperature": (5.0, 0.0)}, "temperature must stay > 0"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TAS(**kwargs)


def test_a_space_without_width_views_is_refused_with_the_choice_name(tmp_path):
    (x, y), validation = engine_testing.data(32)
    tuner = tfnas.Tuner(engine_testing.build, oracle=TAS(seed=0), directory=str(tmp_path),
                        project_name="cells")  # fmt: skip
    with pytest.raises(ValueError, match="TAS searches channel counts and depths: choice 'op0'"):
        tuner.search(x, y, validation_data=validation, epochs=1, verbose=0)


def test_an_unreachable_target_stops_before_the_first_epoch(tmp_path):
    with pytest.raises(ValueError, match="below the smallest network the space can reach"):
        _search(tmp_path, "small", oracle=TAS(flops_ratio=0.01, seed=0))
    assert not (tmp_path / "small" / "supernet" / "supernet.json").exists()
    keras.backend.clear_session()
