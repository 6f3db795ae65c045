"""The batched trainer computes what the fixed-mode Keras model of each cell computes."""

import batched
import keras
import numpy as np
import tensorflow as tf

from tfnas.architecture import Architecture
from tfnas.blocks import ops
from tfnas.spaces import nasbench201

CELL = ("nor_conv_3x3", "skip_connect", "nor_conv_1x1", "none", "avg_pool_3x3", "nor_conv_3x3")


def _by_shape_values(rng, shapes):
    """One random array per distinct (kind, shape): weights of equal shape share values.

    This lets weights be copied between the two implementations without matching layers
    one to one (the Keras layer order within a cell is not the edge order).
    """
    values = {}
    for kind, shape in shapes:
        if (kind, shape) not in values:
            low = 0.5 if kind == "var" else -0.5
            values[kind, shape] = rng.uniform(low, 1.0, shape).astype(np.float32)
    return values


def test_logits_match_the_keras_model():
    cell = CELL
    space = nasbench201.NasBench201Space(
        (8, 8, 1), 10, channels=4, cells_per_stage=1, operations=ops.NASBENCH201_OPS
    )
    names = [f"cell/node{j}/edge{i}" for j in range(1, 4) for i in range(j)]
    model = Architecture(space, dict(zip(names, cell))).build()
    net = batched.BatchedNasBench201(2, 4, operations=ops.NASBENCH201_OPS)
    keras_weights = []
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            keras_weights += [
                (k, w) for k, w in zip(("gamma", "beta", "mean", "var"), layer.weights)
            ]
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            keras_weights += [(w.name, w) for w in layer.weights]
    rng = np.random.default_rng(0)
    ours = {name: name.rsplit("/", 1)[1] for name in net.weights}
    values = _by_shape_values(
        rng,
        [(k, tuple(w.shape)) for k, w in keras_weights]
        + [(ours[n], tuple(v.shape[1:])) for n, v in net.weights.items()],
    )
    for kind, weight in keras_weights:
        weight.assign(values[kind, tuple(weight.shape)])
    initial = {n: values[ours[n], tuple(v.shape[1:])] for n, v in net.weights.items()}
    index = {op: i for i, op in enumerate(ops.NASBENCH201_OPS)}
    masks = np.zeros((2, 6, 5))
    masks[0, np.arange(6), [index[op] for op in cell]] = 1
    masks[1, np.arange(6), index["nor_conv_3x3"]] = 1  # another architecture beside it
    net.reset(initial, masks)
    images = tf.random.stateless_uniform((16, 8, 8, 1), seed=(1, 2))
    # Inference first: a training-mode call updates the moving statistics (of both).
    for training in (False, True):
        expected = model(images, training=training).numpy()
        got = net.logits(images, training=training).numpy()[:, 0]
        np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-4, err_msg=str(training))


def test_training_equivalent_cells():
    dead = ("nor_conv_3x3", "nor_conv_3x3", "none", "nor_conv_3x3", "none", "none")
    assert batched.training_equivalent(dead) == ("none",) * 3 + ("nor_conv_3x3", "none", "none")
    zero_skip = ("none", "none", "skip_connect", "nor_conv_3x3", "none", "none")
    assert batched.training_equivalent(zero_skip) == (
        "none",
        "none",
        "none",
        "nor_conv_3x3",
        "none",
        "none",
    )
    conv_on_zero = ("none", "none", "nor_conv_3x3", "none", "none", "skip_connect")
    assert batched.training_equivalent(conv_on_zero) == conv_on_zero
