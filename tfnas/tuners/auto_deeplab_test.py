import json

import keras
import numpy as np
import pytest

import tfnas
from tfnas.data import shapes
from tfnas.engine.auto_deeplab import TrellisMixture
from tfnas.search import auto_deeplab as adl
from tfnas.spaces.auto_deeplab import AutoDeepLabSpace
from tfnas.tuners.auto_deeplab import AutoDeepLab


def _space():
    return AutoDeepLabSpace(
        (16, 16, 3), 4, num_layers=2, num_levels=2, num_nodes=1, filter_multiplier=2,
        stem_channels=4, head_channels=4, operations=("sep_conv_3x3", "skip_connect"),
    )  # fmt: skip


def _oracle():
    return AutoDeepLab(
        seed=0, arch_warmup_epochs=0.0, arch_learning_rate=0.05, bn_recalibration_batches=0
    )


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


def _search(oracle, directory, name, overwrite=True, callbacks=None):
    x, y = shapes.generate(16, 16, seed=0)
    tuner = tfnas.Tuner(_space(), oracle=oracle, directory=str(directory), project_name=name,
                        overwrite=overwrite)  # fmt: skip
    tuner.search(x[:8], y[:8], validation_data=(x[8:], y[8:]), epochs=2, batch_size=8,
                 verbose=0, callbacks=callbacks)  # fmt: skip
    return tuner


def test_auto_deeplab_steps_betas_decodes_and_resumes_exactly(tmp_path):
    oracle = _oracle()
    _search(oracle, tmp_path, "a")
    initial = TrellisMixture(seed=0)
    _space().build(tfnas.blocks.SupernetHyperParameters(initial))
    # The architecture step moved the betas as well as the alphas.
    for name, start in initial.get_alphas().items():
        assert not np.allclose(oracle.alphas()[name], start, atol=1e-3), name
    probs = oracle.network_probabilities()
    mask = adl.transition_mask(2, 2)
    assert np.allclose(probs.sum(-1)[mask.any(-1)], 1.0)
    architecture = oracle.derived_architecture()
    assert architecture["path"] == adl.viterbi_path(probs)
    assert architecture["rates"] == [adl.RATES[s] for s in architecture["path"]]
    assert len(architecture["cell"]["normal"]) == 2
    json.dumps(architecture)
    trial = oracle.get_best_trials(1)[0]
    # The evaluated trial is the decoded path, not the value the supernet was built with.
    assert [trial.hyperparameters.values[f"network/layer{i}"] for i in range(2)] == (
        architecture["path"]
    )
    assert trial.metrics.exists("val_mean_iou")
    assert 0.0 <= trial.score <= 1.0
    png = oracle.plot_path(str(tmp_path / "path.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    # Save / reload / continue: an interrupted search resumed with overwrite=False ends
    # with the alphas, betas and decoding of the uninterrupted one.
    straight = oracle
    interrupted = _oracle()
    with pytest.raises(KeyboardInterrupt):
        _search(interrupted, tmp_path, "resumed", callbacks=[_Interrupt()])
    assert interrupted.supernet_epochs_done == 1
    resumed = _oracle()
    _search(resumed, tmp_path, "resumed", overwrite=False)
    for name, alphas in straight.alphas().items():
        np.testing.assert_allclose(resumed.alphas()[name], alphas, rtol=1e-5, atol=1e-6)
    assert resumed.derived_architecture() == straight.derived_architecture()


def test_auto_deeplab_warmup_freezes_the_first_half_of_the_epochs():
    oracle = AutoDeepLab(seed=0)
    oracle._supernet_epochs = 4
    assert [oracle.alphas_frozen(e) for e in range(4)] == [True, True, False, False]
    assert AutoDeepLab(seed=0).arch_learning_rate == 3e-3


def test_auto_deeplab_errors_name_the_argument():
    with pytest.raises(ValueError, match="Received: order=2"):
        AutoDeepLab(order=2)
    with pytest.raises(ValueError, match="arch_warmup_epochs"):
        AutoDeepLab(arch_warmup_epochs=1.0)
    with pytest.raises(RuntimeError, match="network path"):
        AutoDeepLab(seed=0).decoded_path()
