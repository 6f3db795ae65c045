"""Knowledge distillation (Hinton et al. 2015), as TAS trains its pruned networks.

`distill(student, teacher, ...)` trains a plain Keras classifier (logits out) on

    (1 - alpha) * CE(y, student) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))

the loss of the TAS authors' `loss_KD_fn` (`xautodl/procedures/simple_KD_main.py`; TAS
uses alpha 0.9 and T 4). The teacher is frozen; the student keeps its own optimizer
settings (a fresh optimizer from its compile config) and stays a plain Keras model.
"""

from __future__ import annotations

import keras

from tfnas import validation


class _Distiller(keras.Model):
    """The student trained against a frozen teacher; evaluates as the student."""

    def __init__(self, student, teacher, alpha: float, temperature: float):
        super().__init__(name="distiller")
        self.student, self.teacher = student, teacher
        self.alpha, self.temperature = float(alpha), float(temperature)
        self.teacher.trainable = False

    def call(self, x, training=None):
        return self.student(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        ops = keras.ops
        hard = keras.losses.sparse_categorical_crossentropy(y, y_pred, from_logits=True)
        t = self.temperature
        soft_teacher = ops.softmax(self.teacher(x, training=False) / t)
        log_student = ops.log_softmax(y_pred / t)
        kl = ops.sum(soft_teacher * (ops.log(soft_teacher + 1e-12) - log_student), axis=-1)
        return ops.mean((1.0 - self.alpha) * hard + self.alpha * t * t * kl)


def _check_classifier(name: str, model) -> None:
    if not isinstance(model, keras.Model) or len(model.outputs or []) != 1:
        raise ValueError(
            f"{name} must be a Keras classifier with one logits output. Received: {name}={model!r}"
        )


def distill(student: keras.Model, teacher: keras.Model, *fit_args, alpha: float = 0.9,
            temperature: float = 4.0, **fit_kwargs):  # fmt: skip
    """Trains `student` with knowledge distillation from `teacher` (see the module).

    Args:
        student: a compiled Keras classifier producing logits (trained in place).
        teacher: a Keras model with the same inputs, producing logits (frozen).
        *fit_args, **fit_kwargs: passed to `fit` (x, y, epochs, validation_data, ...).
        alpha: the distillation term's weight in [0, 1] (TAS: 0.9).
        temperature: the softmax temperature T > 0 (TAS: 4).

    Returns:
        The `fit` history; its metrics are the student's (`loss` is the distillation loss,
        `accuracy` and `val_*` the student's own).

    Raises:
        ValueError: for a student that is not compiled, models with other than one
            output, or `alpha` / `temperature` out of range.
    """
    alpha = validation.check_float("alpha", alpha, low=0.0, high=1.0)
    temperature = validation.check_float("temperature", temperature, low=0.0, low_inclusive=False)
    _check_classifier("student", student)
    _check_classifier("teacher", teacher)
    config = student.get_compile_config() if student.compiled else None
    if not config:
        raise ValueError(
            "student must be compiled (its optimizer trains it). Received: an uncompiled "
            f"student {student.name!r}."
        )
    optimizer = keras.optimizers.deserialize(config["optimizer"])
    trainable = teacher.trainable
    distiller = _Distiller(student, teacher, alpha, temperature)
    distiller.compile(optimizer=optimizer, metrics=["accuracy"])
    try:
        return distiller.fit(*fit_args, **fit_kwargs)
    finally:
        teacher.trainable = trainable
