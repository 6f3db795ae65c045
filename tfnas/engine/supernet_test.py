"""The supernet engine: supernet search, export, resume, checkpoints, errors."""

import json
import logging

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

import tfnas
from tfnas import blocks
from tfnas.engine import supernet as engine
from tfnas.engine.testing import build, data


def _tuner(tmp_path, oracle, **kwargs):
    return tfnas.Tuner(build, oracle=oracle, directory=str(tmp_path), project_name="ws", **kwargs)


def _search(tuner, epochs=1, **kwargs):
    (x, y), validation = data()
    tuner.search(
        x, y, validation_data=validation, epochs=epochs, batch_size=64, verbose=0, **kwargs
    )


def _standard(model):
    return all(type(layer).__module__.startswith("keras") for layer in model._flatten_layers())


def test_spos_search_exports_inherited_weights(tmp_path):
    tuner = _tuner(tmp_path, tfnas.oracles.SPOS(max_trials=3, seed=0, bn_recalibration_batches=2))
    _search(tuner)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 3
    assert all(t.status == "COMPLETED" for t in trials)
    best_trial = tuner.oracle.get_best_trials(1)[0]
    for name in ("val_accuracy", "val_loss", "num_params", "flops", "model_bytes"):
        assert best_trial.metrics.exists(name)
    model = tuner.get_best_models(1)[0]
    assert _standard(model)
    # The exported network computes what the supernet computes for that architecture.
    trainer = tuner.supernet_trainer()
    trainer.rule.set_architecture(best_trial.hyperparameters.values)
    _, (vx, _) = data()
    np.testing.assert_allclose(
        model.predict(vx, verbose=0), trainer.supernet.predict(vx, verbose=0), atol=1e-4
    )
    assert model.count_params() == best_trial.metrics.get_best_value("num_params")
    hp = tuner.get_best_hyperparameters(1)[0]
    assert set(hp.values) <= {"op0", "op1", "depth"}


def test_collapse_keeps_only_the_chosen_path():
    rule = blocks.SinglePath()
    supernet = build(blocks.SupernetHyperParameters(rule))
    values = {"op0": "skip", "op1": "conv1x1", "depth": 0}
    rule.set_architecture(values)
    fixed = engine.collapse(supernet, values)
    assert _standard(fixed)
    reference = tfnas.Architecture(build, values).build()
    assert fixed.count_params() == reference.count_params()
    x = np.random.default_rng(0).random((2, 8, 8, 1), dtype="float32")
    np.testing.assert_allclose(fixed(x), supernet(x), atol=1e-5)


@pytest.mark.parametrize("traced", [False, True])
def test_batch_norm_recalibration_averages_batches(traced):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.BatchNormalization()(inputs))
    batches = [np.full((4, 3), v, "float32") + np.arange(4)[:, None] for v in (0.0, 10.0)]
    forward = tf.function(lambda x: model(x, training=True)) if traced else None
    engine.recalibrate_batch_norm(model, batches, forward)
    norm = model.layers[-1]
    np.testing.assert_allclose(norm.moving_mean.numpy(), [6.5] * 3, rtol=1e-6)
    np.testing.assert_allclose(norm.moving_variance.numpy(), [1.25] * 3, rtol=1e-6)
    assert norm.momentum == 0.99


def test_interrupted_supernet_training_resumes_from_the_last_epoch(tmp_path):
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    oracle = lambda: tfnas.oracles.SPOS(max_trials=2, seed=3, bn_recalibration_batches=1)
    with pytest.raises(KeyboardInterrupt):
        _search(_tuner(tmp_path / "a", oracle()), epochs=2, callbacks=[Interrupt()])
    info = json.loads((tmp_path / "a" / "ws" / "supernet" / "supernet.json").read_text())
    assert info["epochs_done"] == 1

    resumed = _tuner(tmp_path / "a", oracle(), overwrite=False)
    epochs_run = []
    record = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: epochs_run.append(e))
    _search(resumed, epochs=2, callbacks=[record])
    assert epochs_run == [1]

    straight = _tuner(tmp_path / "b", oracle())
    _search(straight, epochs=2)
    for a, b in zip(
        resumed.supernet_trainer().supernet.weights, straight.supernet_trainer().supernet.weights
    ):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4)
    values = lambda t: sorted(
        json.dumps(x.hyperparameters.values, sort_keys=True) for x in t.oracle.trials.values()
    )
    assert values(resumed) == values(straight)


