import itertools
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas.latency import lookup_table
from tfnas.latency.lookup_table import LookupTable, build_table, space_operations
from tfnas.latency.runners import Runner
from tfnas.spaces import MobileSpace, Stage


def _space(kernel_sizes=(3, 5)):
    # Stage 1's blocks after the first see the same shape: 3 distinct block positions.
    return MobileSpace(
        (8, 8, 1), 10, stem_filters=8, stem_strides=1, head_filters=16,
        stages=[Stage(8, 1), Stage(16, (1, 2, 3), 2)],
        kernel_sizes=kernel_sizes, expansions=(1, 3), se_ratios=(0.0,),
    )  # fmt: skip


def _fake_convert(model, quantize=None):
    return json.dumps({"params": model.count_params(), "quantize": quantize}).encode()


class ParamsRunner(Runner):
    """Latency = parameters / 1000 ms, read from the fake flatbuffer `_fake_convert` writes.

    Additive over the blocks of a network, so a whole network's latency is exactly the sum
    of its blocks' plus a constant (stem, head, classifier): what the fit must recover.
    """

    def __init__(self, name="params", fail_after=None):
        self.name, self.calls, self.fail_after = name, [], fail_after

    def measure(self, tflite_path):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.calls.append(tflite_path)
        with open(tflite_path) as f:
            return json.load(f)["params"] / 1000

    def fingerprint(self):
        return {"runner": self.name, "num_threads": 1}


