"""SCARLET-NAS's rule: single path where every skip is a learnable 1x1 projection."""

from __future__ import annotations

import keras
import numpy as np

from tfnas.blocks.rules.single_path import SinglePath
from tfnas.blocks.rules.softmax import is_layer_choice


def _projection(channels: int, name: str, shape) -> keras.layers.Conv2D:
    """A 1x1 convolution without bias, batch norm or activation, built as the identity."""
    projection = keras.layers.Conv2D(channels, 1, use_bias=False, name=name)
    projection.build(tuple(shape))
    projection.kernel.assign(np.eye(channels, dtype="float32")[None, None])
    return projection


def depth_choice_depths(choice) -> list[int] | None:
    """The candidate depths of an input choice made by `tfnas.blocks.repeat` (its input k
    is the output after the k-th smallest depth), else None."""
    if is_layer_choice(choice) or choice.n_chosen != 1 or len(choice.decision_names) != 1:
        return None
    name = choice.decision_names[0]
    depths = [values[name] for values in choice.candidate_values]
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in depths):
        return None  # `input_choice` values are strings; `repeat`'s are the depths.
    if depths != sorted(depths) or choice.subsets != [(i,) for i in range(len(depths))]:
        return None
    return depths


@keras.saving.register_keras_serializable(package="tfnas")
class ScarletPath(SinglePath):
    """Single path where every skip is a learnable linearly equivalent transformation.

    SCARLET-NAS (Chu et al. 2019, arXiv 1908.06022) replaces each skip of the supernet by
    a 1x1 convolution with no bias, batch norm or activation (initialized here as the
    identity), which can represent the skip but lets supernets where many layers can be
    skipped train stably. Every skip gets one:

    - an identity candidate (`keras.layers.Identity`) of a 4-D layer choice;
    - every block a depth choice (`tfnas.blocks.repeat`) can skip: with depth d of at
      most D blocks, block j >= d computes its own projection `P_j` instead, so the
      output is `P_{D-1}(... P_d(x_d))`.

    The exported network computes what was scored: a chosen skip becomes its trained 1x1
    convolution (`export_layer_choice`, `export_input_choice`), a standard Keras layer.
    """

    def build(self, choice):
        super().build(choice)
        if hasattr(choice, "scarlet_projections"):
            return
        if is_layer_choice(choice):
            choice.scarlet_projections = self._skip_projections(choice)
            return
        depths = depth_choice_depths(choice)
        if depths is None or depths[0] == depths[-1]:
            return
        shape = tuple(choice.built_input_shape[0])
        if len(shape) != 4:
            return
        choice.scarlet_projections = {
            str(j): _projection(shape[-1], f"{choice.name}_let{j}", shape)
            for j in range(depths[0], depths[-1])
        }

    @staticmethod
    def _skip_projections(choice) -> dict[str, keras.layers.Conv2D]:
        shape = choice.built_input_shape
        if len(shape) != 4:
            return {}
        return {
            str(index): _projection(shape[-1], f"{choice.name}_let{index}", shape)
            for index, layer in enumerate(choice.candidates)
            if isinstance(layer, keras.layers.Identity)
        }

    def _depth_chain(self, choice, index: int):
        """The projections that depth candidate `index` applies, in order."""
        projections = getattr(choice, "scarlet_projections", {})
        depths = depth_choice_depths(choice)
        if not projections or depths is None:
            return []
        return [projections[str(j)] for j in range(depths[index], depths[-1])]

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

    def mix_inputs(self, choice, inputs, training=None):
        if not getattr(choice, "scarlet_projections", None):
            return super().mix_inputs(choice, inputs, training=training)

        def branch(index):
            def run(*xs):
                x = xs[index]
                for projection in self._depth_chain(choice, index):
                    x = projection(x)
                return x

            return run

        branches = [branch(i) for i in range(len(choice.subsets))]
        return keras.ops.switch(self._indices[choice.choice_name].value, branches, *inputs)

    def export_layer_choice(self, choice, index, inputs, **kwargs):
        projection = getattr(choice, "scarlet_projections", {}).get(str(index))
        if projection is not None:
            return projection(inputs)
        return super().export_layer_choice(choice, index, inputs, **kwargs)

    def export_input_choice(self, choice, index, inputs):
        """The exported form of input choice `choice` with candidate `index` chosen: the
        chosen input through the projections of the blocks it skips."""
        chain = self._depth_chain(choice, index)
        if not chain:
            return super().export_input_choice(choice, index, inputs)
        x = inputs[choice.subsets[index][0]]
        for projection in chain:
            x = projection(x)
        return x
