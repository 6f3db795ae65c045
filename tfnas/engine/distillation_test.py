"""Knowledge distillation: the loss is the TAS authors', the student stays plain."""

import keras
import numpy as np
import pytest

from tfnas.engine import distillation


def _classifier(seed, units=8):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    x = keras.layers.Dense(units, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])  # fmt: skip
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 4)).astype("float32"), rng.integers(0, 3, 32)


def test_loss_is_hard_cross_entropy_plus_t_squared_kl():
    student, teacher = _classifier(0), _classifier(1)
    x, y = _data()
    distiller = distillation._Distiller(student, teacher, alpha=0.9, temperature=4.0)
    s = keras.ops.convert_to_numpy(student(x))
    t = keras.ops.convert_to_numpy(teacher(x))

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    ce = -np.log(softmax(s)[np.arange(32), y])
    p, q = softmax(t / 4), softmax(s / 4)
    kl = (p * (np.log(p) - np.log(q))).sum(-1)
    expected = np.mean(0.1 * ce + 0.9 * 16 * kl)
    got = distiller.compute_loss(x=x, y=y, y_pred=student(x))
    assert float(got) == pytest.approx(expected, rel=1e-4)


def test_distill_trains_the_student_in_place_and_leaves_the_teacher():
    student, teacher = _classifier(0), _classifier(1)
    x, y = _data()
    before_student = [w.copy() for w in student.get_weights()]
    before_teacher = [w.copy() for w in teacher.get_weights()]
    history = distillation.distill(student, teacher, x, y, epochs=2, batch_size=16, verbose=0,
                                   validation_data=(x, y))  # fmt: skip
    assert {"loss", "accuracy", "val_accuracy"} <= set(history.history)
    assert any(not np.array_equal(a, b) for a, b in zip(before_student, student.get_weights()))
    assert all(np.array_equal(a, b) for a, b in zip(before_teacher, teacher.get_weights()))
    assert teacher.trainable
    assert student.predict(x, verbose=0).shape == (32, 3)


def test_bad_input_is_named():
    student, teacher = _classifier(0), _classifier(1)
    x, y = _data()
    with pytest.raises(ValueError, match="alpha"):
        distillation.distill(student, teacher, x, y, alpha=1.5)
    with pytest.raises(ValueError, match="temperature"):
        distillation.distill(student, teacher, x, y, temperature=0)
    inputs = keras.Input((4,))
    raw = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    with pytest.raises(ValueError, match="student must be compiled"):
        distillation.distill(raw, teacher, x, y)
    with pytest.raises(ValueError, match="teacher must be a Keras classifier"):
        distillation.distill(student, "teacher", x, y)
