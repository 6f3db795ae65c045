"""The Auto-DeepLab segmentation space (Liu et al. 2019, arXiv 1901.02985).

Two levels, as in the paper: the cell (a DARTS cell, `tfnas.blocks.cells.darts_cell`, one
genotype "normal" shared by every layer) and the network-level trellis of downsampling
rates /4, /8, /16, /32 (`tfnas.search.auto_deeplab`). A two-convolution stem brings the
image to /4; each of `num_layers` layers has one cell per rate; an ASPP-style head on the
last layer gives per-pixel logits, bilinearly upsampled to the input size.

- Fixed mode (plain `keras_tuner.HyperParameters`): the network of one path, the
  hyperparameters `network/layer{l}` (the level of layer `l`, moving at most one level per
  layer from the /4 stem; levels chosen independently, as a multi-trial oracle does, are
  projected onto the nearest such path, `tfnas.search.auto_deeplab.project_path`) and the
  DARTS cell `normal/...`; standard Keras layers only, so it converts to TFLite.
- Supernet mode (the rule `tfnas.engine.auto_deeplab.TrellisMixture`, made by
  `tfnas.oracles.AutoDeepLab`): every reachable node `(l, s)` sums, weighted by the betas,
  a cell applied to each incoming transition (the paper's Eq. 6,
  `H(l, s) = sum_{s'} beta_{s'->s} Cell(H(l-1, s'))`), and the heads of all levels of the
  last layer are summed (the paper's ASPP per rate).

A transition to a coarser rate is DARTS's factorized reduce (two offset 1x1 stride-2
convolutions), to a finer rate a bilinear 2x upsampling; the cell's 1x1 preprocessing then
brings the channels to `filter_multiplier * 2**level` (the paper's channels double with
the rate).

Deliberate deviations, for a small, CPU-sized space: a cell takes one input (the
transitioned previous layer, as both DARTS states) instead of also the layer before (the
paper's `H^{l-2}`), which would need one more resampling per node; the ASPP head has a 1x1
and one dilated 3x3 branch (dilation `96 / rate` as in the paper, capped at half the feature
size) and no image-pooling branch; the stem has two convolutions (the paper: three).

Example:

```python
space = tfnas.spaces.AutoDeepLabSpace(input_shape=(32, 32, 3), num_classes=4, num_layers=4)
model = tfnas.Architecture(space, space.architecture_values(
    tfnas.spaces.darts.DARTS_V2["normal"], [1, 2, 2, 1])).build()
```
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import keras_tuner

from tfnas.blocks import ops
from tfnas.blocks.cells import darts_cell
from tfnas.blocks.supernet import mixing_rule_of
from tfnas.search import auto_deeplab as adl
from tfnas.spaces.common import check_operations, validate_common
from tfnas.spaces.darts import genotype_to_values
from tfnas.validation import check_int


def path_name(layer: int) -> str:
    """The hyperparameter of the level of layer `layer` (`network/layer{l}`)."""
    return f"network/layer{layer}"


def _default_path(num_layers: int, num_levels: int) -> list[int]:
    # /8 then /16 and on: a DeepLab-like output stride, valid for every depth.
    return [min(layer + 1, 2, num_levels - 1) for layer in range(num_layers)]


@keras.saving.register_keras_serializable(package="tfnas")
class _WeightedSum(keras.layers.Layer):
    """Sums its inputs, each times a weight the trellis rule gives (betas or heads)."""

    def __init__(self, rule, keys: Sequence[tuple], **kwargs):
        super().__init__(**kwargs)
        self.rule = rule
        self.keys = [tuple(key) for key in keys]

    def _weight(self, key):
        if key[0] == "head":
            return self.rule.head_weight(key[1])
        return self.rule.transition_weight(*key)

    # `tfnas.engine.supernet.collapse` passes the architecture to `export_on`.
    export_reads_values = True

    def export_on(self, inputs, values):
        """The fixed network's form: the input of the path's transition into this node
        (or the head of the path's last level); the other inputs drop out of the graph."""
        path = path_of(values)
        layer = self.keys[0][0]
        if layer == "head":
            wanted = ("head", path[-1])
        else:
            src = path[layer - 1] if layer else 0  # The stem is at /4, level 0.
            wanted = (layer, src, path[layer] - src + 1)
        for key, x in zip(self.keys, inputs):
            if key == wanted:
                return x
        return inputs[0]  # A node off the path: not connected to the output.

    def call(self, inputs):
        total = None
        for key, x in zip(self.keys, inputs):
            term = x * keras.ops.cast(self._weight(key), x.dtype)
            total = term if total is None else total + term
        return total


class AutoDeepLabSpace(keras_tuner.HyperModel):
    """Auto-DeepLab's cell + network-level space for semantic segmentation.

    Args:
        input_shape: `(height, width, channels)`; height and width must be divisible by the
            largest rate, `RATES[num_levels - 1]` (32 with the paper's four levels).
        num_classes: classes of the masks (logits per pixel).
        num_layers: layers of the trellis (the paper: 12).
        num_levels: rates used, the first `num_levels` of /4, /8, /16, /32 (the paper: 4).
        filter_multiplier: cell channels at /4 (the paper's F: 8 in search); doubled per
            level.
        num_nodes: intermediate nodes per cell (the paper's B: 5).
        stem_channels: channels of the stem.
        head_channels: channels of each ASPP branch.
        operations: candidate operations (default: the 8 DARTS operations; the paper drops
            `none`).
        affine: learnable BN scale/offset in the cells; None: False in the supernet, True
            in fixed mode (as `DartsSpace`).
        learning_rate: Adam learning rate of the compiled model.
    """

    def __init__(
        self,
        input_shape=(32, 32, 3),
        num_classes: int = 4,
        *,
        num_layers: int = 4,
        num_levels: int = len(adl.RATES),
        filter_multiplier: int = 8,
        num_nodes: int = 2,
        stem_channels: int = 16,
        head_channels: int = 16,
        operations: Sequence[str] = ops.DARTS_OPS,
        affine: bool | None = None,
        learning_rate: float = 1e-3,
        name: str = "auto_deeplab",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        validate_common(input_shape, num_classes, learning_rate)
        for arg, value, low in (
            ("num_layers", num_layers, 1),
            ("num_levels", num_levels, 1),
            ("filter_multiplier", filter_multiplier, 2),
            ("num_nodes", num_nodes, 1),
            ("stem_channels", stem_channels, 1),
            ("head_channels", head_channels, 1),
        ):
            check_int(arg, value, low)
        if num_levels > len(adl.RATES):
            raise ValueError(
                f"num_levels must be at most {len(adl.RATES)} (rates {adl.RATES}). "
                f"Received: num_levels={num_levels}"
            )
        if filter_multiplier % 2:
            raise ValueError(
                "filter_multiplier must be even (factorized reduce splits the channels). "
                f"Received: filter_multiplier={filter_multiplier}"
            )
        largest = adl.RATES[num_levels - 1]
        if input_shape[0] % largest or input_shape[1] % largest:
            raise ValueError(
                "input_shape height and width must be divisible by the largest downsampling "
                f"rate {largest}. Received: input_shape={tuple(input_shape)!r}"
            )
        check_operations(operations, ops.DARTS_OPS)
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.num_layers = num_layers
        self.num_levels = num_levels
        self.filter_multiplier = filter_multiplier
        self.num_nodes = num_nodes
        self.stem_channels = stem_channels
        self.head_channels = head_channels
        self.operations = tuple(operations)
        self.affine = affine
        self.learning_rate = learning_rate

    @classmethod
    def from_dataset(cls, dataset, **kwargs) -> AutoDeepLabSpace:
        """The space for a `tfnas.data.Dataset` of per-pixel masks (e.g. "shapes").

        Raises:
            ValueError: when the dataset's labels are not masks of the image size.
        """
        label_shape = tuple(dataset.y_train.shape[1:])
        if label_shape != tuple(dataset.input_shape[:2]):
            raise ValueError(
                "AutoDeepLabSpace segments images and needs per-pixel masks of the image "
                f"size {tuple(dataset.input_shape[:2])} as labels (e.g. dataset 'shapes'). "
                f"Received: dataset {dataset.name!r} with labels of shape {label_shape}"
            )
        return cls(tuple(dataset.input_shape), dataset.num_classes, **kwargs)

    def architecture_values(self, normal: Sequence[tuple[str, int]], path: Sequence[int]):
        """The hyperparameter values of a DARTS "normal" genotype and a network path."""
        path = adl.validate_path(path, self.num_levels)
        if len(path) != self.num_layers:
            raise ValueError(
                f"path must have one level per layer ({self.num_layers}). Received: path={path!r}"
            )
        values = genotype_to_values({"normal": list(normal)})
        values.update({path_name(layer): level for layer, level in enumerate(path)})
        return values

    def _channels(self, level: int) -> int:
        return self.filter_multiplier * 2**level

    def _path(self, hp) -> list[int]:
        default = _default_path(self.num_layers, self.num_levels)
        levels = [
            hp.Choice(path_name(layer), list(range(self.num_levels)), default=default[layer])
            for layer in range(self.num_layers)
        ]
        # Multi-trial samplers choose each layer's level independently: the nearest valid
        # path (`project_path`) is built, the same one for the same values.
        return adl.project_path(levels, self.num_levels)

    def _cell(self, hp, x, src: int, dst: int, affine: bool):
        channels = self._channels(dst)
        if dst == src + 1:
            x = ops.factorized_reduce(x.shape[1:], channels, affine)(x)
        elif dst == src - 1:
            x = keras.layers.UpSampling2D(2, interpolation="bilinear")(x)
        return darts_cell(
            hp,
            "normal",
            x,
            x,
            channels,
            reduction=False,
            reduction_prev=False,
            num_nodes=self.num_nodes,
            operations=self.operations,
            affine=affine,
            blocks_name=None,
        )

    def _head(self, x, level: int, index: int):
        rate = adl.RATES[level]
        layers = keras.layers
        dilation = max(1, min(96 // rate, x.shape[1] // 2))
        branches = []
        for kernel, dil in ((1, 1), (3, dilation)):
            y = layers.Conv2D(
                self.head_channels, kernel, padding="same", dilation_rate=dil, use_bias=False
            )(x)
            branches.append(layers.ReLU()(layers.BatchNormalization()(y)))
        y = layers.Concatenate()(branches)
        y = layers.Conv2D(self.num_classes, 1, name=f"head{index}_logits")(y)
        return layers.UpSampling2D(rate, interpolation="bilinear")(y)

    def build(self, hp):
        rule = mixing_rule_of(hp)
        path = self._path(hp)
        affine = self.affine if self.affine is not None else rule is None
        inputs = keras.Input(self.input_shape)
        x = inputs
        for _ in range(2):
            x = keras.layers.Conv2D(self.stem_channels, 3, 2, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.ReLU()(x)
        if rule is None:
            src = 0
            for dst in path:
                x = self._cell(hp, x, src, dst, affine)
                src = dst
            logits = self._head(x, path[-1], 0)
        else:
            logits = self._supernet(hp, rule, x, affine)
        logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
        model = keras.Model(inputs, logits, name=self.name)
        return compile_segmenter(model, self.num_classes, self.learning_rate)

    def _supernet(self, hp, rule, stem, affine: bool):
        if not hasattr(rule, "build_trellis"):
            raise ValueError(
                "AutoDeepLabSpace's supernet needs the trellis rule of the auto_deeplab "
                f"oracle (tfnas.engine.auto_deeplab.TrellisMixture). Received: "
                f"{type(rule).__name__}"
            )
        rule.build_trellis(self.num_layers, self.num_levels)
        mask = rule.mask
        nodes = {0: stem}
        for layer in range(self.num_layers):
            new = {}
            for dst in range(self.num_levels):
                keys, terms = [], []
                for src, x in nodes.items():
                    direction = dst - src + 1
                    if 0 <= direction < 3 and mask[layer, src, direction]:
                        keys.append((layer, src, direction))
                        terms.append(self._cell(hp, x, src, dst, affine))
                if terms:
                    new[dst] = _WeightedSum(rule, keys)(terms)
            nodes = new
        heads = [self._head(x, level, level) for level, x in nodes.items()]
        return _WeightedSum(rule, [("head", level) for level in nodes])(heads)


def plot_network_path(path: str, decoded: Sequence[int], probabilities=None) -> str:
    """Draws a network-level path on the trellis of rates as a PNG.

    Args:
        path: the PNG file to write.
        decoded: the level of each layer (`network/layer{l}`), drawn in red from the /4 stem.
        probabilities: optional `(num_layers, num_levels, 3)` transition probabilities (the
            normalised betas of `tfnas.oracles.AutoDeepLab`), drawn shaded by value; without
            them the trellis has the levels of the path and one more.

    Returns:
        `path`.
    """
    from tfnas.results import plotting

    decoded = [int(level) for level in decoded]
    num_layers = len(decoded)
    if probabilities is None:
        num_levels = min(len(adl.RATES), max(decoded) + 2)
    else:
        num_levels = probabilities.shape[1]
    figure = plotting.new_figure(1.0 + 0.8 * num_layers, 0.6 + 0.7 * num_levels)
    axes = figure.add_subplot(1, 1, 1)
    if probabilities is not None:
        for layer in range(num_layers):
            for src in range(num_levels):
                for direction in range(3):
                    p = float(probabilities[layer, src, direction])
                    if p > 0:
                        axes.plot(
                            [layer, layer + 1],
                            [src, src + direction - 1],
                            color="0.3",
                            alpha=0.15 + 0.85 * p,
                            linewidth=0.5 + 2 * p,
                        )
    axes.plot(range(num_layers + 1), [0, *decoded], color="red", linewidth=2.5, marker="o")
    axes.set_yticks(range(num_levels), [f"/{r}" for r in adl.RATES[:num_levels]])
    axes.set_xticks(range(num_layers + 1), ["stem", *map(str, range(1, num_layers + 1))])
    axes.set_ylim(-0.5, num_levels - 0.5)
    axes.invert_yaxis()
    axes.set_xlabel("layer")
    axes.set_title("Auto-DeepLab network path")
    return plotting.save_png(figure, path)


def path_of(values) -> list[int]:
    """The network path an architecture's values build (their `network/layer{l}` levels,
    projected onto a valid path as `AutoDeepLabSpace` does)."""
    levels = []
    while path_name(len(levels)) in values:
        levels.append(int(values[path_name(len(levels))]))
    return adl.project_path(levels)


def compile_segmenter(model: keras.Model, num_classes: int, learning_rate: float):
    """Compiles with Adam, per-pixel sparse cross-entropy on logits, and mean IoU.

    `keras.metrics.MeanIoU(sparse_y_pred=False)` takes the argmax of the logits; the
    objective of a search is "val_mean_iou".
    """
    model.compile(
        keras.optimizers.Adam(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.MeanIoU(num_classes, sparse_y_pred=False, name="mean_iou")],
    )
    return model
