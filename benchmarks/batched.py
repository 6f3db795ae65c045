"""Trains many NAS-Bench-201 architectures at once, each exactly as if it were alone.

Used to generate the tabular benchmarks (`benchmarks/make_tabular_benchmark.py`). A Keras
supernet that masks the candidate operations of one architecture runs at about 60 ms per
step on two CPU cores (the network is tiny, so the time is per-op overhead). Here `K`
architectures share one TensorFlow graph: every weight has a leading `K` axis, every
convolution is one batched matmul over the `K` architectures, and each architecture's
edges hold a one-hot mask over the candidate operations. The architectures never mix:
the loss is the sum of the per-architecture mean losses, so each weight's gradient is that
of its own architecture's loss, and Adam is element-wise. An unchosen operation is
multiplied by an exact zero: it adds nothing to the output, receives an exact zero
gradient and Adam leaves it where it started.

The network is the one `tfnas.spaces.NasBench201Space.build` makes in fixed mode, layer for
layer (stem conv + BN; three stages of `cells_per_stage` cells; two residual reduction
blocks; BN, ReLU, global pooling, dense), with Keras' initializers (Glorot-uniform
kernels, zero biases, BN gamma 1 / beta 0) and BN semantics (batch statistics in training,
momentum 0.9, epsilon 1e-5). `batched_test.py` checks the forward pass against the Keras
model with the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfnas.blocks import ops as ops_lib

_EPS = 1e-5
_MOMENTUM = 0.9
NUM_EDGES = 6
# (source node, target node) of the 6 edges, in the order of `values_to_arch_str`.
EDGES = tuple((i, j) for j in range(1, 4) for i in range(j))


def _glorot(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


class BatchedNasBench201:
    """`num_archs` NAS-Bench-201 networks of one macro skeleton, trained side by side.

    Args:
        num_archs: architectures trained at once (K).
        channels: channels of the first stage.
        cells_per_stage: cells per stage.
        operations: candidate operations (a subset of `NASBENCH201_OPS`).
        input_shape: image shape.
        num_classes: classifier outputs.
        learning_rate: Adam learning rate (Keras defaults otherwise: 0.9, 0.999, 1e-7).
        jit_compile: compile the training and prediction steps with XLA.
    """

    def __init__(
        self,
        num_archs: int,
        channels: int,
        cells_per_stage: int = 1,
        operations: Sequence[str] = ops_lib.NASBENCH201_OPS,
        input_shape: Sequence[int] = (8, 8, 1),
        num_classes: int = 10,
        learning_rate: float = 1e-3,
        jit_compile: bool = False,
    ):
        unknown = [op for op in operations if op not in ops_lib.NASBENCH201_OPS]
        if unknown or not operations:
            raise ValueError(
                f"operations must be a non-empty subset of {ops_lib.NASBENCH201_OPS}. "
                f"Received: operations={list(operations)!r}"
            )
        self.num_archs = num_archs
        self.channels = channels
        self.cells_per_stage = cells_per_stage
        self.operations = tuple(operations)
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.learning_rate = learning_rate
        self._shapes = self._weight_shapes()
        k = num_archs
        self.weights = {
            name: tf.Variable(tf.zeros((k, *shape)), name=name.replace("/", "_"))
            for name, shape in self._shapes.items()
        }
        self.trainable_names = [n for n in self._shapes if not n.endswith(("/mean", "/var"))]
        self._adam = {
            name: (tf.Variable(tf.zeros((k, *self._shapes[name]))),)
            + (tf.Variable(tf.zeros((k, *self._shapes[name]))),)
            for name in self.trainable_names
        }
        self._step = tf.Variable(0.0)
        self.masks = tf.Variable(tf.zeros((k, NUM_EDGES, len(self.operations))))
        self.train_step = tf.function(self._train_step, jit_compile=jit_compile)
        self.predict = tf.function(self._predict, jit_compile=jit_compile)

    def _weight_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {}

        def conv_bn(name, k, cin, cout, bn=True):
            shapes[f"{name}/kernel"] = (k, k, cin, cout)
            if bn:
                for part in ("gamma", "beta", "mean", "var"):
                    shapes[f"{name}/{part}"] = (cout,)

        c = self.channels
        conv_bn("stem", 3, self.input_shape[-1], c)
        for stage in range(3):
            if stage:
                conv_bn(f"reduce{stage}/a", 3, c, 2 * c)
                conv_bn(f"reduce{stage}/b", 3, 2 * c, 2 * c)
                conv_bn(f"reduce{stage}/shortcut", 1, c, 2 * c, bn=False)
                c *= 2
            for cell in range(self.cells_per_stage):
                for e in range(NUM_EDGES):
                    for op in ("nor_conv_1x1", "nor_conv_3x3"):
                        if op in self.operations:
                            conv_bn(f"cell{stage}_{cell}/edge{e}/{op}", int(op[-1]), c, c)
        for part in ("gamma", "beta", "mean", "var"):
            shapes[f"last_bn/{part}"] = (c,)
        shapes["dense/kernel"] = (c, self.num_classes)
        shapes["dense/bias"] = (self.num_classes,)
        return shapes

    def initial_weights(self, seed: int) -> dict[str, np.ndarray]:
        """One network's initial weights for `seed` (Keras initializers), no K axis."""
        rng = np.random.default_rng(seed)
        values = {}
        for name, shape in self._shapes.items():
            part = name.rsplit("/", 1)[1]
            if part == "kernel":
                values[name] = _glorot(rng, shape)
            elif part in ("gamma", "var"):
                values[name] = np.ones(shape, np.float32)
            else:
                values[name] = np.zeros(shape, np.float32)
        return values

    def reset(self, initial: dict[str, np.ndarray], masks: np.ndarray) -> None:
        """Every architecture starts from `initial`; fresh optimizer; `masks` [K, 6, ops]."""
        k = self.num_archs
        for name, value in initial.items():
            self.weights[name].assign(np.broadcast_to(value, (k, *value.shape)))
        for slots in self._adam.values():
            for slot in slots:
                slot.assign(tf.zeros_like(slot))
        self._step.assign(0.0)
        self.masks.assign(masks.astype(np.float32))

    # The network. Activations are [B, H, W, K * C]: architecture k owns channels
    # [k * C, (k + 1) * C), so every convolution is one grouped convolution (groups = K)
    # and batch norm reduces over the batch and spatial axes as usual.

    def _conv(self, x, name, strides=1):
        kernel = self.weights[f"{name}/kernel"]  # [K, kh, kw, cin, cout]
        k, kh, kw, cin, cout = kernel.shape
        grouped = tf.reshape(tf.transpose(kernel, [1, 2, 3, 0, 4]), [kh, kw, cin, k * cout])
        return tf.nn.conv2d(x, grouped, strides, padding="SAME")

    def _per_channel(self, values):
        # [K, C] -> [K * C] in the channel order of the activations.
        return tf.reshape(values, [-1])

    def _bn(self, x, name, training):
        gamma = self._per_channel(self.weights[f"{name}/gamma"])
        beta = self._per_channel(self.weights[f"{name}/beta"])
        moving_mean, moving_var = self.weights[f"{name}/mean"], self.weights[f"{name}/var"]
        if training:
            mean, var = tf.nn.moments(x, axes=[0, 1, 2])
            shape = tf.shape(moving_mean)
            moving_mean.assign(moving_mean * _MOMENTUM + tf.reshape(mean, shape) * (1 - _MOMENTUM))
            moving_var.assign(moving_var * _MOMENTUM + tf.reshape(var, shape) * (1 - _MOMENTUM))
        else:
            mean, var = self._per_channel(moving_mean), self._per_channel(moving_var)
        return (x - mean) * tf.math.rsqrt(var + _EPS) * gamma + beta

    def _relu_conv_bn(self, x, name, training, strides=1):
        return self._bn(self._conv(tf.nn.relu(x), name, strides), name, training)

    def _edge(self, x, prefix, edge, training):
        channels = x.shape[-1] // self.num_archs
        out = None
        for index, op in enumerate(self.operations):
            if op == "none":
                continue  # zeros: adds nothing, whether chosen or not
            if op == "skip_connect":
                y = x
            elif op == "avg_pool_3x3":
                # Keras/TF "same" average pooling divides by the in-image pixel count.
                y = tf.nn.avg_pool2d(x, 3, 1, padding="SAME")
            else:
                y = self._relu_conv_bn(x, f"{prefix}/edge{edge}/{op}", training)
            mask = tf.repeat(self.masks[:, edge, index], channels)
            out = mask * y if out is None else out + mask * y
        return tf.zeros_like(x) if out is None else out

    def _cell(self, x, prefix, training):
        nodes = [x]
        for j in range(1, 4):
            total = None
            for e, (i, target) in enumerate(EDGES):
                if target == j:
                    y = self._edge(nodes[i], prefix, e, training)
                    total = y if total is None else total + y
            nodes.append(total)
        return nodes[-1]

    def _reduction(self, x, stage, training):
        y = self._relu_conv_bn(x, f"reduce{stage}/a", training, strides=2)
        y = self._relu_conv_bn(y, f"reduce{stage}/b", training)
        pooled = tf.nn.avg_pool2d(x, 2, 2, padding="SAME")
        return y + self._conv(pooled, f"reduce{stage}/shortcut")

    def logits(self, images, training: bool):
        """Logits `[B, K, classes]` of every architecture on the same `images` `[B, H, W, C]`."""
        # The stem is an ordinary convolution: every architecture reads the same image.
        x = self._bn(self._conv(images, "stem"), "stem", training)
        for stage in range(3):
            if stage:
                x = self._reduction(x, stage, training)
            for cell in range(self.cells_per_stage):
                x = self._cell(x, f"cell{stage}_{cell}", training)
        x = tf.nn.relu(self._bn(x, "last_bn", training))
        x = tf.reduce_mean(x, axis=[1, 2])
        x = tf.reshape(x, [tf.shape(x)[0], self.num_archs, -1])
        return (
            tf.einsum("bkc,kco->bko", x, self.weights["dense/kernel"]) + self.weights["dense/bias"]
        )

    def _train_step(self, images, labels):
        variables = [self.weights[n] for n in self.trainable_names]
        with tf.GradientTape() as tape:
            logits = self.logits(images, training=True)
            labels_k = tf.broadcast_to(labels[:, None], tf.shape(logits)[:2])
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels_k, logits)
            per_arch = tf.reduce_mean(losses, axis=0)
            total = tf.reduce_sum(per_arch)
        grads = tape.gradient(total, variables)
        self._step.assign_add(1.0)
        beta1, beta2, epsilon = 0.9, 0.999, 1e-7
        lr = (
            self.learning_rate
            * tf.sqrt(1 - tf.pow(beta2, self._step))
            / (1 - tf.pow(beta1, self._step))
        )
        for name, var, grad in zip(self.trainable_names, variables, grads):
            m, v = self._adam[name]
            m.assign_add((grad - m) * (1 - beta1))
            v.assign_add((tf.square(grad) - v) * (1 - beta2))
            var.assign_sub(m * lr / (tf.sqrt(v) + epsilon))
        return per_arch

    def _predict(self, images):
        return tf.argmax(self.logits(images, training=False), axis=-1, output_type=tf.int32)

    def accuracy(self, images: np.ndarray, labels: np.ndarray, batch_size: int = 135):
        """Accuracy `[K]` of every architecture (BN in inference mode)."""
        correct = np.zeros(self.num_archs)
        for start in range(0, len(labels), batch_size):
            pred = self.predict(tf.constant(images[start : start + batch_size])).numpy()
            correct += (pred == labels[start : start + batch_size, None]).sum(axis=0)
        return correct / len(labels)


