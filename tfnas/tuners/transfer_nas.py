"""Transfer NAS (Borsos, Khorlin & Gesmundo 2019, arXiv 1906.08102) as a KerasTuner oracle.

A Transformer agent (`tfnas.engine.transfer_nas_agent`) reads the decisions made so far
(token = decision embedding + previous value embedding + task embedding, causal
self-attention) and outputs a distribution over the next decision's candidates. It is
trained by REINFORCE with a moving-average baseline. `pretrain(tasks, path)` trains one
agent jointly on several search spaces / tasks and saves it; `TransferNAS(pretrained=path)`
then searches a new task starting from those weights, with a fresh task embedding (or,
with `task=` naming a pre-training task, that task's). Decisions and candidate values are
shared by name across spaces, so what the agent learned about e.g. "nor_conv_3x3" carries
over to a space with other edges or fewer operations; a decision or value it has never seen
gets an untrained row of its tables.

The Keras-free bookkeeping (vocabulary, tokens, baseline, on-policy record) is
`tfnas.search.transfer_nas`. Keras is imported lazily, when the oracle builds its agent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from tfnas import validation
from tfnas.search import encoding
from tfnas.search import transfer_nas as core
from tfnas.tuners import multi_trial

if TYPE_CHECKING:
    import keras_tuner

# The agent's size and the REINFORCE settings shared by `pretrain` and `TransferNAS`.
DEFAULT_AGENT = {
    "d_model": 32,
    "num_layers": 1,
    "num_heads": 2,
    "ff_size": 64,
    "max_decisions": 64,
    "max_values": 128,
    "max_tasks": 16,
}
DEFAULT_LEARNING_RATE = 0.01
DEFAULT_BATCH_SIZE = 4
DEFAULT_BASELINE_DECAY = 0.9
DEFAULT_ENTROPY_WEIGHT = 0.0
# Pre-training's entropy bonus: without one the pre-trained policy collapses onto one
# architecture per task, and fine-tuning, whose resamples are then all answered from the
# record, has nothing left to explore (measured in `benchmarks/transfer_nas.py`).
DEFAULT_PRETRAIN_ENTROPY_WEIGHT = 1.0

Task = tuple["keras_tuner.HyperParameters", Callable[[encoding.Values], float]]


def _check_reinforce(learning_rate, batch_size, baseline_decay, entropy_weight) -> None:
    validation.check_float("learning_rate", learning_rate, low=0, low_inclusive=False)
    validation.check_int("batch_size", batch_size, low=1)
    validation.check_float("baseline_decay", baseline_decay, low=0, high=1, high_inclusive=False)
    validation.check_float("entropy_weight", entropy_weight, low=0)


def pretrain(
    tasks: Mapping[str, Task],
    path: str,
    *,
    steps: int = 100,
    batch_size: int = 8,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    baseline_decay: float = DEFAULT_BASELINE_DECAY,
    entropy_weight: float = DEFAULT_PRETRAIN_ENTROPY_WEIGHT,
    normalize_advantage: bool = True,
    seed: int = 0,
    num_bins: int = 10,
    **agent: int,
) -> dict[str, list[float]]:
    """Trains one Transfer NAS agent on several tasks at once and saves it to `path`.

    Each of `steps` steps samples `batch_size` architectures of every task from the agent
    (with that task's embedding), rewards them with the task's reward function, and takes
    one Adam step on the sum over tasks of each task's REINFORCE loss (each task with its
    own moving-average baseline). Architectures may repeat: the rewards are assumed cheap
    (a tabular benchmark, a predictor); that is what the paper's multi-task phase assumes
    too, as its tasks are searched to convergence before transfer.

    Args:
        tasks: `{name: (hyperparameters, reward)}`: the task's `keras_tuner.HyperParameters`
            space and a function of an architecture (`{name: value}`) returning its reward
            (higher is better). At least one task.
        path: Where to write the agent (JSON: config, vocabulary, weights, metadata).
        steps: Multi-task steps.
        batch_size: Samples per task per step.
        learning_rate, baseline_decay, normalize_advantage: REINFORCE settings, as for
            `TransferNAS`.
        entropy_weight: Weight of the entropy bonus (>= 0). The default, 1.0 (in units of
            the normalized advantages, summed over the decisions), keeps the pre-trained
            policy spread over the good region rather than collapsed onto one architecture:
            on the synthetic NAS-Bench-201 tables, with 0.0 every transferred search
            proposed the same cell first and never improved on it in 100 trials; with 1.0
            fine-tuning reached 0.05 points of regret by 50 trials (`benchmarks/transfer_nas.py`).
        seed: Seed of the weights and of the samples.
        num_bins: Candidates an `Int` / `Float` range is discretized into (as the oracle's).
        **agent: The agent's size: `d_model`, `num_layers`, `num_heads`, `ff_size`,
            `max_decisions`, `max_values`, `max_tasks` (defaults `DEFAULT_AGENT`).

    Returns:
        `{task: mean reward of each step's samples}`.

    Example:

    ```python
    history = pretrain({"a": (hp_a, reward_a), "b": (hp_b, reward_b)}, "agent.json")
    oracle = TransferNAS(objective="val_accuracy", max_trials=50, pretrained="agent.json")
    ```
    """
    if not isinstance(tasks, Mapping) or not tasks:
        raise ValueError(
            "tasks must be a non-empty mapping {name: (hyperparameters, reward_function)}. "
            f"Received: tasks={tasks!r}"
        )
    for name, task in tasks.items():
        if not (isinstance(task, tuple) and len(task) == 2 and callable(task[1])):
            raise ValueError(
                f"tasks[{name!r}] must be a pair (hyperparameters, reward_function). "
                f"Received: {task!r}"
            )
    validation.check_int("steps", steps, low=1)
    _check_reinforce(learning_rate, batch_size, baseline_decay, entropy_weight)
    validation.check_int("seed", seed, low=0)
    unknown = sorted(set(agent) - set(DEFAULT_AGENT))
    if unknown:
        raise ValueError(
            f"Unknown agent arguments {unknown}; expected some of {sorted(DEFAULT_AGENT)}. "
            f"Received: {agent!r}"
        )
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).strip():
        raise ValueError(f"path must be a file path to write the agent to. Received: path={path!r}")
    validation.check_writable_dir("path", os.path.dirname(os.path.abspath(os.fspath(path))))

    config = core.agent_config(**{**DEFAULT_AGENT, **agent})

    from tfnas.engine import transfer_nas_agent

    rng = np.random.default_rng(seed)
    model = transfer_nas_agent.TransformerAgent(config, learning_rate, entropy_weight, rng)
    spaces = {name: encoding.SpaceEncoding(hp, num_bins) for name, (hp, _) in tasks.items()}
    for name, space in spaces.items():
        model.task_id(name)
        model.vocabulary.add_space(space)
    baselines = {name: core.MovingBaseline(baseline_decay, normalize_advantage) for name in tasks}
    history: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(steps):
        parts, advantages = [], []
        for name, (_, reward_fn) in tasks.items():
            archs = [model.sample(spaces[name], name, rng)[0] for _ in range(batch_size)]
            rewards = [float(reward_fn(values)) for values in archs]
            history[name].append(float(np.mean(rewards)))
            parts.append((spaces[name], name, archs))
            advantages += baselines[name].advantages(rewards)
        model.train_step(parts, advantages)
    model.save(
        path,
        tasks=list(tasks),
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        final_mean_reward={name: values[-1] for name, values in history.items()},
    )
    return history


class TransferNAS(multi_trial.MultiTrialOracle):
    """Transfer NAS: a Transformer agent trained by REINFORCE, optionally pre-trained on
    other search spaces and tasks (`pretrain`), as a KerasTuner oracle.

    The reward is the objective (negated when minimized). The agent takes one REINFORCE
    step per `batch_size` samples and is kept on-policy under deduplication as the
    `Reinforce` oracle is: a sample of an architecture already evaluated is answered from
    the record (no query spent) and counts as a sample of the batch. The agent's weights,
    its Adam moments, the vocabulary, the baseline and the record are in the oracle's JSON
    state, so `overwrite=False` resumes exactly.

    Deviations from the paper: the agent's size and the optimizer settings are tfnas's
    choices, not the paper's (which were not available when this was written): a 1-layer,
    2-head Transformer with d_model 32, Adam at 0.01, m = 4, baseline decay 0.9, no entropy
    bonus, and advantages divided by a moving standard deviation of the rewards
    (`normalize_advantage`, as tfnas's `Reinforce`), because accuracies of good architectures
    differ by about 0.01 and a search here has ~100 trials. They were measured on synthetic
    NAS-Bench-201 tables (`benchmarks/transfer_nas.py`). The task embedding is added to every
    position rather than read as a separate token, and there is no positional embedding
    (a decision's own embedding tells where it is). Fine-tuning starts a fresh Adam state
    (the file holds no optimizer moments).

    Args:
        objective: As for `keras_tuner.Oracle`.
        max_trials: Maximum number of trials.
        pretrained: Path of an agent written by `pretrain`, or None to start from scratch.
        task: Name of the task searched: a new name gets a fresh task embedding; the name of
            one of the pre-training tasks reuses its embedding.
        learning_rate: Adam's step size (> 0).
        batch_size: Samples per policy-gradient step.
        baseline_decay: Decay of the moving-average baseline, in [0, 1).
        entropy_weight: Weight of the entropy bonus (>= 0).
        normalize_advantage: Divide `reward - baseline` by a moving standard deviation.
        reuse_seen: On-policy deduplication (forced off by `allow_duplicates=True`).
        max_resamples: Samples per proposal beyond the first before the random fallback.
        d_model, num_layers, num_heads, ff_size, max_decisions, max_values, max_tasks:
            The agent's size (defaults `DEFAULT_AGENT`). With `pretrained`, leave them None
            (they are read from the file); one that differs from the file's is an error.
        **kwargs: The other arguments of `MultiTrialOracle` (hyperparameters, seed,
            allow_duplicates, num_bins, ...).

    Example:

    ```python
    pretrain({"a": (hp_a, reward_a), "b": (hp_b, reward_b)}, "agent.json")
    oracle = TransferNAS(objective="val_accuracy", max_trials=50, pretrained="agent.json")
    tuner = keras_tuner.Tuner(hypermodel=build, oracle=oracle, directory="runs")
    ```
    """

    def __init__(
        self,
        objective=None,
        max_trials: int = 10,
        pretrained: str | None = None,
        task: str = "target",
        learning_rate: float = DEFAULT_LEARNING_RATE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        baseline_decay: float = DEFAULT_BASELINE_DECAY,
        entropy_weight: float = DEFAULT_ENTROPY_WEIGHT,
        normalize_advantage: bool = True,
        reuse_seen: bool = True,
        max_resamples: int = 10,
        d_model: int | None = None,
        num_layers: int | None = None,
        num_heads: int | None = None,
        ff_size: int | None = None,
        max_decisions: int | None = None,
        max_values: int | None = None,
        max_tasks: int | None = None,
        **kwargs,
    ):
        _check_reinforce(learning_rate, batch_size, baseline_decay, entropy_weight)
        validation.check_int("max_resamples", max_resamples, low=0)
        if not isinstance(task, str) or not task:
            raise ValueError(f"task must be a non-empty string. Received: task={task!r}")
        requested = {
            "d_model": d_model,
            "num_layers": num_layers,
            "num_heads": num_heads,
            "ff_size": ff_size,
            "max_decisions": max_decisions,
            "max_values": max_values,
            "max_tasks": max_tasks,
        }
        self._pretrained = None
        if pretrained is None:
            config = core.agent_config(
                **{k: DEFAULT_AGENT[k] if v is None else v for k, v in requested.items()}
            )
        else:
            self._pretrained = core.read_agent_file(pretrained)
            config = core.check_config_fits(self._pretrained, requested, str(pretrained))
        self.pretrained = pretrained
        self._config = config
        self._task = task
        self._search_args = {
            "learning_rate": learning_rate,
            "entropy_weight": entropy_weight,
            "batch_size": batch_size,
            "baseline_decay": baseline_decay,
            "normalize_advantage": normalize_advantage,
            "max_resamples": max_resamples,
        }
        self._reuse_seen = bool(reuse_seen)
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)

    def make_search_algorithm(self, seed: int):
        from tfnas.engine import transfer_nas_agent

        return transfer_nas_agent.AgentSearch(
            self._config,
            task=self._task,
            pretrained=self._pretrained,
            seed=seed,
            reuse_seen=self._reuse_seen and not self.allow_duplicates,
            **self._search_args,
        )