@pytest.fixture
def fake_convert(monkeypatch):
    monkeypatch.setattr(lookup_table.tflite, "convert", _fake_convert)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One table of `_space()` measured by `ParamsRunner`, with 8 fit networks."""
    output = tmp_path_factory.mktemp("built") / "t.json"
    lines = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lookup_table.tflite, "convert", _fake_convert)
        table = build_table(_space(), ParamsRunner(), output, fit_networks=8, progress=lines.append)
    return output, table, lines


@pytest.fixture(scope="module")
def layout():
    return space_operations(_space())


def test_identical_blocks_share_one_signature(layout):
    choices, operations, _ = layout
    assert [c["name"] for c in choices] == [
        "stage0/block0", "stage1/block0", "stage1/block1", "stage1/block2"
    ]  # fmt: skip
    assert all(len(c["candidates"]) == 4 for c in choices)  # 2 kernels x 2 expansions
    signatures = [[x["signature"] for x in c["candidates"]] for c in choices]
    # stage1/block1 and block2: same config, same input shape -> measured once.
    assert signatures[2] == signatures[3]
    assert len(set(sum(signatures, []))) == 12 == len(operations)
    assert choices[2]["input_shape"] == [4, 4, 16] and choices[0]["input_shape"] == [8, 8, 8]
    assert choices[3]["conditions"] == [{"name": "stage1/depth", "values": [3]}]
    assert choices[3]["parent_values"] == {"stage1/depth": [1, 2, 3]}


def test_signature_ignores_layer_names_not_config_or_shape():
    a = keras.layers.Conv2D(8, 3, name="first")
    b = keras.layers.Conv2D(8, 3, name="second")
    sig = lookup_table.operation_signature
    assert sig(a, (8, 8, 4)) == sig(b, (8, 8, 4))
    assert sig(a, (8, 8, 4)) != sig(a, (4, 4, 4))
    assert sig(a, (8, 8, 4)) != sig(keras.layers.Conv2D(8, 5), (8, 8, 4))


def test_build_predict_and_fit_recover_additive_latency(built):
    output, table, lines = built
    space = _space()
    assert len([line for line in lines if line.startswith("[")]) == 12 + 8
    assert lines[0].startswith("[1/12] stage0/block0 kernel_size=3 expansion=1 @ (8, 8, 8)")
    # Every measured network equals its table sum + the fixed part's parameters / 1000.
    values = {"stage0/block0/kernel_size": 5, "stage0/block0/expansion": 3, "stage1/depth": 1,
              "stage1/block0/kernel_size": 3, "stage1/block0/expansion": 1}  # fmt: skip
    model = lookup_table.build_network(space, values)
    blocks = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    fixed_params = model.count_params() - sum(b.count_params() for b in blocks)
    assert table.fit["scale"] == pytest.approx(1.0, abs=1e-9)
    assert table.fit["per_op_ms"] == pytest.approx(0.0, abs=1e-9)
    assert table.fit["fixed_ms"] == pytest.approx(fixed_params / 1000, rel=1e-9)
    assert table.predict(values) == pytest.approx(model.count_params() / 1000, rel=1e-9)
    # The file holds the same table.
    loaded = LookupTable.load(output, runner=ParamsRunner())
    assert loaded.predict(values) == pytest.approx(table.predict(values))


def test_build_resumes_where_it_was_killed(tmp_path, fake_convert):
    output = tmp_path / "t.json"
    with pytest.raises(KeyboardInterrupt):
        build_table(_space(), ParamsRunner(fail_after=5), output, fit_networks=2)
    assert len(json.loads(output.read_text())["operations"]) == 5
    runner = ParamsRunner()
    lines = []
    table = build_table(_space(), runner, output, fit_networks=2, progress=lines.append)
    assert len(runner.calls) == 12 - 5 + 2
    assert lines[0] == f"Resuming {output}: 5 of 12 operations already measured."
    assert len(table.operations) == 12 and len(table.networks) == 2
    runner = ParamsRunner()
    build_table(_space(), runner, output, fit_networks=2)
    assert runner.calls == []  # nothing left to measure


def test_table_of_another_fingerprint_is_refused(tmp_path, built, fake_convert):
    output = tmp_path / "t.json"
    output.write_text(built[0].read_text())
    message = (
        rf"The latency table '{output}' was measured on another device or runtime "
        r"\(differing: runner\).*Table fingerprint: \{.*\"runner\": \"params\".*this runner's: "
        r"\{.*\"runner\": \"phone\""
    )
    with pytest.raises(ValueError, match=message):
        LookupTable.load(output, runner=ParamsRunner("phone"))
    with pytest.raises(ValueError, match=r"differing: quantize"):
        LookupTable.load(output, runner=ParamsRunner(), quantize="int8")
    with pytest.raises(ValueError, match=message + r".*Pass overwrite=True"):
        build_table(_space(), ParamsRunner("phone"), output, fit_networks=0)
    runner = ParamsRunner("phone")
    build_table(_space(), runner, output, fit_networks=0, overwrite=True)
    assert LookupTable.load(output).fingerprint["runner"] == "phone" and len(runner.calls) == 12


def test_missing_operations_are_named(built):
    output = built[0]
    with pytest.raises(
        ValueError,
        match=rf"The latency table '{output}' lacks 6 operation\(s\) the space needs: "
        r"stage0/block0 kernel_size=7 expansion=1 at input \(8, 8, 8\) \(signature \w+\); "
        r"stage0/block0 kernel_size=7 expansion=3 .*run tfnas-latency-table",
    ):
        LookupTable.load(output, space=_space(kernel_sizes=(3, 5, 7)))


def _unit_table(layout):
    choices, operations, _ = layout
    ms = {sig: 0.1 * (i + 1) for i, sig in enumerate(operations)}
    return LookupTable(
        {"runner": "x"}, {s: {"ms": v} for s, v in ms.items()}, choices,
        fit={"scale": 0.9, "per_op_ms": 0.01, "fixed_ms": 0.5},
    )  # fmt: skip


def test_expected_latency_gradient_is_the_table_latency(layout):
    table = _unit_table(layout)
    rng = np.random.default_rng(0)
    logits = {c["name"]: tf.Variable(rng.standard_normal(4), dtype=tf.float32)
              for c in table.choices}  # fmt: skip
    logits["stage1/depth"] = tf.Variable([0.3, -0.2, 0.5], dtype=tf.float32)
    weights = {}
    with tf.GradientTape() as tape:
        weights = {k: keras.ops.softmax(v) for k, v in logits.items()}
        for w in weights.values():
            tape.watch(w)
        expected = table.expected_latency(weights)
    grads = tape.gradient(expected, weights)
    depth = keras.ops.convert_to_numpy(weights["stage1/depth"])
    for name, active in [("stage0/block0", 1.0), ("stage1/block0", 1.0),
                         ("stage1/block1", depth[1] + depth[2]), ("stage1/block2", depth[2])]:  # fmt: skip
        np.testing.assert_allclose(
            grads[name].numpy(), active * np.array(table.candidate_latencies(name)), rtol=1e-5
        )
    # One-hot weights give exactly the prediction of that architecture.
    values = {"stage0/block0/kernel_size": 5, "stage0/block0/expansion": 1, "stage1/depth": 2,
              "stage1/block0/kernel_size": 3, "stage1/block0/expansion": 3,
              "stage1/block1/kernel_size": 5, "stage1/block1/expansion": 3}  # fmt: skip
    one_hot = {}
    for choice in table.choices:
        index = next(
            (i for i, c in enumerate(choice["candidates"])
             if all(values.get(n) == v for n, v in c["values"].items())), 0,
        )  # fmt: skip
        one_hot[choice["name"]] = np.eye(4, dtype="float32")[index]
    one_hot["stage1/depth"] = np.array([0, 1, 0], "float32")
    assert float(table.expected_latency(one_hot)) == pytest.approx(table.predict(values), rel=1e-5)


def test_bad_architectures_and_weights_are_named(layout):
    table = _unit_table(layout)
    values = {"stage0/block0/kernel_size": 9, "stage0/block0/expansion": 1, "stage1/depth": 1,
              "stage1/block0/kernel_size": 3, "stage1/block0/expansion": 3}  # fmt: skip
    with pytest.raises(ValueError, match=r"Unknown candidate for choice 'stage0/block0'\. "
                       r"Received: \{'stage0/block0/kernel_size': 9"):  # fmt: skip
        table.predict(values)
    del values["stage1/block0/expansion"]
    values["stage0/block0/kernel_size"] = 3
    with pytest.raises(ValueError, match=r"lacks the choice 'stage1/block0/expansion'"):
        table.predict(values)
    with pytest.raises(ValueError, match=r"needs weights for choice 'stage0/block0'"):
        table.expected_latency({})
    weights = {c["name"]: np.ones(3, "float32") for c in table.choices}
    with pytest.raises(ValueError, match=r"must have shape \(4,\).*Received: shape \(3,\)"):
        table.expected_latency(weights)
    with pytest.raises(ValueError, match=r"Received: choice_name='op9'"):
        table.candidate_latencies("op9")


def test_load_rejects_other_files(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"format": "tfnas.architecture"}')
    with pytest.raises(ValueError, match=r"is not a tfnas latency table.*Received: format="):
        LookupTable.load(path)
    with pytest.raises(ValueError, match=r"No such latency table file\. Received: path="):
        LookupTable.load(tmp_path / "none.json")


def test_fit_recovers_scale_per_operation_and_constant(layout):
    num_networks, scale = 8, 0.8
    table = _unit_table(layout)
    rng = np.random.default_rng(1)
    for _ in range(num_networks):
        values = lookup_table.random_architecture(layout[2], rng)
        total, count = table.network_terms(values)
        table.networks.append({"values": values, "ms": scale * total + 0.05 * count + 0.3})
    counts = {table.network_terms(n["values"])[1] for n in table.networks}
    assert len(counts) > 1  # the depths differ, so the per-operation term is determined
    fit = table.fit_fixed_term()
    assert fit["scale"] == pytest.approx(scale, rel=1e-6)
    assert fit["per_op_ms"] == pytest.approx(0.05, rel=1e-6)
    assert fit["fixed_ms"] == pytest.approx(0.3, rel=1e-6)
    assert fit["rmse_ms"] == pytest.approx(0.0, abs=1e-9)
    assert fit["networks"] == num_networks


def test_few_networks_fit_only_the_constant(layout):
    table = _unit_table(layout)
    rng = np.random.default_rng(1)
    residuals = []
    for _ in range(4):
        values = lookup_table.random_architecture(layout[2], rng)
        total, count = table.network_terms(values)
        table.networks.append({"values": values, "ms": total + 0.05 * count + 0.3})
        residuals.append(0.05 * count + 0.3)
    fit = table.fit_fixed_term()
    assert (fit["scale"], fit["per_op_ms"]) == (1.0, 0.0)
    assert fit["fixed_ms"] == pytest.approx(np.mean(residuals), rel=1e-6)


def test_fastest_architecture_is_the_minimum_over_the_space(layout):
    table = _unit_table(layout)
    ops = [(k, e) for k in (3, 5) for e in (1, 3)]
    best = float("inf")
    for depth in (1, 2, 3):
        for blocks in itertools.product(ops, repeat=1 + depth):
            values = {"stage1/depth": depth}
            for name, (k, e) in zip(
                ["stage0/block0"] + [f"stage1/block{b}" for b in range(depth)], blocks
            ):
                values[f"{name}/kernel_size"], values[f"{name}/expansion"] = k, e
            best = min(best, table.predict(values))
    ms, values = table.fastest_architecture()
    assert ms == pytest.approx(best, rel=1e-9)
    assert table.predict(values) == pytest.approx(best, rel=1e-9)
    table.check_target(best * 1.01)
    with pytest.raises(
        ValueError, match=r"No architecture of the space can meet latency_target_ms=0\.001 .*"
        r"the fastest one .* takes [\d.]+ ms"
    ):  # fmt: skip
        table.check_target(0.001)


def test_a_space_without_layer_choices_is_named():
    from tfnas.spaces import PathLevelSpace

    with pytest.raises(ValueError, match=r"no layer choices.*Received: space 'PathLevelSpace'"):
        space_operations(PathLevelSpace())
