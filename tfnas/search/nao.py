"""Neural Architecture Optimization (NAO, Luo et al. 2018, arXiv 1808.07233).

NAO maps architectures into a continuous space and optimizes there. An encoder takes an
architecture to an embedding; a predictor estimates the reward from the embedding; a decoder
maps the embedding back to one softmax per decision. The three are trained jointly on every
finished trial, with

    loss = predictor_weight * MSE(predicted, reward) +
           (1 - predictor_weight) * reconstruction cross-entropy.

Two models are offered (`model=`):

* "lstm", the paper's: the decisions are a sequence of tokens; an LSTM encoder reads their
  embeddings, its outputs are L2-normalized, and their mean, L2-normalized, is the
  architecture embedding that the MLP predictor reads. The decoder is an LSTM whose initial
  hidden and cell states are that embedding, fed the previous token (teacher forcing in
  training, its own greedy choice when generating), with dot-product attention over the
  encoder outputs (`tanh(W [h_t; context])` then a softmax head per decision), as in the
  authors' code (github.com/renqianluo/NAO_pytorch). Gradient ascent moves the encoder
  outputs, which are normalized again, as the authors' code does. The model is kept and
  trained further each round (the authors' controller is not re-created between rounds).
* "mlp": the encoder and decoder are MLPs over the one-hot encoding (a KerasTuner space is a
  fixed list of decisions, so this is a cheap alternative); the embedding is L2-normalized,
  as in the authors' code. It is refitted from scratch every round, so decisions that the
  space gains are simply new input and output columns.

New architectures come from gradient ascent on the predicted reward in embedding space,
starting from the embeddings of the best architectures found so far. As in the authors'
code, the step from a seed is `k * step_size` times the gradient at the seed's embedding for
k = 1, 2, ..., `max_ascent_steps` (the step grows until the decoded architecture changes):
the first decoded architecture that is new (not the seed, not proposed before) is kept.
Rewards are standardized for the predictor (the authors min-max scale them into a sigmoid
output; standardizing with a linear output gives the same ranking and keeps the gradient of
the best architectures from vanishing in the sigmoid's tail). Weights are saved in the
oracle state.
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
        embedding_size: Size of the continuous embedding ("mlp"; the "lstm" embedding has
            `hidden_size` units, as in the paper).
        hidden_size: Hidden units of the encoder, predictor and decoder.
        train_steps: Full-batch Adam steps per round.
        learning_rate: Adam step size.
        predictor_weight: Weight of the prediction loss against reconstruction, in [0, 1].
        step_size: The unit of the gradient-ascent step in embedding space (eta): the k-th
            try from a seed steps `k * step_size` times the gradient.
        max_ascent_steps: Tries (growing steps) from a seed before giving up on it.
        model: "lstm" (the paper's sequence encoder-decoder) or "mlp" (see the module
            docstring).
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
        model: str = "mlp",
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
        self.model = validation.check_one_of("model", model, ("lstm", "mlp"))
        self.params: numpy_nn.Params = {}
        self.mean, self.std = 0.0, 1.0
        self.queue: list[encoding.Values] = []
        # Finished trials: {"values", "reward"}.
        self.history: list[dict[str, Any]] = []
        self.num_rounds = 0

    # The model.

    def _init_params(self, feature_size: int, space: encoding.SpaceEncoding | None = None) -> None:
        hidden, embedding = self.hidden_size, self.embedding_size
        if self.model == "mlp":
            self.params = {
                **numpy_nn.mlp_init(self.rng, [feature_size, hidden, embedding], "enc/"),
                **numpy_nn.mlp_init(self.rng, [embedding, hidden, 1], "pred/"),
                **numpy_nn.mlp_init(self.rng, [embedding, hidden, feature_size], "dec/"),
            }
            return
        self.params = {
            "enc/emb": numpy_nn.glorot(self.rng, feature_size, hidden),
            **numpy_nn.lstm_init(self.rng, hidden, hidden, "enc/lstm/"),
            **numpy_nn.mlp_init(self.rng, [hidden, hidden, 1], "pred/"),
            "dec/emb": numpy_nn.glorot(self.rng, feature_size, hidden),
            "dec/start": np.zeros(hidden),
            **numpy_nn.lstm_init(self.rng, hidden, hidden, "dec/lstm/"),
            **numpy_nn.mlp_init(self.rng, [2 * hidden, hidden], "dec/attn/"),
            "dec/head/w": numpy_nn.glorot(self.rng, hidden, feature_size),
            "dec/head/b": np.zeros(feature_size),
        }

    def _ensure_params(self, space: encoding.SpaceEncoding) -> None:
        """Creates the model, or (lstm) grows it to the space's features, keeping weights."""
        if not self.params:
            self._init_params(space.feature_size, space)
            return
        if self.model == "mlp":
            return
        old = self.params["enc/emb"].shape[0]
        if old == space.feature_size:
            return
        # A space that grew: its new candidates get fresh rows / columns.
        grown = dict(self.params)
        self._init_params(space.feature_size, space)
        fresh = self.params
        self.params = grown
        for name in ("enc/emb", "dec/emb"):
            self.params[name] = np.concatenate([grown[name], fresh[name][old:]], axis=0)
        self.params["dec/head/w"] = np.concatenate(
            [grown["dec/head/w"], fresh["dec/head/w"][:, old:]], axis=1
        )
        self.params["dec/head/b"] = np.concatenate([grown["dec/head/b"], fresh["dec/head/b"][old:]])

    @staticmethod
    def _tokens(space: encoding.SpaceEncoding, x: np.ndarray) -> np.ndarray:
        """`(n, decisions, features)`: each decision's one-hot block in its own slot."""
        tokens = np.zeros((len(x), len(space.decisions), x.shape[1]))
        for d in space.decisions:
            tokens[:, d.index, d.offset : d.offset + d.size] = x[:, d.offset : d.offset + d.size]
        return tokens

    def _encode_lstm(self, tokens: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """Encoder outputs `(n, T, hidden)` (normalized rows) of one-hot `tokens`."""
        n, hidden = len(tokens), self.hidden_size
        inputs = tokens @ self.params["enc/emb"]
        zeros = np.zeros((n, hidden))
        hs, _, _, lstm_cache = numpy_nn.lstm_forward(self.params, inputs, zeros, zeros, "enc/lstm/")
        outputs, norm = numpy_nn.l2_normalize(hs)
        return outputs, {"tokens": tokens, "lstm": lstm_cache, "norm": norm, "outputs": outputs}

    @staticmethod
    def _pool(outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The architecture embedding: the normalized mean of the encoder outputs."""
        return numpy_nn.l2_normalize(outputs.mean(axis=1))

    def _decoder_logits(
        self, outputs: np.ndarray, embedding: np.ndarray, inputs: np.ndarray
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Decoder logits `(n, T, features)` given the previous tokens' `inputs`."""
        hs, h, c, lstm_cache = numpy_nn.lstm_forward(
            self.params, inputs, embedding, embedding, "dec/lstm/"
        )
        scores = np.einsum("nth,nsh->nts", hs, outputs)
        scores = scores - scores.max(axis=-1, keepdims=True)
        attention = np.exp(scores)
        attention /= attention.sum(axis=-1, keepdims=True)
        context = np.einsum("nts,nsh->nth", attention, outputs)
        joint = np.concatenate([hs, context], axis=-1)
        n, steps, _ = joint.shape
        mixed, attn_cache = numpy_nn.mlp_forward(
            self.params, joint.reshape(n * steps, -1), ("tanh",), "dec/attn/"
        )
        mixed = mixed.reshape(n, steps, -1)
        logits = mixed @ self.params["dec/head/w"] + self.params["dec/head/b"]
        cache = {
            "lstm": lstm_cache,
            "hs": hs,
            "attention": attention,
            "joint": joint,
            "attn": attn_cache,
            "mixed": mixed,
            "state": (h, c),
        }
        return logits, cache

    def _decoder_inputs(self, tokens: np.ndarray) -> np.ndarray:
        """Teacher forcing: the start vector, then each previous token's embedding."""
        n, steps, _ = tokens.shape
        inputs = np.empty((n, steps, self.hidden_size))
        inputs[:, 0] = self.params["dec/start"]
        if steps > 1:
            inputs[:, 1:] = tokens[:, :-1] @ self.params["dec/emb"]
        return inputs

    def _embed(self, space: encoding.SpaceEncoding, x: np.ndarray) -> np.ndarray:
        """What the ascent moves: "mlp" embeddings `(n, E)`; "lstm" outputs `(n, T, H)`."""
        if self.model == "mlp":
            return numpy_nn.l2_normalize(numpy_nn.mlp_forward(self.params, x, _ENCODER, "enc/")[0])[
                0
            ]
        return self._encode_lstm(self._tokens(space, x))[0]

    def encode(self, x: np.ndarray, space: encoding.SpaceEncoding | None = None) -> np.ndarray:
        """Returns the (normalized) embeddings of one-hot architectures `x` `(n, features)`.

        The "lstm" model needs the `space` (to split `x` into tokens).
        """
        if self.model == "mlp":
            return self._embed(space, x)
        if space is None:
            raise ValueError("The lstm model needs the space to encode. Received: space=None")
        return self._pool(self._embed(space, x))[0]

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """Returns the predicted rewards of `embeddings` `(n, embedding)`."""
        out = numpy_nn.mlp_forward(self.params, embeddings, _PREDICTOR, "pred/")[0][:, 0]
        return out * self.std + self.mean

    def _decode_moved(self, space: encoding.SpaceEncoding, moved: np.ndarray) -> np.ndarray:
        """Greedy decoding of what `_embed` returns (possibly moved): `(n, decisions)`."""
        out = np.zeros((len(moved), len(space.decisions)), dtype=np.int64)
        if self.model == "mlp":
            logits = numpy_nn.mlp_forward(self.params, moved, _DECODER, "dec/")[0]
            for d in space.decisions:
                out[:, d.index] = np.argmax(logits[:, d.offset : d.offset + d.size], axis=1)
            return out
        outputs = moved
        embedding, _ = self._pool(outputs)
        n = len(outputs)
        h, c = embedding, embedding
        prev = np.broadcast_to(self.params["dec/start"], (n, self.hidden_size))
        for d in space.decisions:
            hs, h, c, _ = numpy_nn.lstm_forward(self.params, prev[:, None], h, c, "dec/lstm/")
            scores = np.einsum("nh,nsh->ns", hs[:, 0], outputs)
            attention = np.exp(scores - scores.max(axis=1, keepdims=True))
            attention /= attention.sum(axis=1, keepdims=True)
            context = np.einsum("ns,nsh->nh", attention, outputs)
            mixed = np.tanh(
                np.concatenate([hs[:, 0], context], axis=1) @ self.params["dec/attn/w0"]
                + self.params["dec/attn/b0"]
            )
            columns = slice(d.offset, d.offset + d.size)
            logits = (
                mixed @ self.params["dec/head/w"][:, columns] + self.params["dec/head/b"][columns]
            )
            out[:, d.index] = np.argmax(logits, axis=1)
            prev = self.params["dec/emb"][d.offset + out[:, d.index]]
        return out

    def decode_indices(self, space: encoding.SpaceEncoding, embeddings: np.ndarray) -> np.ndarray:
        """Returns `(n, num_decisions)` indices of the decoder's most likely candidates.

        `embeddings` are what the ascent moves: "mlp" embeddings `(n, E)`, "lstm" encoder
        outputs `(n, T, H)`.
        """
        return self._decode_moved(space, embeddings)

    def decode(self, space: encoding.SpaceEncoding, embedding: np.ndarray) -> encoding.Values:
        """Returns the architecture decoded from one embedding (see `decode_indices`)."""
        return space.from_indices(self.decode_indices(space, embedding[None])[0])

    def _reconstruction(
        self, space: encoding.SpaceEncoding, x: np.ndarray, logits: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """Mean cross-entropy of `logits` `(n, features)` against one-hot `x`, and its grad."""
        if not space.decisions:
            return 0.0, np.zeros_like(logits)
        n = len(x)
        offsets = np.array([d.offset for d in space.decisions])
        sizes = np.array([d.size for d in space.decisions])
        log_p = _segment_log_softmax(logits, offsets, sizes)
        # Inactive decisions have an all-zero one-hot: nothing to reconstruct.
        mask = np.repeat(np.add.reduceat(x, offsets, axis=1), sizes, axis=1)
        scale = (1 - self.predictor_weight) / (n * len(space.decisions))
        return -scale * float((x * log_p).sum()), scale * (mask * np.exp(log_p) - x)

    def loss_and_grads(
        self, space: encoding.SpaceEncoding, x: np.ndarray, target: np.ndarray
    ) -> tuple[float, numpy_nn.Params]:
        """Joint loss on one-hot `x` and standardized rewards `target`, and its gradients."""
        if self.model == "lstm":
            return self._lstm_loss_and_grads(space, x, target)
        n = len(x)
        weight = self.predictor_weight
        raw, enc_cache = numpy_nn.mlp_forward(self.params, x, _ENCODER, "enc/")
        emb, norm = numpy_nn.l2_normalize(raw)
        pred, pred_cache = numpy_nn.mlp_forward(self.params, emb, _PREDICTOR, "pred/")
        logits, dec_cache = numpy_nn.mlp_forward(self.params, emb, _DECODER, "dec/")
        error = pred[:, 0] - target
        loss = weight * float(np.mean(error**2))
        rec_loss, grad_logits = self._reconstruction(space, x, logits)
        loss += rec_loss
        grad_pred = (2.0 * weight / n) * error[:, None]
        grads, grad_emb_pred = numpy_nn.mlp_backward(
            self.params, pred_cache, grad_pred, _PREDICTOR, "pred/"
        )
        dec_grads, grad_emb_dec = numpy_nn.mlp_backward(
            self.params, dec_cache, grad_logits, _DECODER, "dec/"
        )
        grad_raw = numpy_nn.l2_normalize_backward(emb, norm, grad_emb_pred + grad_emb_dec)
        enc_grads, _ = numpy_nn.mlp_backward(self.params, enc_cache, grad_raw, _ENCODER, "enc/")
        return loss, {**grads, **dec_grads, **enc_grads}

    def _lstm_loss_and_grads(
        self, space: encoding.SpaceEncoding, x: np.ndarray, target: np.ndarray
    ) -> tuple[float, numpy_nn.Params]:
        n, steps = len(x), len(space.decisions)
        weight = self.predictor_weight
        tokens = self._tokens(space, x)
        outputs, enc = self._encode_lstm(tokens)
        embedding, emb_norm = self._pool(outputs)
        pred, pred_cache = numpy_nn.mlp_forward(self.params, embedding, _PREDICTOR, "pred/")
        inputs = self._decoder_inputs(tokens)
        logits_steps, dec = self._decoder_logits(outputs, embedding, inputs)
        # Decision t is read off step t's logits over its own columns.
        column_step = np.zeros((x.shape[1],), dtype=np.int64)
        for d in space.decisions:
            column_step[d.offset : d.offset + d.size] = d.index
        logits = logits_steps[:, column_step, np.arange(x.shape[1])]
        error = pred[:, 0] - target
        rec_loss, grad_logits = self._reconstruction(space, x, logits)
        loss = weight * float(np.mean(error**2)) + rec_loss
        # Backward: decoder head and attention.
        grad_steps = np.zeros_like(logits_steps)
        grad_steps[:, column_step, np.arange(x.shape[1])] = grad_logits
        grads = {
            "dec/head/w": np.einsum("nth,ntf->hf", dec["mixed"], grad_steps),
            "dec/head/b": grad_steps.sum(axis=(0, 1)),
        }
        grad_mixed = grad_steps @ self.params["dec/head/w"].T
        attn_grads, grad_joint = numpy_nn.mlp_backward(
            self.params, dec["attn"], grad_mixed.reshape(n * steps, -1), ("tanh",), "dec/attn/"
        )
        grad_joint = grad_joint.reshape(n, steps, -1)
        grads.update(attn_grads)
        hidden = self.hidden_size
        grad_hs, grad_context = grad_joint[..., :hidden], grad_joint[..., hidden:]
        attention = dec["attention"]
        grad_outputs = np.einsum("nts,nth->nsh", attention, grad_context)
        grad_attention = np.einsum("nth,nsh->nts", grad_context, outputs)
        grad_scores = attention * (
            grad_attention - (grad_attention * attention).sum(axis=-1, keepdims=True)
        )
        grad_hs = grad_hs + np.einsum("nts,nsh->nth", grad_scores, outputs)
        grad_outputs += np.einsum("nts,nth->nsh", grad_scores, dec["hs"])
        lstm_grads, grad_inputs, grad_h0, grad_c0 = numpy_nn.lstm_backward(
            self.params, dec["lstm"], grad_hs, "dec/lstm/"
        )
        grads.update(lstm_grads)
        grads["dec/start"] = grad_inputs[:, 0].sum(axis=0)
        grads["dec/emb"] = np.einsum("ntf,nth->fh", tokens[:, :-1], grad_inputs[:, 1:])
        # Predictor, and the embedding's two readers (predictor, decoder's initial state).
        pred_grads, grad_embedding = numpy_nn.mlp_backward(
            self.params, pred_cache, (2.0 * weight / n) * error[:, None], _PREDICTOR, "pred/"
        )
        grads.update(pred_grads)
        grad_embedding = grad_embedding + grad_h0 + grad_c0
        grad_mean = numpy_nn.l2_normalize_backward(embedding, emb_norm, grad_embedding)
        grad_outputs += grad_mean[:, None, :] / steps
        grad_enc_hs = numpy_nn.l2_normalize_backward(outputs, enc["norm"], grad_outputs)
        enc_grads, grad_enc_inputs, _, _ = numpy_nn.lstm_backward(
            self.params, enc["lstm"], grad_enc_hs, "enc/lstm/"
        )
        grads.update(enc_grads)
        grads["enc/emb"] = np.einsum("ntf,nth->fh", tokens, grad_enc_inputs)
        return loss, grads

    def fit(self, space: encoding.SpaceEncoding) -> float:
        """Trains encoder, predictor and decoder on the history; returns the loss.

        "mlp" starts from scratch; "lstm" continues from its current weights.
        """
        x = space.one_hot_batch([e["values"] for e in self.history])
        y = np.array([e["reward"] for e in self.history])
        self.mean, self.std = float(y.mean()), float(y.std()) or 1.0
        target = (y - self.mean) / self.std
        if self.model == "mlp":
            self._init_params(space.feature_size)
        else:
            self._ensure_params(space)
        return numpy_nn.minimize(
            self.params,
            lambda _: self.loss_and_grads(space, x, target),
            self.train_steps,
            self.learning_rate,
        )

    # The search.

    def ascent_direction(self, moved: np.ndarray) -> np.ndarray:
        """d predicted reward / d (what `_embed` returns), per architecture."""
        if self.model == "mlp":
            _, cache = numpy_nn.mlp_forward(self.params, moved, _PREDICTOR, "pred/")
            return numpy_nn.mlp_backward(
                self.params, cache, np.ones((len(moved), 1)), _PREDICTOR, "pred/"
            )[1]
        embedding, norm = self._pool(moved)
        _, cache = numpy_nn.mlp_forward(self.params, embedding, _PREDICTOR, "pred/")
        _, grad = numpy_nn.mlp_backward(
            self.params, cache, np.ones((len(moved), 1)), _PREDICTOR, "pred/"
        )
        grad_mean = numpy_nn.l2_normalize_backward(embedding, norm, grad)
        return np.repeat(grad_mean[:, None, :] / moved.shape[1], moved.shape[1], axis=1)

    def _step(self, start: np.ndarray, direction: np.ndarray, k: int) -> np.ndarray:
        return numpy_nn.l2_normalize(start + k * self.step_size * direction)[0]

    def generate(
        self, space: encoding.SpaceEncoding, is_seen: base.IsSeen
    ) -> list[encoding.Values]:
        """Returns up to `batch_size` new architectures by ascent from the best ones.

        All seeds step together with a growing step (`k * step_size`, k = 1, 2, ...) from
        their own embedding; at each k, each seed still searching keeps its decoded
        architecture if it is new, best seeds first.
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
        start = self._embed(space, space.one_hot_batch(seeds))
        direction = self.ascent_direction(start)
        searching = np.ones(len(seeds), dtype=bool)
        batch: dict[str, encoding.Values] = {}
        decoded: dict[tuple, tuple[str, encoding.Values]] = {}
        for k in range(1, self.max_ascent_steps + 1):
            moved = self._step(start[searching], direction[searching], k)
            rows = np.flatnonzero(searching)
            for i, indices in zip(rows, self.decode_indices(space, moved)):
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
            if not searching.any():
                break
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