def test_finished_search_reloads_and_continues_without_retraining(tmp_path):
    _search(_tuner(tmp_path, tfnas.oracles.RandomWeightSharing(max_trials=2, seed=1)))
    tuner = _tuner(
        tmp_path, tfnas.oracles.RandomWeightSharing(max_trials=4, seed=1), overwrite=False
    )
    epochs_run = []
    record = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: epochs_run.append(e))
    _search(tuner, callbacks=[record])
    assert epochs_run == []
    assert len(tuner.oracle.trials) == 4
    # A new process can export without searching: the supernet comes from its checkpoint.
    fresh = _tuner(
        tmp_path, tfnas.oracles.RandomWeightSharing(max_trials=4, seed=1), overwrite=False
    )
    assert _standard(fresh.get_best_models(1)[0])


def test_checkpoint_of_another_space_is_refused(tmp_path):
    _search(_tuner(tmp_path, tfnas.oracles.SPOS(max_trials=1, seed=0)))

    def other(hp):
        model = build(hp)
        return model

    def different(hp):
        inputs = keras.Input((8, 8, 1))
        x = blocks.layer_choice(
            hp,
            "op0",
            {
                "a": lambda: keras.layers.Conv2D(4, 3),
                "b": lambda: keras.layers.Conv2D(4, 5, padding="valid", strides=1),
            },
        )
        x = keras.layers.Flatten()(keras.layers.Conv2D(4, 3)(inputs))
        model = keras.Model(inputs, keras.layers.Dense(10)(x))
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    def changed(hp):
        inputs = keras.Input((8, 8, 1))
        x = blocks.layer_choice(hp, "op0", {
            "conv": lambda: keras.layers.Conv2D(4, 3, padding="same"),
            "skip": lambda: keras.layers.Identity(),
        })(keras.layers.Conv2D(4, 3, padding="same")(inputs))  # fmt: skip
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, keras.layers.Dense(10)(x))
        model.compile(
            "adam",
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return model

    tuner = tfnas.Tuner(changed, oracle=tfnas.oracles.SPOS(max_trials=2, seed=0),
                        directory=str(tmp_path), project_name="ws", overwrite=False)  # fmt: skip
    with pytest.raises(ValueError, match="belongs to a different search space"):
        _search(tuner)


def test_constraints_are_respected(tmp_path):
    limit = tfnas.Architecture(
        build, {"op0": "conv1x1", "op1": "conv1x1", "depth": 0}
    ).count_flops()
    oracle = tfnas.oracles.SPOS(
        max_trials=4, seed=0, constraints={"flops": limit}, bn_recalibration_batches=0
    )
    tuner = _tuner(tmp_path, oracle)
    _search(tuner)
    assert tuner.oracle.trials
    assert all(t.metrics.get_best_value("flops") <= limit for t in tuner.oracle.trials.values())


def test_constraint_errors():
    with pytest.raises(
        ValueError, match=r"Unknown constraint metric 'speed'.*Received: constraints=\{'speed': 1\}"
    ):
        tfnas.oracles.SPOS(constraints={"speed": 1})
    with pytest.raises(ValueError, match="Constraint 'flops' must be a number > 0. Received: -1"):
        tfnas.oracles.SPOS(constraints={"flops": -1})


def test_tf_data_without_validation_data_fails_clearly(tmp_path):
    (x, y), _ = data()
    tuner = _tuner(tmp_path, tfnas.oracles.SPOS(max_trials=1, seed=0))
    with pytest.raises(ValueError, match="needs validation data to rank candidates"):
        tuner.search(tf.data.Dataset.from_tensor_slices((x, y)).batch(32), epochs=1, verbose=0)


def test_numpy_inputs_get_a_validation_split(tmp_path):
    (x, y), _ = data()
    tuner = _tuner(
        tmp_path,
        tfnas.oracles.RandomWeightSharing(max_trials=1, seed=0, bn_recalibration_batches=0),
    )
    tuner.search(x, y, epochs=1, batch_size=64, verbose=0, validation_split=0.25)
    (trial,) = tuner.oracle.trials.values()
    assert trial.metrics.exists("val_accuracy")
    with pytest.raises(
        ValueError, match="validation_split must be in \\(0, 1\\). Received: validation_split=1.5"
    ):
        _tuner(tmp_path / "b", tfnas.oracles.RandomWeightSharing(max_trials=1)).search(
            x, y, epochs=1, verbose=0, validation_split=1.5
        )


def test_plain_hyperparameters_are_frozen_with_a_warning(tmp_path, caplog):
    def with_plain(hp):
        model = build(hp)
        hp.Int("units", 4, 16, step=4, default=8)
        return model

    tuner = tfnas.Tuner(with_plain, oracle=tfnas.oracles.RandomWeightSharing(max_trials=2, seed=0, bn_recalibration_batches=0),
                        directory=str(tmp_path), project_name="p")  # fmt: skip
    with caplog.at_level(logging.WARNING):
        _search(tuner)
    assert "not searched" in caplog.text and "'units': 8" in caplog.text
    assert all(t.hyperparameters.values["units"] == 8 for t in tuner.oracle.trials.values())


def test_space_without_choice_points_is_refused(tmp_path):
    def plain(hp):
        inputs = keras.Input((8, 8, 1))
        units = hp.Choice("units", [4, 8])
        x = keras.layers.Dense(units)(keras.layers.Flatten()(inputs))
        model = keras.Model(inputs, keras.layers.Dense(10)(x))
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    tuner = tfnas.Tuner(plain, oracle=tfnas.oracles.SPOS(max_trials=1), directory=str(tmp_path))
    with pytest.raises(ValueError, match="found no choice point in the supernet"):
        _search(tuner)


def test_keras_tuner_hyperparameters_outside_tfnas_still_search(tmp_path):
    # Non-weight-sharing oracles keep working through the same Tuner.
    tuner = _tuner(tmp_path, keras_tuner.oracles.RandomSearchOracle("val_accuracy", max_trials=1))
    _search(tuner)
    assert len(tuner.oracle.trials) == 1


def test_resuming_a_finished_search_keeps_what_trials_taught_the_oracle(tmp_path):
    oracle = lambda: tfnas.oracles.SPOS(
        max_trials=3,
        seed=4,
        search="aging",
        population_size=2,
        sample_size=1,
        bn_recalibration_batches=0,
    )
    _search(_tuner(tmp_path, oracle()))
    reloaded = _tuner(tmp_path, oracle(), overwrite=False)
    state = json.dumps(reloaded.oracle.algorithm.get_state(), sort_keys=True)
    assert len(reloaded.oracle.algorithm.population) == 2
    (x, y), validation = data()
    reloaded.supernet_trainer().train(
        x, y, validation_data=validation, epochs=1, batch_size=64, verbose=0
    )
    assert json.dumps(reloaded.oracle.algorithm.get_state(), sort_keys=True) == state


def test_mobile_supernet_shares_kernel_and_width_weights_and_exports_them():
    space = tfnas.spaces.MobileSpace(
        (8, 8, 1), 10, stem_filters=4, stem_strides=1, head_filters=0,
        stages=[tfnas.spaces.Stage(4, 1), tfnas.spaces.Stage(8, (1, 2), 2)],
        kernel_sizes=(3, 5), expansions=(1, 3), se_ratios=(0.0, 0.25),
    )  # fmt: skip
    rule = blocks.SinglePath()
    supernet = space.build(blocks.SupernetHyperParameters(rule))
    views = [c for c in supernet._flatten_layers() if isinstance(c, blocks.shared.MBConvView)]
    assert len(views) == 3 * 8 and len({id(v.shared) for v in views}) == 3
    values = {
        "stage0/block0/kernel_size": 5, "stage0/block0/expansion": 3, "stage0/block0/se_ratio": 0.25,
        "stage1/depth": 2, "stage1/block0/kernel_size": 3, "stage1/block0/expansion": 3,
        "stage1/block0/se_ratio": 0.0, "stage1/block1/kernel_size": 5, "stage1/block1/expansion": 1,
        "stage1/block1/se_ratio": 0.25,
    }  # fmt: skip
    rule.set_architecture(values)
    x = np.random.default_rng(0).random((3, 8, 8, 1), dtype="float32")
    supernet(x, training=True)  # Moves the chosen candidates' batch-norm statistics.
    fixed = engine.collapse(supernet, values)
    assert _standard(fixed)
    assert fixed.count_params() == tfnas.Architecture(space, values).count_params()
    np.testing.assert_allclose(fixed(x, training=False), supernet(x, training=False), atol=1e-5)


def test_supernet_train_step_is_traced_once(tmp_path):
    traces = []

    def counting_build(hp):
        model = build(hp)
        train_step = model.train_step

        def counted(batch):
            traces.append(1)
            return train_step(batch)

        model.train_step = counted
        return model

    oracle = tfnas.oracles.SPOS(max_trials=1, seed=0, bn_recalibration_batches=0)
    tuner = tfnas.Tuner(counting_build, oracle=oracle, directory=str(tmp_path), project_name="t")
    _search(tuner, epochs=2)
    assert len(traces) == 1  # Keras alone traces twice (it builds the optimizer in the trace).


def test_side_iterators_do_not_prefetch_in_the_background():
    # Deleting a prefetching iterator stalled epoch starts for seconds: the alpha-step,
    # ranking and recalibration iterators read without tf.data's injected prefetch.
    dataset = engine.synchronous(tf.data.Dataset.range(8).batch(2).repeat())
    options = dataset.options()
    assert options.autotune.enabled is False
    assert options.experimental_optimization.inject_prefetch is False
    assert [int(v) for v in next(iter(dataset))] == [0, 1]


def test_recalibration_gives_the_same_result_eager_and_traced(tmp_path):
    # The first candidate recalibrates eagerly, later ones with a traced forward pass.
    oracle = tfnas.oracles.SPOS(max_trials=1, seed=0, bn_recalibration_batches=2)
    tuner = _tuner(tmp_path, oracle)
    (x, y), validation = data()
    trainer = tuner.supernet_trainer()
    trainer.train(x, y, validation_data=validation, epochs=1, batch_size=64, verbose=0)
    values = {"op0": "conv3x3", "op1": "conv1x1", "depth": 1}
    other = {"op0": "skip", "op1": "conv3x3", "depth": 0}
    first = trainer.evaluate(values)
    assert trainer._forward[1] is None
    trainer.evaluate(other)
    assert trainer._forward[1] is not None
    again = trainer.evaluate(values)
    assert again == pytest.approx(first, rel=1e-5)


class _Record(keras.callbacks.Callback):
    """Records the fits (train begins) and the epochs run."""

    def __init__(self, stop_after_epoch=None):
        super().__init__()
        self.fits, self.epochs, self.stop_after_epoch = 0, [], stop_after_epoch

    def on_train_begin(self, logs=None):
        self.fits += 1

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.stop_after_epoch:
            self.model.stop_training = True


def _train(trainer, epochs, callbacks=()):
    (x, y), validation = data()
    trainer.train(x, y, validation_data=validation, epochs=epochs, batch_size=64, verbose=0,
                  callbacks=list(callbacks))  # fmt: skip


def test_supernet_trains_in_one_fit_and_checkpoints_the_oracle_state(tmp_path):
    tuner = _tuner(tmp_path, tfnas.oracles.SPOS(max_trials=1, seed=0))
    record = _Record()
    _train(tuner.supernet_trainer(), 3, [record])
    assert record.fits == 1 and record.epochs == [0, 1, 2]
    assert tuner.oracle.supernet_epochs_done == 3
    info = json.loads((tmp_path / "ws" / "supernet" / "supernet.json").read_text())
    assert info["epochs_done"] == 3
    # The oracle's one state, as oracle.json holds it.
    assert info["oracle"] == json.loads(json.dumps(tuner.oracle.get_state()))


def test_each_epoch_reads_its_own_seeded_order(tmp_path):
    # One fit over epochs 1..3 sees epoch k's batches in the order of a dataset shuffled
    # with seed `seed * 100003 + k`, as when every epoch was a fit of its own.
    trainer = _tuner(tmp_path, tfnas.oracles.FairNAS(max_trials=1, seed=3)).supernet_trainer()
    (x, y), validation = data(64)
    trainer._set_data(x, y, validation, 16, 0.2)
    trainer.oracle.frozen_values = {}
    paths = trainer.oracle.paths_per_step
    dataset, steps_per_epoch = trainer._fit_dataset(1, 4)
    assert steps_per_epoch == 4 * paths
    labels = [batch[1].numpy() for batch in dataset]
    assert len(labels) == 3 * steps_per_epoch
    expected = []
    for epoch in (1, 2, 3):
        shuffled = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(
            len(x), seed=3 * 100_003 + epoch, reshuffle_each_iteration=False
        )
        expected += [b[1].numpy() for b in shuffled.batch(16) for _ in range(paths)]
    for got, want in zip(labels, expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_callback_that_stops_training_ends_it_and_a_resume_continues(tmp_path):
    oracle = lambda: tfnas.oracles.SPOS(max_trials=1, seed=0)
    first = _tuner(tmp_path, oracle())
    _train(first.supernet_trainer(), 3, [_Record(stop_after_epoch=0)])
    assert first.oracle.supernet_epochs_done == 1
    resumed = _tuner(tmp_path, oracle(), overwrite=False)
    record = _Record()
    _train(resumed.supernet_trainer(), 3, [record])
    assert record.epochs == [1, 2] and resumed.oracle.supernet_epochs_done == 3


def test_a_new_stage_rebuilds_the_supernet_in_a_new_fit(tmp_path):
    class TwoStages(tfnas.oracles.SPOS):
        def start_supernet_stage(self, epoch, epochs):
            self.asked.append((epoch, self.supernet_epochs_done))
            return epoch == 2

    oracle = TwoStages(max_trials=1, seed=0)
    oracle.asked = []
    tuner = _tuner(tmp_path, oracle)
    trainer = tuner.supernet_trainer()
    built = []
    connect = trainer._connect
    trainer._connect = lambda: built.append(1) or connect()
    record = _Record()
    _train(trainer, 4, [record])
    # Asked before every epoch, after the previous epoch's checkpoint.
    assert oracle.asked == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert record.fits == 2 and record.epochs == [0, 1, 2, 3] and len(built) == 2


def test_a_save_killed_before_its_commit_keeps_the_previous_epoch_whole(tmp_path, monkeypatch):
    tuner = _tuner(tmp_path, tfnas.oracles.SPOS(max_trials=1, seed=0))
    trainer = tuner.supernet_trainer()
    _train(trainer, 1)
    checkpoint = trainer.checkpoint
    kept = [v.numpy().copy() for v in trainer.supernet.weights]
    for v in trainer.supernet.trainable_weights:
        v.assign(v.numpy() + 1.0)  # What epoch 2 would have changed.
    real_replace = engine.os.replace

    def killed_at_the_commit(source, target):
        if target == checkpoint.info_path:
            raise KeyboardInterrupt("killed")
        real_replace(source, target)

    monkeypatch.setattr(engine.os, "replace", killed_at_the_commit)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(trainer.supernet, 2, "f", tuner.oracle.get_state())
    monkeypatch.undo()
    # Epoch 2's weights are on disk, but the record still names epoch 1's, which are whole.
    assert checkpoint.info()["epochs_done"] == 1 and checkpoint.exists()
    assert checkpoint.restore(trainer.supernet, engine.supernet_fingerprint(trainer.supernet)) == 1
    for variable, value in zip(trainer.supernet.weights, kept):
        np.testing.assert_array_equal(variable.numpy(), value)
    # The next committed save removes the files of other epochs.
    checkpoint.save(trainer.supernet, 2, "f", tuner.oracle.get_state())
    names = sorted(p.name for p in tmp_path.glob("ws/supernet/*.npz"))
    assert names == ["supernet-00002.npz"]


@pytest.mark.parametrize("mean", [False, True])
def test_summed_accumulation_applies_the_sum_of_the_micro_steps_once(mean):
    # FairNAS: the m paths' gradients of one batch are summed into one update, and a
    # learning-rate schedule steps once per update (Keras alone averages them and steps
    # the schedule per micro-step). ASNG-NAS averages them (`mean=True`), still one
    # schedule step per update.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([0, 1], [0.1, 0.05, 0.02])
    model.compile(keras.optimizers.SGD(schedule, gradient_accumulation_steps=3), loss="mse")
    engine.sum_accumulated_gradients(model.optimizer, mean=mean)
    rng = np.random.default_rng(0)
    x, y = rng.random((6, 3), dtype="float32"), rng.random((6, 2), dtype="float32")
    start = [w.numpy() for w in model.trainable_weights]
    summed = [np.zeros_like(w) for w in start]
    for batch in range(3):  # The micro-steps of the first update, all at `start`.
        with tf.GradientTape() as tape:
            loss = keras.losses.mean_squared_error(
                y[2 * batch : 2 * batch + 2], model(x[2 * batch : 2 * batch + 2])
            )
            loss = tf.reduce_mean(loss)
        for total, grad in zip(summed, tape.gradient(loss, model.trainable_weights)):
            total += grad.numpy()
    model.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    assert int(model.optimizer.iterations) == 1
    for w, w0, g in zip(model.trainable_weights, start, summed):
        g = g / 3 if mean else g
        np.testing.assert_allclose(w.numpy(), w0 - 0.1 * g, rtol=1e-5, atol=1e-6)
    # The schedule reads the update count: 0.05 for the second update, not the micro-step.
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05)
    model.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.02)


