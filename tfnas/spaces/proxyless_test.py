"""The ProxylessNAS space: ProxylessNAS-Mobile as a fixed point, the tiny space, errors."""

import keras_tuner
import numpy as np
import pytest

from tfnas import Architecture, cost, spaces
from tfnas.latency.lookup_table import space_operations
from tfnas.spaces import proxyless
from tfnas.spaces.mobile import Stage

OPS = ["k3_e3", "k3_e6", "k5_e3", "k5_e6", "k7_e3", "k7_e6"]


def test_proxyless_mobile_matches_the_released_network_exactly():
    space = proxyless.ProxylessSpace((224, 224, 3), 1000, stages=proxyless.PROXYLESS_MOBILE_STAGES)
    model = Architecture(space, proxyless.proxyless_mobile_values(space)).build()
    # PyTorch-style count (batch norms' moving statistics aside) of the released config
    # (pytorchcv port: 4,080,512); the authors' log gives 320.4M FLOPs.
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 4_080_512
    assert cost.count_flops(model) == pytest.approx(320.4e6, rel=0.01)


def test_tiny_space_choices_trains_and_lists_its_operations():
    space = spaces.make("proxyless", (8, 8, 1), 10)
    assert isinstance(space, proxyless.ProxylessSpace)
    choices, operations, hyperparameters = space_operations(space)
    # The first block is fixed; the first block of a stage cannot skip, the others can.
    by_name = {c["name"]: [v["values"][c["name"]] for v in c["candidates"]] for c in choices}
    assert by_name == {
        "stage1/block0/op": OPS,
        "stage1/block1/op": OPS + ["skip"],
        "stage2/block0/op": OPS,
        "stage2/block1/op": OPS + ["skip"],
    }
    assert len(hyperparameters) == 4 and len(operations) == 6 + 7 + 6 + 7
    assert not any(c["conditions"] for c in choices)
    rng = np.random.default_rng(0)
    hp = keras_tuner.HyperParameters()
    for name, values in by_name.items():
        hp.values[name] = str(rng.choice(values))
    model = space.build(hp)
    x = rng.random((8, 8, 8, 1), dtype="float32")
    model.fit(x, np.arange(8) % 10, epochs=1, batch_size=8, verbose=0)
    assert model.output.shape == (None, 10)
    assert "first_block" in [layer.name for layer in model.layers]


def test_argument_errors():
    with pytest.raises(ValueError, match="fixed first block and at least one searched stage"):
        proxyless.ProxylessSpace(stages=[Stage(16, 1)])
    with pytest.raises(
        ValueError, match=r"fixed first block: one block. Received: depths=\(1, 2\)"
    ):
        proxyless.ProxylessSpace(stages=[Stage(16, (1, 2)), Stage(24, (1, 2), 2)])
    with pytest.raises(ValueError, match=r"must start at 1. Received: depths=\(2, 3\)"):
        proxyless.ProxylessSpace(stages=[Stage(16, 1), Stage(24, (2, 3), 2)])
    tiny = spaces.make("proxyless", (8, 8, 1), 10)
    with pytest.raises(ValueError, match="ProxylessNAS-Mobile needs a space with the first block"):
        proxyless.proxyless_mobile_values(tiny)
    with pytest.raises(ValueError, match="uses 'k7_e3', which the space does not offer"):
        proxyless.proxyless_mobile_values(proxyless.ProxylessSpace(kernel_sizes=(3, 5)))
