"""tfnas-search with the oracles that take more than a space: Path-level EAS, which grows
its own cell space, and Transfer NAS, which starts from a pre-trained agent file."""

import json
import os

import keras_tuner
import pytest

from tfnas import pipeline, spaces
from tfnas.search import path_level as pl
from tfnas.tuners import transfer_nas


def _trials(output_dir):
    with open(os.path.join(output_dir, "results.json"), encoding="utf-8") as f:
        return json.load(f)["trials"]


def test_path_level_eas_grows_children_from_their_parents(tmp_path):
    out = str(tmp_path / "run")
    summary = pipeline.run_search(oracle="path_level_eas", max_trials=3, epochs=1,
                                  output_dir=out, latency_runs=1, verbose=0)  # fmt: skip
    assert summary["space"] == "path_level" and summary["num_trials"] == 3
    assert os.path.getsize(os.path.join(out, "best_model.tflite")) > 0
    trials = _trials(out)
    start, *children = trials
    assert start["values"][pl.PARENT] == "" and start["values"][pl.TRANSFORMS] == "[]"
    ids = {t["trial_id"] for t in trials}
    for child in children:  # Each grown from an earlier trial by recorded transformations.
        assert child["values"][pl.PARENT] in ids and json.loads(child["values"][pl.TRANSFORMS])
        assert child["values"][pl.CELL] != start["values"][pl.CELL]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"oracle": "regularized_evolution", "space": "path_level"},
         r"--space=path_level is searched by --oracle=path_level_eas only.*"
         r"Received: oracle='regularized_evolution'"),
        ({"oracle": "path_level_eas", "space": "nasbench201"},
         r"PathLevelSpace \(--space=path_level\).*Received: NasBench201Space"),
        ({"oracle": "random", "pretrained": "agent.json"},
         r"--oracle=transfer_nas; --oracle=random .*Received: pretrained='agent.json'"),
        ({"oracle": "transfer_nas", "pretrained": "/nonexistent/agent.json"},
         r"/nonexistent/agent.json"),
    ],
)  # fmt: skip
def test_oracle_arguments_are_refused_before_any_training(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipeline.run_search(output_dir=str(tmp_path), verbose=0, **kwargs)
    assert not os.path.exists(tmp_path / "results.json")


def test_transfer_nas_searches_from_a_pretrained_agent_and_resumes_only_with_it(tmp_path):
    hp = keras_tuner.HyperParameters()
    spaces.make("nasbench201", (8, 8, 1), 10).build(hp)
    edges = [name for name in hp.values if hp.values[name] in ("nor_conv_3x3", "skip_connect")]
    assert edges  # The synthetic task rewards 3x3 convolutions on every edge.

    def reward(values):
        return sum(values[e] == "nor_conv_3x3" for e in edges) / len(edges)

    agent = str(tmp_path / "agent.json")
    history = transfer_nas.pretrain({"convs": (hp, reward)}, agent, steps=3, batch_size=4)
    assert len(history["convs"]) == 3
    out = str(tmp_path / "run")
    summary = pipeline.run_search(oracle="transfer_nas", pretrained=agent, max_trials=2,
                                  epochs=1, output_dir=out, latency_runs=1, verbose=0)  # fmt: skip
    assert summary["oracle"] == "transfer_nas" and summary["num_trials"] == 2
    with pytest.raises(ValueError, match=r"with pretrained='.*agent.json', but this run asks "
                       r"for pretrained=None \(--pretrained\)"):  # fmt: skip
        pipeline.run_search(oracle="transfer_nas", max_trials=3, epochs=1, output_dir=out,
                            verbose=0)  # fmt: skip
    resumed = pipeline.run_search(oracle="transfer_nas", pretrained=agent, max_trials=3,
                                  epochs=1, output_dir=out, latency_runs=1, verbose=0)  # fmt: skip
    assert resumed["num_trials"] == 3
