"""Neural Architecture Optimization (NAO, Luo et al. 2018, arXiv 1808.07233).

NAO maps architectures into a continuous space and optimizes there. An encoder takes the
one-hot encoding of an architecture to an embedding; a predictor estimates the reward from the
embedding; a decoder maps the embedding back to one softmax per decision. The three are trained
jointly on every finished trial, with

    loss = predictor_weight * MSE(predicted, reward) +
           (1 - predictor_weight) * reconstruction cross-entropy.

New architectures come from gradient ascent on the predicted reward in embedding space,
starting from the embeddings of the best architectures found so far: after each step the
embedding is decoded, and the first decoded architecture that is new (not the start, not
proposed before) is kept. The networks are small numpy MLPs (Luo et al. use LSTMs for
sequences of tokens; a KerasTuner space is a fixed list of decisions, so MLPs suffice); they
are refitted from scratch every round, so decisions that the space gains are simply new
input and output columns, and their weights are saved in the oracle state.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfnas import validation
from tfnas.search import base, encoding, numpy_nn

_ENCODER = ("tanh", "tanh")
_PREDICTOR = ("tanh", "linear")
_DECODER = ("tanh", "linear")


def _segment_log_softmax(logits: np.ndarray, offsets: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Log-softmax of `logits` `(n, features)` within each decision's columns."""
    shift = np.repeat(np.maximum.reduceat(logits, offsets, axis=1), sizes, axis=1)
    z = logits - shift
    log_norm = np.log(np.add.reduceat(np.exp(z), offsets, axis=1))
    return z - np.repeat(log_norm, sizes, axis=1)


