"""The ProxylessNAS mobile space (Cai et al. 2018, arXiv 1812.00332) in the authors' form.

As `search/models/super_nets/super_proxyless.py` of mit-han-lab/proxylessnas builds it: a
3x3 stem convolution (32, stride 2, ReLU6), a fixed first block (3x3 MBConv1, 16), then
stages of widths 24, 40, 80, 96, 192, 320 with 4, 4, 4, 4, 4, 1 blocks and first strides
2, 2, 2, 1, 2, 1, a 1x1 feature-mix convolution (1280), pooling and the classifier. Every
searched block is one choice `stage{s}/block{b}/op` over the MBConvs `k{3,5,7}_e{3,6}`,
plus `skip` (the authors' `Zero` op: the block reduces to its identity shortcut) wherever
the block keeps the shape, i.e. in every block but the first of a stage. A
`MobileSpace` with `joint_ops=True` and these stages, except that the first block is not
searched.

`proxyless_mobile_values` is the published ProxylessNAS-Mobile (GPU-, CPU- nets aside), from
the authors' released `proxyless_mobile.config`; that network's first searched stage is 32
wide, not 24 (`PROXYLESS_MOBILE_STAGES`): build it in a space with those stages.

Deliberate deviations: batch norm uses Keras's MobileNet settings by default (momentum
0.999, epsilon 1e-3) rather than the authors' PyTorch momentum 0.1 (Keras 0.9, one
argument away: `batch_norm_momentum=0.9`); counts are equal.
"""

from __future__ import annotations

from collections.abc import Sequence

from tfnas.blocks import ops
from tfnas.spaces.mobile import SKIP, MobileSpace, Stage

PROXYLESS_OPS = ("k3_e3", "k3_e6", "k5_e3", "k5_e6", "k7_e3", "k7_e6")

# Stage 0 is the fixed first block (3x3 MBConv1, 16); the others are searched.
PROXYLESS_STAGES = (Stage(16, 1, 1),) + tuple(
    Stage(f, 1 if n == 1 else tuple(range(1, n + 1)), s)
    for f, n, s in zip((24, 40, 80, 96, 192, 320), (4, 4, 4, 4, 4, 1), (2, 2, 2, 1, 2, 1))
)
# The released ProxylessNAS-Mobile: its first searched stage is 32 wide.
PROXYLESS_MOBILE_STAGES = (PROXYLESS_STAGES[0], Stage(32, (1, 2, 3, 4), 2)) + PROXYLESS_STAGES[2:]

# proxyless_mobile.config, block by block (after the fixed first block).
_PROXYLESS_MOBILE = [
    ["k5_e3", "k3_e3", SKIP, SKIP],
    ["k7_e3", "k3_e3", "k5_e3", "k5_e3"],
    ["k7_e6", "k5_e3", "k5_e3", "k5_e3"],
    ["k5_e6", "k5_e3", "k5_e3", "k5_e3"],
    ["k7_e6", "k7_e6", "k7_e3", "k7_e3"],
    ["k7_e6"],
]


def proxyless_mobile_values(space: ProxylessSpace) -> dict:
    """ProxylessNAS-Mobile as hyperparameter values of a `ProxylessSpace` built with
    `PROXYLESS_MOBILE_STAGES` (or any stages with 1 + (4, 4, 4, 4, 4, 1) blocks)."""
    if [max(s.depths) for s in space.stages[1:]] != [len(stage) for stage in _PROXYLESS_MOBILE]:
        raise ValueError(
            "ProxylessNAS-Mobile needs a space with the first block and stages of 4, 4, 4, "
            f"4, 4, 1 blocks. Received: stages={space.stages!r}"
        )
    values = {}
    for s, stage in enumerate(_PROXYLESS_MOBILE, start=1):
        for b, op in enumerate(stage):
            if op != SKIP and op not in space.operations:
                raise ValueError(
                    f"ProxylessNAS-Mobile uses {op!r}, which the space does not offer. "
                    f"Received: operations={list(space.operations)!r}"
                )
            values[f"stage{s}/block{b}/op"] = op
    return values