def test_summed_accumulation_needs_accumulation_steps():
    with pytest.raises(ValueError, match="gradient_accumulation_steps >= 2. Received: "
                                         "gradient_accumulation_steps=None"):  # fmt: skip
        engine.sum_accumulated_gradients(keras.optimizers.SGD())


def test_fairnas_supernet_sums_its_paths_gradients(tmp_path):
    trainer = _tuner(tmp_path, tfnas.oracles.FairNAS(max_trials=1, seed=0)).supernet_trainer()
    optimizer = trainer.build().optimizer
    assert optimizer.gradient_accumulation_steps == trainer.oracle.paths_per_step > 1
    assert type(optimizer)._tfnas_summed


def test_the_batch_reward_uses_training_mode_batch_norm_and_keeps_moving_statistics(tmp_path):
    # ENAS's reference computes the controller's reward with is_training=True.
    trainer = _tuner(tmp_path, tfnas.oracles.ENAS(max_trials=1, seed=0)).supernet_trainer()
    (x, y), validation = data(64)
    trainer._set_data(x, y, validation, 16, 0.2)
    trainer.oracle.frozen_values = {}
    supernet = trainer._connect()
    norms = engine.batch_norm_layers(supernet)
    for layer in norms:  # Moving statistics far from any batch's.
        layer.moving_mean.assign(layer.moving_mean + 5.0)
    moving = [layer.moving_mean.numpy() for layer in norms]
    values = {"op0": "conv3x3", "op1": "conv1x1", "depth": 1}
    evaluate = trainer._batch_reward()
    rewards = [evaluate(values), evaluate(values)]
    for layer, before in zip(norms, moving):
        np.testing.assert_array_equal(layer.moving_mean.numpy(), before)
    assert all(layer.momentum == 0.99 for layer in norms)
    trainer.rule.set_architecture(values)
    vx, vy = validation[0][:16], validation[1][:16]
    accuracy = lambda training: float(
        np.mean(np.argmax(supernet(vx, training=training), -1) == vy)
    )  # fmt: skip
    assert rewards[0] == pytest.approx(accuracy(True))
    assert accuracy(False) != accuracy(True)  # Inference mode would give another reward.


