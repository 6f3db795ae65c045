"""InstaNAS (Cheng et al. 2018, arXiv 1811.10201): a controller that picks a network per input.

`InstaNAS` trains the meta-graph of a `tfnas.spaces.InstaNASSpace` and a controller in the
authors' phases (github.com/AnjieCheng/InstaNAS):

1. **Pre-training** (`pretrain_epochs`, `pretrain/train.py`): the meta-graph trains with
   every module for the first half of the epochs, then with each module of each input
   dropped independently, the keep rate falling linearly to 0.5
   (`tfnas.search.instanas.pretraining_keep_rate`).
2. **Search** (`epochs`, `search/search.py` without `--batch_iter`): each epoch trains the
   controller for one pass over the training data (the meta-graph in inference mode),
   then fine-tunes the meta-graph for one pass. The controller outputs a probability per
   module and input; its policy is sampled from the bounded probabilities `alpha * p + (1
   - alpha) * (1 - p)` (alpha 0.8); the reward per input (`instance_reward`) is 10 x a
   latency bump over a window that tightens during the search (right prediction) or -10
   (wrong); REINFORCE with the greedy policy (`p >= 0.5`) as self-critical baseline,
   minus 0.8 x the entropy term `-p log p` of the bounded probabilities, Adam (1e-3). The
   fine-tuning trains the meta-graph on the sampled policies shuffled within the batch
   (the authors' `randperm`), SGD with the controller's learning rate as the authors.

The cost a policy pays is the sum of its modules' costs (`InstaNASSpace.module_costs`):
multiply-adds by default, or each module's LiteRT latency measured on this machine
(`cost="latency"`, the authors' per-module latency profile). Costs are computed once and
kept in the checkpoint, so a resumed search uses the same.

After every epoch the meta-graph, the controller, the three optimizers and the history are
written to one checkpoint file atomically; a search run again with the same arguments
and `overwrite=False` resumes after the last finished epoch and ends where an
uninterrupted one does (data order and policy noise follow from the seed and the epoch).

What comes out (`export`): a plain Keras model `images -> logits` (the controller, the
greedy policy and the masked meta-graph: standard layers and Keras ops only, loadable
without tfnas) and its `.tflite`, plus `latency_distribution`: the architectures the
controller picks on a test set, each exported as the plain network of only its modules and
timed with LiteRT, so every input gets the measured latency of the network it runs.

Deviations: the pre-training uses Adam (the authors' SGD schedule is for 200+ CIFAR
epochs); the controller is a three-convolution CNN, not a ResNet-8 (8x8 digits). The one
`.tflite` holds every module (TFLite has no per-input skipping without control flow), so
the per-input latency is that of the chosen network, each run as its own `.tflite`, as
deploying InstaNAS dispatches to it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from tfnas import validation
from tfnas.search import instanas as core
from tfnas.spaces.instanas import InstaNASSpace, inherit, policy_costs

logger = logging.getLogger(__name__)

CHECKPOINT = "instanas_checkpoint.npz"
COSTS = ("flops", "latency")


class InstaNAS:
    """Instance-aware NAS: a controller choosing a sub-network of a meta-graph per input.

    Args:
        space: the `tfnas.spaces.InstaNASSpace`.
        directory, project_name: the search's files live in `directory/project_name`.
        seed: seeds the weights, the data order and the policy noise.
        overwrite: start again (True) or resume the search found there (False, default).
        alpha: the exploration bound of the controller's probabilities, in [0.5, 1]
            (0.8; 1 samples the probabilities themselves).
        entropy_weight: the weight of the entropy term in the controller's loss (0.8).
        correct_weight: the reward scale of a right prediction (10), >= 0.
        wrong_penalty: a wrong prediction's reward is minus this (10), >= 0.
        cost_exponent: the latency bump's exponent (1).
        controller_learning_rate: Adam's for the controller; also the fine-tuning SGD's.
        pretrain_learning_rate: Adam's for the meta-graph's pre-training.
        cost: "flops" (multiply-adds, default), "latency" (LiteRT milliseconds of every
            module, measured once on this machine) or `callable(module model) -> cost`.
        batch_size: the batch size of every phase (32).

    Example:

    ```python
    space = tfnas.spaces.InstaNASSpace((8, 8, 1), 10)
    search = tfnas.engine.instanas.InstaNAS(space, "runs", "instanas", seed=0)
    search.search(x, y, validation_data=(x_val, y_val), pretrain_epochs=6, epochs=4)
    search.evaluate(x_test, y_test)   # accuracy, mean cost, distinct architectures
    model = search.export_model()     # plain Keras: images -> logits, routed per input
    search.latency_distribution(x_test)["mean_ms"]
    ```
    """

    def __init__(
        self,
        space: InstaNASSpace,
        directory: str,
        project_name: str = "instanas",
        *,
        seed: int = 0,
        overwrite: bool = False,
        alpha: float = 0.8,
        entropy_weight: float = 0.8,
        correct_weight: float = 10.0,
        wrong_penalty: float = 10.0,
        cost_exponent: float = 1.0,
        controller_learning_rate: float = 1e-3,
        pretrain_learning_rate: float = 1e-3,
        cost: str | Callable = "flops",
        batch_size: int = 32,
    ):
        if not isinstance(space, InstaNASSpace):
            raise ValueError(
                "InstaNAS searches a tfnas.spaces.InstaNASSpace. Received: "
                f"space={type(space).__name__}"
            )
        self.space = space
        self.directory = validation.check_writable_dir("directory", directory)
        self.project_dir = os.path.join(self.directory, str(project_name))
        self.seed = validation.check_int("seed", seed, low=0)
        self.alpha = validation.check_float("alpha", alpha, low=0.5, high=1.0)
        self.entropy_weight = validation.check_float("entropy_weight", entropy_weight, low=0.0)
        self.correct_weight, self.wrong_penalty, self.cost_exponent = core.check_reward_weights(
            correct_weight, wrong_penalty, cost_exponent
        )
        self.controller_learning_rate = validation.check_float(
            "controller_learning_rate", controller_learning_rate, low=0.0, low_inclusive=False
        )
        self.pretrain_learning_rate = validation.check_float(
            "pretrain_learning_rate", pretrain_learning_rate, low=0.0, low_inclusive=False
        )
        if not callable(cost):
            validation.check_one_of("cost", cost, COSTS)
        self.cost = cost
        self.batch_size = validation.check_int("batch_size", batch_size, low=1)
        if overwrite and os.path.isdir(self.project_dir):
            shutil.rmtree(self.project_dir)
        keras.utils.set_random_seed(self.seed)
        self.meta_graph = space.meta_graph()
        self.controller = space.controller()
        self._pretrain_optimizer = keras.optimizers.Adam(self.pretrain_learning_rate)
        self._finetune_optimizer = keras.optimizers.SGD(self.controller_learning_rate)
        self._controller_optimizer = keras.optimizers.Adam(self.controller_learning_rate)
        for optimizer, model in (
            (self._pretrain_optimizer, self.meta_graph),
            (self._finetune_optimizer, self.meta_graph),
            (self._controller_optimizer, self.controller),
        ):
            optimizer.build(model.trainable_variables)
        self.pretrain_epochs_done = 0
        self.search_epochs_done = 0
        # One entry per epoch: {"phase", "epoch", ...the epoch's statistics}.
        self.history: list[dict[str, Any]] = []
        self.costs: np.ndarray | None = None
        self.idle_costs: np.ndarray | None = None
        self._steps: dict[str, Callable] = {}
        self._restore()

    # --- State --------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> str:
        return os.path.join(self.project_dir, CHECKPOINT)

    def _settings(self) -> dict[str, Any]:
        """What a resumed search must share with the one it resumes."""
        return {
            "space": self.space.get_config(),
            "seed": self.seed,
            "alpha": self.alpha,
            "entropy_weight": self.entropy_weight,
            "reward": [self.correct_weight, self.wrong_penalty, self.cost_exponent],
            "learning_rates": [self.controller_learning_rate, self.pretrain_learning_rate],
            "cost": self.cost if isinstance(self.cost, str) else "callable",
            "batch_size": self.batch_size,
        }

    def _variables(self) -> list:
        return [
            *self.meta_graph.variables,
            *self.controller.variables,
            *self._pretrain_optimizer.variables,
            *self._finetune_optimizer.variables,
            *self._controller_optimizer.variables,
        ]

    def _save(self) -> None:
        os.makedirs(self.project_dir, exist_ok=True)
        state = {
            "settings": self._settings(),
            "pretrain_epochs_done": self.pretrain_epochs_done,
            "search_epochs_done": self.search_epochs_done,
            "history": self.history,
            "costs": None if self.costs is None else self.costs.tolist(),
            "idle_costs": None if self.idle_costs is None else self.idle_costs.tolist(),
        }
        arrays = {f"v{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(self._variables())}
        temporary = self.checkpoint_path + ".tmp.npz"
        np.savez(temporary, state=np.asarray(json.dumps(state)), **arrays)
        os.replace(temporary, self.checkpoint_path)

    def _restore(self) -> None:
        if not os.path.exists(self.checkpoint_path):
            return
        with np.load(self.checkpoint_path) as saved:
            state = json.loads(str(saved["state"]))
            if state["settings"] != self._settings():
                changed = sorted(
                    key
                    for key in self._settings()
                    if state["settings"].get(key) != self._settings()[key]
                )
                raise ValueError(
                    f"The InstaNAS search in {self.project_dir!r} was run with other "
                    f"settings ({', '.join(changed)} differ). Pass overwrite=True to start "
                    "again, or another directory or project_name."
                )
            variables = self._variables()
            for i, variable in enumerate(variables):
                variable.assign(saved[f"v{i}"])
        self.pretrain_epochs_done = int(state["pretrain_epochs_done"])
        self.search_epochs_done = int(state["search_epochs_done"])
        self.history = list(state["history"])
        if state["costs"] is not None:
            self.costs = np.asarray(state["costs"])
            self.idle_costs = np.asarray(state["idle_costs"])

    # --- Costs --------------------------------------------------------------------------

    def _module_cost_function(self) -> Callable | None:
        if callable(self.cost):
            return self.cost
        if self.cost == "flops":
            return None
        from tfnas.latency import measure

        return lambda module: measure(module, runs=30).median_ms

    def _ensure_costs(self) -> None:
        if self.costs is None:
            self.costs, self.idle_costs = self.space.module_costs(
                self.meta_graph, self._module_cost_function()
            )

    def policy_costs(self, policies) -> np.ndarray:
        """The cost of each policy `[..., cells, actions]` (see `InstaNASSpace.module_costs`)."""
        self._ensure_costs()
        return policy_costs(policies, self.costs, self.idle_costs)

    def cost_bounds(self) -> dict[str, float]:
        """The costs of the baseline policy, of every module running, of the cheapest one."""
        cells, actions = self.space.policy_shape
        return {
            "baseline": float(self.policy_costs(self.space.baseline_policy())),
            "all_modules": float(self.policy_costs(np.ones((cells, actions)))),
            "cheapest": float(self.policy_costs(np.zeros((cells, actions)))),
        }

    # --- Data ---------------------------------------------------------------------------

    def _check_data(self, x, y, what: str) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype="float32")
        y = np.asarray(y)
        if x.shape[1:] != self.space.input_shape:
            raise ValueError(
                f"{what} images must have the space's input shape {self.space.input_shape}. "
                f"Received: {what} x of shape {x.shape}"
            )
        if y.ndim != 1 or len(y) != len(x) or len(x) == 0:
            raise ValueError(
                f"{what} y must hold one integer label per image. Received: x of shape "
                f"{x.shape}, y of shape {y.shape}"
            )
        if not np.isfinite(x).all():
            raise ValueError(f"{what} x holds NaN or infinite values.")
        labels = y.astype("int64")
        if (labels != y).any() or labels.min() < 0 or labels.max() >= self.space.num_classes:
            raise ValueError(
                f"{what} y must hold class indices in [0, {self.space.num_classes}). Received "
                f"labels from {y.min()} to {y.max()}"
            )
        return x, labels

    def _batches(self, n: int, epoch: int, phase: int):
        """The batch index arrays of one epoch, in an order fixed by (seed, epoch, phase)."""
        order = np.random.default_rng([self.seed, epoch, phase]).permutation(n)
        return [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]

    def _noise(self, n: int, epoch: int, phase: int) -> np.ndarray:
        shape = (n, *self.space.policy_shape)
        return np.random.default_rng([self.seed, epoch, phase, 1]).random(shape, "float32")

    # --- Steps --------------------------------------------------------------------------

    def _step(self, name: str) -> Callable:
        if name not in self._steps:
            import tensorflow as tf

            make = {
                "pretrain": self._make_pretrain_step,
                "controller": self._make_controller_step,
                "finetune": self._make_finetune_step,
            }[name]
            self._steps[name] = tf.function(make(), reduce_retracing=True)
        return self._steps[name]

    def _network_update(self, x, y, policies, optimizer):
        import tensorflow as tf

        meta = self.meta_graph
        with tf.GradientTape() as tape:
            logits = meta([x, policies], training=True)
            loss = keras.ops.mean(
                keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
            )
        optimizer.apply(tape.gradient(loss, meta.trainable_variables), meta.trainable_variables)
        correct = keras.ops.equal(keras.ops.argmax(logits, -1), y)
        return loss, keras.ops.mean(keras.ops.cast(correct, "float32"))

    def _make_pretrain_step(self):
        def step(x, y, noise, keep_rate):
            policies = keras.ops.cast(noise < keep_rate, "float32")
            return self._network_update(x, y, policies, self._pretrain_optimizer)

        return step

    def _make_finetune_step(self):
        import tensorflow as tf

        def step(x, y, noise, permutation):
            probabilities = self.controller(x, training=False)
            sampled = keras.ops.cast(noise < self._bounded(probabilities), "float32")
            # The authors train the meta-graph on the sampled policies shuffled in the batch.
            policies = tf.gather(sampled, permutation)
            return self._network_update(x, y, policies, self._finetune_optimizer)

        return step

    def _bounded(self, probabilities):
        return self.alpha * probabilities + (1.0 - self.alpha) * (1.0 - probabilities)

    def _make_controller_step(self):
        import tensorflow as tf

        controller, meta = self.controller, self.meta_graph

        def step(x, y, noise, upper, lower):
            with tf.GradientTape() as tape:
                probabilities = controller(x, training=True)
                bounded = keras.ops.clip(self._bounded(probabilities), 1e-15, 1.0 - 1e-15)
                sampled = keras.ops.cast(noise < bounded, "float32")
                greedy = keras.ops.cast(probabilities >= 0.5, "float32")
                with tape.stop_recording():
                    sampled_logits = meta([x, sampled], training=False)
                    greedy_logits = meta([x, greedy], training=False)
                    advantage, reward, accuracy, cost = tf.numpy_function(
                        self._advantage,
                        [sampled_logits, greedy_logits, y, sampled, greedy, upper, lower],
                        [tf.float32] * 4,
                    )
                    advantage = tf.reshape(advantage, (-1, 1, 1))
                log_probability = sampled * keras.ops.log(bounded) + (1.0 - sampled) * (
                    keras.ops.log(1.0 - bounded)
                )
                policy_loss = -keras.ops.sum(log_probability * advantage)
                entropy = keras.ops.sum(-bounded * keras.ops.log(bounded))
                batch = keras.ops.cast(keras.ops.shape(x)[0], "float32")
                loss = (policy_loss - self.entropy_weight * entropy) / batch
            variables = controller.trainable_variables
            self._controller_optimizer.apply(tape.gradient(loss, variables), variables)
            return loss, reward, accuracy, cost

        return step

    def _advantage(self, sampled_logits, greedy_logits, y, sampled, greedy, upper, lower):
        """numpy: the self-critical advantage and the step's statistics (greedy policy)."""
        rewards = []
        for logits, policies in ((sampled_logits, sampled), (greedy_logits, greedy)):
            correct = np.argmax(logits, -1) == y
            rewards.append(
                core.instance_reward(
                    correct,
                    self.policy_costs(policies),
                    float(upper),
                    float(lower),
                    correct_weight=self.correct_weight,
                    wrong_penalty=self.wrong_penalty,
                    cost_exponent=self.cost_exponent,
                )
            )
        advantage = core.policy_gradient_terms(rewards[0], rewards[1])
        greedy_correct = np.argmax(greedy_logits, -1) == y
        return (
            advantage.astype("float32"),
            np.float32(rewards[0].mean()),
            np.float32(greedy_correct.mean()),
            np.float32(self.policy_costs(greedy).mean()),
        )

    # --- Search -------------------------------------------------------------------------

    def search(
        self,
        x,
        y,
        *,
        validation_data: Sequence,
        pretrain_epochs: int = 4,
        epochs: int = 4,
        verbose: int = 1,
        callbacks: Sequence[Callable[[dict], Any]] = (),
    ) -> list[dict[str, Any]]:
        """Pre-trains the meta-graph, then trains the controller and fine-tunes, resuming
        after the last finished epoch of a search found in the project directory.

        Args:
            x, y: training images (the space's input shape) and integer labels.
            validation_data: `(x_val, y_val)`, evaluated with the controller's greedy
                policies after every search epoch.
            pretrain_epochs: pre-training epochs (>= 1).
            epochs: search epochs (>= 0), each a controller pass and a fine-tuning pass.
            verbose: 1 logs one line per epoch.
            callbacks: `callback(entry)` after every checkpointed epoch (`entry` is the
                epoch's history entry).

        Returns:
            The history: one entry per epoch.

        Raises:
            ValueError: before any training, for data of another shape or labels outside
                the classes, bad epoch counts, or more pre-training epochs than a
                search that already began its search epochs was pre-trained for.
        """
        pretrain_epochs = validation.check_int("pretrain_epochs", pretrain_epochs, low=1)
        epochs = validation.check_int("epochs", epochs, low=0)
        x, y = self._check_data(x, y, "training")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError(
                "validation_data must be (x_val, y_val). Received: validation_data of type "
                f"{type(validation_data).__name__}"
            )
        x_val, y_val = self._check_data(*validation_data, "validation")
        if self.search_epochs_done and pretrain_epochs != self.pretrain_epochs_done:
            raise ValueError(
                f"The search in {self.project_dir!r} was pre-trained for "
                f"{self.pretrain_epochs_done} epochs before its search epochs began. "
                f"Received: pretrain_epochs={pretrain_epochs}; pass "
                f"{self.pretrain_epochs_done}, or overwrite=True to start again."
            )
        self._ensure_costs()
        while self.pretrain_epochs_done < pretrain_epochs:
            entry = self._pretrain_epoch(x, y, self.pretrain_epochs_done, pretrain_epochs)
            self.pretrain_epochs_done += 1
            self._end_epoch(entry, verbose, callbacks)
        while self.search_epochs_done < epochs:
            entry = self._search_epoch(x, y, self.search_epochs_done, epochs)
            entry.update({f"val_{k}": v for k, v in self.evaluate(x_val, y_val).items()})
            self.search_epochs_done += 1
            self._end_epoch(entry, verbose, callbacks)
        return self.history

    def _end_epoch(self, entry, verbose, callbacks) -> None:
        self.history.append(entry)
        self._save()
        if verbose:
            logger.info("InstaNAS %s", json.dumps(entry))
        for callback in callbacks:
            callback(entry)

    def _pretrain_epoch(self, x, y, epoch: int, epochs: int) -> dict[str, Any]:
        keep_rate = core.pretraining_keep_rate(epoch, epochs)
        noise = self._noise(len(x), epoch, phase=0)
        step = self._step("pretrain")
        losses, accuracies = [], []
        for index in self._batches(len(x), epoch, phase=0):
            loss, accuracy = step(x[index], y[index], noise[index], np.float32(keep_rate))
            losses.append(float(loss))
            accuracies.append(float(accuracy))
        return {
            "phase": "pretrain",
            "epoch": epoch,
            "keep_rate": keep_rate,
            "loss": float(np.mean(losses)),
            "accuracy": float(np.mean(accuracies)),
        }

    def _search_epoch(self, x, y, epoch: int, epochs: int) -> dict[str, Any]:
        bounds = self.cost_bounds()
        progress = epoch / max(epochs - 1, 1)
        upper, lower = core.latency_bounds(
            progress, bounds["baseline"], bounds["all_modules"], bounds["cheapest"]
        )
        global_epoch = self.pretrain_epochs_done + epoch
        controller_step = self._step("controller")
        noise = self._noise(len(x), global_epoch, phase=1)
        rewards = []
        for index in self._batches(len(x), global_epoch, phase=1):
            _, reward, _, _ = controller_step(
                x[index], y[index], noise[index], np.float32(upper), np.float32(lower)
            )
            rewards.append(float(reward))
        finetune_step = self._step("finetune")
        noise = self._noise(len(x), global_epoch, phase=2)
        rng = np.random.default_rng([self.seed, global_epoch, 2, 2])
        losses = []
        for index in self._batches(len(x), global_epoch, phase=2):
            permutation = rng.permutation(len(index)).astype("int32")
            loss, _ = finetune_step(x[index], y[index], noise[index], permutation)
            losses.append(float(loss))
        return {
            "phase": "search",
            "epoch": epoch,
            "upper": upper,
            "lower": lower,
            "mean_reward": float(np.mean(rewards)),
            "finetune_loss": float(np.mean(losses)),
        }

    # --- Results ------------------------------------------------------------------------

    def policies(self, x) -> np.ndarray:
        """The controller's greedy policy (`p >= 0.5`) of every image, `[n, cells, actions]`."""
        x = np.asarray(x, dtype="float32")
        probabilities = self.controller.predict(x, batch_size=256, verbose=0)
        return (probabilities >= 0.5).astype("float32")

    def predict(self, x, policies=None) -> np.ndarray:
        """The meta-graph's logits with every image's greedy policy (or `policies`)."""
        x = np.asarray(x, dtype="float32")
        policies = self.policies(x) if policies is None else np.asarray(policies, "float32")
        return self.meta_graph.predict([x, policies], batch_size=256, verbose=0)

    def evaluate(self, x, y, policies=None) -> dict[str, float]:
        """Accuracy, mean policy cost and the number of distinct architectures, with each
        image's greedy policy (or `policies`: one `[cells, actions]` for every image, or
        one per image)."""
        x, y = self._check_data(x, y, "evaluation")
        if policies is not None:
            policies = np.asarray(policies, "float32")
            if policies.ndim == 2:
                policies = np.repeat(self.space.check_policy(policies)[None], len(x), axis=0)
        else:
            policies = self.policies(x)
        logits = self.predict(x, policies)
        distinct = np.unique(policies.reshape(len(x), -1), axis=0)
        return {
            "accuracy": float(np.mean(np.argmax(logits, -1) == y)),
            "mean_cost": float(np.mean(self.policy_costs(policies))),
            "architectures": int(len(distinct)),
        }

    def network(self, policy) -> keras.Model:
        """The plain network of one policy with the meta-graph's weights."""
        return inherit(self.space.network(policy), self.meta_graph)

    def export_model(self) -> keras.Model:
        """The instance-aware model, `images -> logits`: the controller, its greedy policy and
        the masked meta-graph, as standard Keras layers and ops with their own weights."""
        controller = keras.models.clone_model(self.controller)
        controller.set_weights(self.controller.get_weights())
        meta = keras.models.clone_model(self.meta_graph)
        meta.set_weights(self.meta_graph.get_weights())
        images = keras.Input(self.space.input_shape, name="images")
        policies = keras.ops.cast(keras.ops.greater_equal(controller(images), 0.5), "float32")
        model = keras.Model(images, meta([images, policies]), name="instanas")
        model.compile(
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return model

    def latency_distribution(
        self, x, *, max_architectures: int = 8, runs: int = 30, num_threads: int = 1
    ) -> dict[str, Any]:
        """The measured LiteRT latency of every input of `x`: the controller's plus that of
        the plain network its policy selects.

        The `max_architectures` most frequent architectures are exported and timed
        (median of `runs` invokes); inputs routed to others are left out, and `coverage`
        says which fraction of `x` is timed.

        Returns:
            `{"controller_ms", "architectures": [{"policy", "count", "latency_ms",
            "cost"}], "per_input_ms", "coverage", "mean_ms", "median_ms", "p10_ms",
            "p90_ms"}`.
        """
        from tfnas.latency import measure

        max_architectures = validation.check_int("max_architectures", max_architectures, low=1)
        policies = self.policies(x)
        flat = policies.reshape(len(policies), -1)
        distinct, inverse, counts = np.unique(flat, axis=0, return_inverse=True, return_counts=True)
        inverse = np.asarray(inverse).reshape(-1)
        order = np.argsort(-counts, kind="stable")[:max_architectures]
        controller_ms = measure(self.controller, runs=runs, num_threads=num_threads).median_ms
        latency = np.full(len(x), np.nan)
        architectures = []
        for index in order:
            policy = distinct[index].reshape(self.space.policy_shape)
            ms = measure(self.network(policy), runs=runs, num_threads=num_threads).median_ms
            latency[inverse == index] = controller_ms + ms
            architectures.append(
                {
                    "policy": policy.astype(int).tolist(),
                    "count": int(counts[index]),
                    "latency_ms": float(ms),
                    "cost": float(self.policy_costs(policy)),
                }
            )
        timed = latency[np.isfinite(latency)]
        return {
            "controller_ms": float(controller_ms),
            "architectures": architectures,
            "per_input_ms": latency.tolist(),
            "coverage": float(len(timed) / len(x)),
            "mean_ms": float(timed.mean()),
            "median_ms": float(np.median(timed)),
            "p10_ms": float(np.percentile(timed, 10)),
            "p90_ms": float(np.percentile(timed, 90)),
        }

    def export(self, output_dir: str, x_test=None, **latency_options) -> dict[str, str]:
        """Writes `instanas.keras`, `instanas.tflite` and, with test images `x_test`,
        `latency_distribution.json`; returns the paths."""
        from tfnas.latency.tflite import save_tflite

        output_dir = validation.check_writable_dir("output_dir", output_dir)
        os.makedirs(output_dir, exist_ok=True)
        model = self.export_model()
        paths = {"keras": os.path.join(output_dir, "instanas.keras")}
        model.save(paths["keras"])
        paths["tflite"] = save_tflite(model, os.path.join(output_dir, "instanas.tflite"))
        if x_test is not None:
            paths["latency"] = os.path.join(output_dir, "latency_distribution.json")
            with open(paths["latency"], "w", encoding="utf-8") as f:
                json.dump(self.latency_distribution(x_test, **latency_options), f, indent=1)
        return paths