class ProxylessSpace(MobileSpace):
    """The ProxylessNAS mobile space as a KerasTuner hypermodel: one choice per block.

    A `MobileSpace` with `joint_ops=True` whose first stage is the authors' fixed first
    block (3x3 MBConv1, not searched).

    Args:
        input_shape: image shape ((224, 224, 3) for ImageNet, (8, 8, 1) for digits).
        num_classes: classifier outputs.
        stages: `Stage`s; the first is the fixed block (one block), the others searched,
            with consecutive depths from 1 so that every block but the first may skip.
            Default: `PROXYLESS_STAGES`.
        stem_filters, stem_strides, head_filters: 32, 2 and 1280 as in the paper.
        kernel_sizes, expansions: the MBConv candidates, (3, 5, 7) x (3, 6).
        dropout, learning_rate, batch_norm_momentum, name: as in `MobileSpace`.

    Raises:
        ValueError: for bad arguments, naming the argument and the value received.

    Example:

    ```python
    space = tfnas.spaces.ProxylessSpace(
        (8, 8, 1), 10, stem_filters=8, stem_strides=1, head_filters=32,
        stages=[tfnas.spaces.Stage(8, 1), tfnas.spaces.Stage(16, (1, 2), 2)])
    ```
    """

    def __init__(
        self,
        input_shape=(224, 224, 3),
        num_classes: int = 1000,
        *,
        stages: Sequence[Stage] | None = None,
        stem_filters: int = 32,
        stem_strides: int = 2,
        head_filters: int = 1280,
        kernel_sizes: Sequence[int] = (3, 5, 7),
        expansions: Sequence[int] = (3, 6),
        dropout: float = 0.0,
        learning_rate: float = 1e-3,
        batch_norm_momentum: float = 0.999,
        name: str = "proxyless",
        **kwargs,
    ):
        stages = tuple(PROXYLESS_STAGES if stages is None else stages)
        if len(stages) < 2 or not all(isinstance(s, Stage) for s in stages):
            raise ValueError(
                "stages must list the fixed first block and at least one searched stage as "
                f"tfnas.spaces.Stage. Received: stages={stages!r}"
            )
        if stages[0].depths != (1,):
            raise ValueError(
                "The first stage is ProxylessNAS's fixed first block: one block. Received: "
                f"depths={stages[0].depths!r}"
            )
        for stage in stages[1:]:
            if min(stage.depths) != 1:
                raise ValueError(
                    "Every block but the first of a ProxylessNAS stage may skip: searched "
                    f"stages' depths must start at 1. Received: depths={stage.depths!r}"
                )
        super().__init__(
            input_shape,
            num_classes,
            stages=stages,
            stem_filters=stem_filters,
            stem_strides=stem_strides,
            head_filters=head_filters,
            kernel_sizes=kernel_sizes,
            expansions=expansions,
            se_ratios=(0.0,),
            activations=("relu6",),
            dropout=dropout,
            learning_rate=learning_rate,
            batch_norm_momentum=batch_norm_momentum,
            joint_ops=True,
            name=name,
            **kwargs,
        )

    @property
    def operations(self) -> tuple[str, ...]:
        """The MBConv candidates of each searched block (`skip` aside)."""
        return tuple(
            self.op_name(k, e, 0.0, "relu6") for k in self.kernel_sizes for e in self.expansions
        )

    def _joint_block(self, hp, stage_index: int, block_index: int, x):
        if stage_index == 0:
            stage = self.stages[0]
            return ops.mbconv(
                tuple(x.shape[1:]), stage.filters, kernel_size=3, expansion=1,
                strides=stage.strides, activation="relu6", name="first_block",
                batch_norm_momentum=self.batch_norm_momentum,
            )(x)  # fmt: skip
        return super()._joint_block(hp, stage_index, block_index, x)
