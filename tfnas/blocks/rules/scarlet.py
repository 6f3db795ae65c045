"""SCARLET-NAS's rule: single path where skip candidates are learnable 1x1 projections."""

from __future__ import annotations

import keras
import numpy as np

from tfnas.blocks.rules.single_path import SinglePath
from tfnas.blocks.rules.softmax import is_layer_choice


@keras.saving.register_keras_serializable(package="tfnas")
class ScarletPath(SinglePath):
    """Single path where identity candidates become learnable 1x1 projections.

    SCARLET-NAS's linearly equivalent transformation (Chu et al. 2019): in the supernet a
    skip candidate computes `conv1x1(x)` (initialized as the identity), which can represent
    the identity but lets variable-depth supernets train stably. Exported networks keep the
    plain skip.
    """

    def build(self, choice):
        super().build(choice)
        if not is_layer_choice(choice) or hasattr(choice, "scarlet_projections"):
            return
        shape = choice.built_input_shape
        projections = {}
        for index, layer in enumerate(choice.candidates):
            if type(layer) is keras.layers.Identity and len(shape) == 4:
                projection = keras.layers.Conv2D(
                    shape[-1], 1, use_bias=False, name=f"{choice.name}_let{index}"
                )
                projection.build(shape)
                # Starts as the identity, the skip it stands for.
                projection.kernel.assign(np.eye(shape[-1], dtype="float32")[None, None])
                projections[str(index)] = projection
        choice.scarlet_projections = projections

    def mix_layers(self, choice, inputs, training=None):
        projections = getattr(choice, "scarlet_projections", {})

        def branch(index, layer):
            if str(index) in projections:
                return lambda x: projections[str(index)](x)
            return lambda x: layer(x, training=training)

        branches = [branch(i, layer) for i, layer in enumerate(choice.candidates)]
        if len(branches) == 1:
            return branches[0](inputs)
        return keras.ops.switch(self._indices[choice.choice_name].value, branches, inputs)