def training_equivalent(cell: Sequence[str]) -> tuple[str, ...]:
    """A representative of the cells whose training is identical to `cell`'s.

    `cell` lists the operation of each edge in `EDGES` order. Two rewrites change nothing
    in the forward or backward pass (given the same initial weights and batches): an edge
    into a node that no path of non-`none` edges connects to the output is replaced by
    `none` (its result is multiplied by zero downstream), and a `skip_connect` or
    `avg_pool_3x3` edge leaving a node that is identically zero is replaced by `none` (it
    outputs zeros). A convolution on a zero node is kept: its batch norm outputs the
    learned `beta`.
    """
    cell = list(cell)
    while True:
        before = list(cell)
        zero = [False] * 4
        for j in range(1, 4):
            zero[j] = all(
                cell[e] == "none" or (cell[e] in ("skip_connect", "avg_pool_3x3") and zero[i])
                for e, (i, target) in enumerate(EDGES)
                if target == j
            )
        for e, (i, _) in enumerate(EDGES):
            if zero[i] and cell[e] in ("skip_connect", "avg_pool_3x3"):
                cell[e] = "none"
        reaches_output = [False, False, False, True]
        for j in (2, 1):
            reaches_output[j] = any(
                reaches_output[target] and cell[e] != "none"
                for e, (source, target) in enumerate(EDGES)
                if source == j
            )
        for e, (_, j) in enumerate(EDGES):
            if not reaches_output[j]:
                cell[e] = "none"
        if cell == before:
            return tuple(cell)