def test_a_single_path_step_leaves_the_candidates_that_did_not_run_untouched(tmp_path):
    # Adam's moments (and weight decay) would move an operation that did not run; the
    # reference implementations leave a parameter without gradient as it is.
    trainer = _tuner(tmp_path, tfnas.oracles.SPOS(max_trials=1, seed=0)).supernet_trainer()
    supernet = trainer.build()
    supernet.optimizer.weight_decay = 0.1
    (x, y), _ = data(64)
    op0 = next(layer for layer in engine.choice_layers(supernet) if layer.choice_name == "op0")
    trainer.rule.set_architecture({"op0": "conv3x3", "op1": "conv3x3", "depth": 1})
    supernet.fit(x, y, batch_size=32, epochs=1, verbose=0)  # Moments for conv3x3.
    trainer.rule.set_architecture({"op0": "conv1x1", "op1": "conv3x3", "depth": 0})
    # The block past depth 0 (the only convolution with a bias) runs, unused.
    (deep,) = [
        layer
        for layer in supernet._flatten_layers()
        if isinstance(layer, keras.layers.Conv2D) and layer.use_bias
    ]
    idle = [*op0.candidates[0].trainable_weights, *deep.trainable_weights]
    ran = op0.candidates[1].trainable_weights  # conv1x1 of op0
    before = {id(w): w.numpy() for w in [*idle, *ran]}
    supernet.fit(x, y, batch_size=32, epochs=1, verbose=0)
    for w in idle:
        np.testing.assert_array_equal(w.numpy(), before[id(w)])
    assert all(not np.array_equal(w.numpy(), before[id(w)]) for w in ran)