class ArchitectureOptimizer(base.SearchAlgorithm):
    """The NAO encoder / predictor / decoder and its embedding-space search, without Keras.

    Args:
        num_initial: Random architectures evaluated before the first model is trained.
        batch_size: New architectures generated per round.
        num_seeds: Best architectures whose embeddings start the gradient ascent.
        embedding_size: Size of the continuous embedding.
        hidden_size: Hidden units of the encoder, predictor and decoder.
        train_steps: Full-batch Adam steps per round.
        learning_rate: Adam step size.
        predictor_weight: Weight of the prediction loss against reconstruction, in [0, 1].
        step_size: Step of the gradient ascent in embedding space (eta).
        max_ascent_steps: Ascent steps tried from a seed before giving up on it.
        seed: Random seed.

    Example:

    ```python
    algorithm = ArchitectureOptimizer(num_initial=10, batch_size=5, seed=0)
    values = algorithm.propose(space, is_seen=lambda v: False)
    algorithm.observe(space, values, reward=0.3)
    ```
    """

    def __init__(
        self,
        num_initial: int = 10,
        batch_size: int = 5,
        num_seeds: int = 100,
        embedding_size: int = 16,
        hidden_size: int = 32,
        train_steps: int = 200,
        learning_rate: float = 0.01,
        predictor_weight: float = 0.8,
        step_size: float = 1.0,
        max_ascent_steps: int = 20,
        seed: int | None = None,
    ):
        super().__init__(seed)
        self.num_initial = validation.check_int("num_initial", num_initial, low=2)
        self.batch_size = validation.check_int("batch_size", batch_size, low=1)
        self.num_seeds = validation.check_int("num_seeds", num_seeds, low=1)
        self.embedding_size = validation.check_int("embedding_size", embedding_size, low=1)
        self.hidden_size = validation.check_int("hidden_size", hidden_size, low=1)
        self.train_steps = validation.check_int("train_steps", train_steps, low=1)
        self.learning_rate = validation.check_float(
            "learning_rate", learning_rate, low=0, low_inclusive=False
        )
        self.predictor_weight = validation.check_float(
            "predictor_weight", predictor_weight, low=0, high=1
        )
        self.step_size = validation.check_float("step_size", step_size, low=0, low_inclusive=False)
        self.max_ascent_steps = validation.check_int("max_ascent_steps", max_ascent_steps, low=1)
        self.params: numpy_nn.Params = {}
        self.mean, self.std = 0.0, 1.0
        self.queue: list[encoding.Values] = []
        # Finished trials: {"values", "reward"}.
        self.history: list[dict[str, Any]] = []
        self.num_rounds = 0

    # The model.

    def _init_params(self, feature_size: int) -> None:
        hidden, embedding = self.hidden_size, self.embedding_size
        self.params = {
            **numpy_nn.mlp_init(self.rng, [feature_size, hidden, embedding], "enc/"),
            **numpy_nn.mlp_init(self.rng, [embedding, hidden, 1], "pred/"),
            **numpy_nn.mlp_init(self.rng, [embedding, hidden, feature_size], "dec/"),
        }

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Returns the embeddings of one-hot architectures `x` `(n, feature_size)`."""
        return numpy_nn.mlp_forward(self.params, x, _ENCODER, "enc/")[0]

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """Returns the predicted rewards of `embeddings` `(n, embedding_size)`."""
        out = numpy_nn.mlp_forward(self.params, embeddings, _PREDICTOR, "pred/")[0][:, 0]
        return out * self.std + self.mean

    def decode_indices(self, space: encoding.SpaceEncoding, embeddings: np.ndarray) -> np.ndarray:
        """Returns `(n, num_decisions)` indices of the decoder's most likely candidates."""
        logits = numpy_nn.mlp_forward(self.params, embeddings, _DECODER, "dec/")[0]
        out = np.zeros((len(embeddings), len(space.decisions)), dtype=np.int64)
        for d in space.decisions:
            out[:, d.index] = np.argmax(logits[:, d.offset : d.offset + d.size], axis=1)
        return out

    def decode(self, space: encoding.SpaceEncoding, embedding: np.ndarray) -> encoding.Values:
        """Returns the architecture decoded from one embedding."""
        return space.from_indices(self.decode_indices(space, embedding[None])[0])

    def loss_and_grads(
        self, space: encoding.SpaceEncoding, x: np.ndarray, target: np.ndarray
    ) -> tuple[float, numpy_nn.Params]:
        """Joint loss on one-hot `x` and standardized rewards `target`, and its gradients."""
        n = len(x)
        weight = self.predictor_weight
        emb, enc_cache = numpy_nn.mlp_forward(self.params, x, _ENCODER, "enc/")
        pred, pred_cache = numpy_nn.mlp_forward(self.params, emb, _PREDICTOR, "pred/")
        logits, dec_cache = numpy_nn.mlp_forward(self.params, emb, _DECODER, "dec/")
        error = pred[:, 0] - target
        loss = weight * float(np.mean(error**2))
        if space.decisions:
            offsets = np.array([d.offset for d in space.decisions])
            sizes = np.array([d.size for d in space.decisions])
            log_p = _segment_log_softmax(logits, offsets, sizes)
            # Inactive decisions have an all-zero one-hot: nothing to reconstruct.
            mask = np.repeat(np.add.reduceat(x, offsets, axis=1), sizes, axis=1)
            scale = (1 - weight) / (n * len(space.decisions))
            loss -= scale * float((x * log_p).sum())
            grad_logits = scale * (mask * np.exp(log_p) - x)
        else:
            grad_logits = np.zeros_like(logits)
        grad_pred = (2.0 * weight / n) * error[:, None]
        grads, grad_emb_pred = numpy_nn.mlp_backward(
            self.params, pred_cache, grad_pred, _PREDICTOR, "pred/"
        )
        dec_grads, grad_emb_dec = numpy_nn.mlp_backward(
            self.params, dec_cache, grad_logits, _DECODER, "dec/"
        )
        enc_grads, _ = numpy_nn.mlp_backward(
            self.params, enc_cache, grad_emb_pred + grad_emb_dec, _ENCODER, "enc/"
        )
        return loss, {**grads, **dec_grads, **enc_grads}

    def fit(self, space: encoding.SpaceEncoding) -> float:
        """Trains encoder, predictor and decoder from scratch on the history; returns the loss."""
        x = space.one_hot_batch([e["values"] for e in self.history])
        y = np.array([e["reward"] for e in self.history])
        self.mean, self.std = float(y.mean()), float(y.std()) or 1.0
        target = (y - self.mean) / self.std
        self._init_params(space.feature_size)
        return numpy_nn.minimize(
            self.params,
            lambda _: self.loss_and_grads(space, x, target),
            self.train_steps,
            self.learning_rate,
        )

    # The search.

    def _ascend(self, embeddings: np.ndarray) -> np.ndarray:
        _, cache = numpy_nn.mlp_forward(self.params, embeddings, _PREDICTOR, "pred/")
        _, grad = numpy_nn.mlp_backward(
            self.params, cache, np.ones((len(embeddings), 1)), _PREDICTOR, "pred/"
        )
        return embeddings + self.step_size * grad

    def generate(
        self, space: encoding.SpaceEncoding, is_seen: base.IsSeen
    ) -> list[encoding.Values]:
        """Returns up to `batch_size` new architectures by ascent from the best ones.

        All seeds ascend together; after each step, each seed still searching keeps its
        decoded architecture if it is new, best seeds first.
        """
        seeds, keys = [], []
        for entry in sorted(self.history, key=lambda e: -e["reward"]):
            values = space.complete(entry["values"])
            key = encoding.values_key(values)
            if key not in keys:
                keys.append(key)
                seeds.append(values)
            if len(seeds) == self.num_seeds:
                break
        embeddings = self.encode(space.one_hot_batch(seeds))
        searching = np.ones(len(seeds), dtype=bool)
        batch: dict[str, encoding.Values] = {}
        decoded: dict[tuple, tuple[str, encoding.Values]] = {}
        for _ in range(self.max_ascent_steps):
            embeddings = self._ascend(embeddings)
            for i, indices in enumerate(self.decode_indices(space, embeddings)):
                if not searching[i]:
                    continue
                indices = tuple(indices.tolist())
                if indices not in decoded:
                    values = space.from_indices(indices)
                    decoded[indices] = (encoding.values_key(values), values)
                key, values = decoded[indices]
                if key != keys[i] and key not in batch and not is_seen(values):
                    batch[key] = values
                    searching[i] = False
                    if len(batch) == self.batch_size:
                        return list(batch.values())
        return list(batch.values())

    def propose(
        self, space: encoding.SpaceEncoding, is_seen: base.IsSeen
    ) -> encoding.Values | None:
        while self.queue:
            values = space.complete(self.queue.pop(0))
            if not is_seen(values):
                return values
        if len(self.history) < self.num_initial:
            return space.sample(self.rng)
        self.fit(space)
        self.num_rounds += 1
        self.queue = self.generate(space, is_seen)
        if not self.queue:
            return None
        return self.queue.pop(0)

    def observe(
        self, space: encoding.SpaceEncoding, values: encoding.Values, reward: float | None
    ) -> None:
        if reward is None:
            return
        self.history.append({"values": dict(values), "reward": float(reward)})

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(),
            "params": numpy_nn.params_to_json(self.params),
            "mean": self.mean,
            "std": self.std,
            "queue": [dict(v) for v in self.queue],
            "history": [dict(e) for e in self.history],
            "num_rounds": self.num_rounds,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.params = numpy_nn.params_from_json(state["params"])
        self.mean, self.std = state["mean"], state["std"]
        self.queue = [dict(v) for v in state["queue"]]
        self.history = [dict(e) for e in state["history"]]
        self.num_rounds = int(state["num_rounds"])
