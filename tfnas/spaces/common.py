"""What every ready-made space shares: argument checks, the classifier head, compilation."""

from __future__ import annotations

import keras

from tfnas.validation import check_int


def validate_common(input_shape, num_classes, learning_rate) -> None:
    """Checks the arguments every space takes, naming the bad one."""
    if (
        not isinstance(input_shape, (tuple, list))
        or len(input_shape) != 3
        or not all(isinstance(d, int) and d > 0 for d in input_shape)
    ):
        raise ValueError(
            "input_shape must be (height, width, channels) of positive ints. "
            f"Received: input_shape={input_shape!r}"
        )
    check_int("num_classes", num_classes, 2)
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0. Received: learning_rate={learning_rate!r}")


def check_operations(operations, allowed) -> None:
    """Raises unless `operations` is a non-empty subset of `allowed`."""
    if not operations or any(op not in allowed for op in operations):
        raise ValueError(
            f"operations must be a non-empty subset of {tuple(allowed)}. "
            f"Received: operations={list(operations)!r}"
        )


def classification_head(x, num_classes: int, name: str = "logits", dropout: float = 0.0):
    """Global average pooling, optional dropout and a linear classifier producing logits."""
    x = keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return keras.layers.Dense(num_classes, name=name)(x)


def compile_classifier(
    model: keras.Model,
    learning_rate: float,
    *,
    auxiliary_output: str | None = None,
    auxiliary_weight: float = 0.4,
) -> keras.Model:
    """Compiles with Adam, sparse cross-entropy on logits and accuracy.

    With an auxiliary output (a dict-output model), the main output is "logits" and its
    accuracy is reported as `logits_accuracy` (`val_logits_accuracy` on validation data).
    """
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.Adam(learning_rate)
    if auxiliary_output is None:
        model.compile(optimizer, loss, metrics=["accuracy"])
    else:
        model.compile(
            optimizer,
            loss={"logits": loss, auxiliary_output: loss},
            loss_weights={"logits": 1.0, auxiliary_output: auxiliary_weight},
            metrics={"logits": ["accuracy"]},
        )
    return model
