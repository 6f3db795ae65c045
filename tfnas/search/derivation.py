"""Derivation rules of the differentiable strategies, on plain JSON and NumPy.

A differentiable search ends with distributions over each choice's candidates (softmax of
the learned alphas). These functions turn them into decisions, with no model at hand: the
supernet is described by its `structure`, recorded from the choice points as they were
built (`tfnas.blocks.rules.SoftmaxMixture.structure()`):

```python
structure = {
    "candidates": {"node1/edge0": [{"node1/edge0": "none"}, {"node1/edge0": "conv"}]},
    "decisions": {"node1/edge0": "node1/edge0"},   # hyperparameter -> layer choice
    "inputs": {"node1/inputs": {"n_chosen": 2, "edges": ["node1/edge0", None, ...]}},
}
```

- `darts_picker`: the DARTS derivation (argmax operation; per node the `n_chosen` edges
  with the strongest non-`none` operation), or a sample from the distributions.
- `darts_plus_stop_reason`: DARTS+'s early-stopping criteria.
- `drop_candidates` and `cap_skip_connections`: P-DARTS's search-space approximation and
  its cap on skip connections in the derived normal cell.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

Structure = Mapping[str, Any]
Values = dict[str, Any]

NONE_OP = "none"
SKIP_OP = "skip_connect"


def softmax(logits: Sequence[float], excluded: Sequence[int] = ()) -> list[float]:
    """softmax(logits) in float64, with the `excluded` candidates given probability 0."""
    logits = np.asarray(logits, dtype="float64").copy()
    logits[list(excluded)] = -np.inf
    shifted = np.exp(logits - logits.max())
    return (shifted / shifted.sum()).tolist()


def candidate_label(values: Mapping[str, Any]) -> str:
    """A readable name of a candidate: its value(s), e.g. "sep_conv_3x3"."""
    return ",".join(str(v) for v in values.values())


def is_op(values: Mapping[str, Any], op: str) -> bool:
    """Whether the candidate with hyperparameter `values` is the operation `op`."""
    return op in values.values()


def check_finite(alphas: Mapping[str, Sequence[float]]) -> None:
    """Raises when a logit or probability is NaN or infinite.

    Raises:
        ValueError: naming the choices whose values are not finite.
    """
    bad = [name for name, values in alphas.items() if not all(math.isfinite(v) for v in values)]
    if bad:
        raise ValueError(
            f"The architecture parameters are not finite for {bad}: the search diverged. "
            "Lower arch_learning_rate or the supernet's learning rate and start a new search."
        )


def darts_picker(
    structure: Structure,
    distributions: Mapping[str, Sequence[float]],
    *,
    edge_weights: Mapping[str, Sequence[float]] | None = None,
    forbidden: Mapping[str, Sequence[int]] | None = None,
    rng: np.random.Generator | None = None,
) -> Callable[[str], Any]:
    """The DARTS derivation as `pick(name)`: the derived value of one decision.

    Without `rng`: a layer choice takes its argmax candidate; an input choice keeps the
    `n_chosen` inputs whose producing layer choice has the largest non-`none` probability
    (times the input's `edge_weights`, PC-DARTS's edge normalization; inputs not produced
    by a layer choice count 0, ties go to the lower index), and a layer choice feeding an
    input choice (an edge) takes its argmax non-`none` operation (unless every other
    operation has probability 0). With `rng`, the same with sampling proportional to the
    weights. Decisions are picked lazily, so the random draws follow the order in which
    `pick` is called (a space's decision order).

    Args:
        structure: the supernet's `{"candidates", "decisions", "inputs"}`.
        distributions: `{layer_choice_name: probabilities}`.
        edge_weights: optional `{input_choice_name: weight per input}`.
        forbidden: optional `{layer_choice_name: [candidate index]}` given probability 0.
        rng: sample instead of taking the strongest candidates.

    Returns:
        `pick(name)`: the value of the hyperparameter `name` ("1,3" for an input choice,
        the candidate's value for a layer choice), or None for a name outside `structure`.

    Raises:
        ValueError: when a probability is not finite.
    """
    probabilities = {}
    for name, p in distributions.items():
        p = np.asarray(p, dtype="float64").copy()
        p[list((forbidden or {}).get(name, []))] = 0.0
        probabilities[name] = p
    check_finite(probabilities)
    edge_weights = edge_weights or {}
    candidates, inputs = structure["candidates"], structure["inputs"]
    edge_names = {e for info in inputs.values() for e in info["edges"] if e}
    picked_index: dict[str, int] = {}

    def op_index(name: str) -> int:
        if name not in picked_index:
            p = probabilities[name]
            values = candidates[name]
            if name in edge_names:
                allowed = [not is_op(v, NONE_OP) for v in values]
                if any(p[i] > 0 for i in range(len(p)) if allowed[i]):
                    p = p * np.asarray(allowed, dtype="float64")
            if rng is None:
                picked_index[name] = int(np.argmax(p))
            else:
                picked_index[name] = int(rng.choice(len(p), p=p / p.sum()))
        return picked_index[name]

    def strength(edge: str | None) -> float:
        if edge is None or edge not in probabilities:
            return 0.0
        weights = [
            p for p, v in zip(probabilities[edge], candidates[edge]) if not is_op(v, NONE_OP)
        ]
        return float(max(weights, default=0.0))

    def pick(name: str) -> Any:
        if name in inputs:
            info = inputs[name]
            scores = np.asarray([strength(e) for e in info["edges"]])
            if name in edge_weights:
                scores = scores * np.asarray(edge_weights[name])
            n = info["n_chosen"]
            if rng is None:
                chosen = sorted(np.argsort(-scores, kind="stable")[:n].tolist())
            else:
                p = scores / scores.sum() if scores.sum() > 0 else None
                chosen = sorted(rng.choice(len(scores), n, replace=False, p=p).tolist())
            return ",".join(str(i) for i in chosen)
        if name in structure["decisions"]:
            choice = structure["decisions"][name]
            return candidates[choice][op_index(choice)][name]
        return None

    return pick


def names_with_op(
    structure: Structure, values: Mapping[str, Any], op: str = SKIP_OP, scope: str = "normal/"
) -> list[str]:
    """The decisions of `values` under `scope` (a name prefix) that pick `op`.

    Only layer-choice decisions of `structure` count. When none of them in `values` starts
    with `scope` (a space without a "normal" cell, e.g. NAS-Bench-201's "cell/"), every
    one is considered.
    """
    names = [n for n in structure.get("decisions", {}) if n in values]
    scoped = [n for n in names if n.startswith(scope)] or names
    return [n for n in scoped if values[n] == op]


def ranking(distributions: Mapping[str, Sequence[float]]) -> dict[str, list[int]]:
    """Per choice, its candidate indices from the most to the least probable (stable)."""
    return {
        name: np.argsort(-np.asarray(p), kind="stable").tolist()
        for name, p in distributions.items()
    }


def darts_plus_stop_reason(
    epoch: int,
    derived: Mapping[str, Any],
    structure: Structure,
    history: Sequence[Mapping[str, Any]],
    *,
    max_skip_connections: int,
    stable_epochs: int | None,
    skip_op: str = SKIP_OP,
    normal_scope: str = "normal/",
) -> str | None:
    """Why DARTS+ stops after `epoch` (0-based), or None to go on.

    Criterion 1: the derived normal cell has `max_skip_connections` or more `skip_op`
    edges. Criterion 2 (unless `stable_epochs` is None): the ranking of every choice's
    candidates has not changed over the last `stable_epochs` epochs, i.e. is the same in
    the last `stable_epochs + 1` entries of `history` (`{"distributions": ...}` per epoch,
    the current epoch last).
    """
    skips = len(names_with_op(structure, derived, skip_op, normal_scope))
    if skips >= max_skip_connections:
        return (
            f"after epoch {epoch + 1} the derived normal cell has {skips} "
            f"{skip_op} edges (max_skip_connections={max_skip_connections})"
        )
    if stable_epochs is None or len(history) <= stable_epochs:
        return None
    rankings = [ranking(h["distributions"]) for h in history[-stable_epochs - 1 :]]
    if all(r == rankings[-1] for r in rankings):
        return (
            f"the ranking of alpha has not changed for {stable_epochs} epochs "
            f"(epochs {epoch + 1 - stable_epochs} to {epoch + 1})"
        )
    return None


def drop_candidates(
    probabilities: Mapping[str, Sequence[float]],
    candidates: Mapping[str, Sequence[Mapping[str, Any]]],
    excluded: Mapping[str, Sequence[int]],
    keep: int,
    last: bool,
) -> dict[str, list[int]]:
    """P-DARTS's search-space approximation: each choice keeps its `keep` strongest
    candidates among those not yet `excluded`; with `last` (before the final stage), `none`
    is dropped first unless nothing else is left.

    Returns:
        The new `{choice_name: [excluded index]}` of every choice in `probabilities`.
    """
    result = {}
    for name, p in probabilities.items():
        values = candidates[name]
        order = [int(i) for i in np.argsort(-np.asarray(p), kind="stable")]
        order = [i for i in order if i not in excluded.get(name, [])]
        if last:
            order = [i for i in order if not is_op(values[i], NONE_OP)] or order
        kept = set(order[:keep])
        result[name] = [i for i in range(len(values)) if i not in kept]
    return result


def cap_skip_connections(
    derive: Callable[[Mapping[str, Sequence[int]]], Values],
    structure: Structure,
    probabilities: Mapping[str, Sequence[float]],
    *,
    max_skip_connections: int,
    skip_op: str = SKIP_OP,
    normal_scope: str = "normal/",
) -> Values:
    """P-DARTS's cap: at most `max_skip_connections` skips in the derived normal cell.

    While the derivation has more, the weakest skip edge (smallest skip probability) is
    forbidden its skip, so it takes its next-best operation.

    Args:
        derive: `derive(forbidden)`, the derivation with the `{layer_choice_name:
            [candidate index]}` of `forbidden` given probability 0 (see `darts_picker`).
        structure: the supernet's structure.
        probabilities: `{layer_choice_name: probabilities}` ranking the skip edges.
        max_skip_connections, skip_op, normal_scope: the cap, the skip operation and the
            name prefix of the normal cell (as in `names_with_op`).

    Returns:
        The capped derived architecture.
    """
    forbidden: dict[str, list[int]] = {}

    def skip(name: str) -> tuple[str, int]:
        choice = structure["decisions"][name]
        values = [v.get(name) for v in structure["candidates"][choice]]
        return choice, values.index(skip_op)

    while True:
        values = derive(forbidden)
        skips = names_with_op(structure, values, skip_op, normal_scope)
        if len(skips) <= max_skip_connections:
            return values
        weakest = min(skips, key=lambda name: probabilities[skip(name)[0]][skip(name)[1]])
        choice, index = skip(weakest)
        forbidden.setdefault(choice, []).append(index)
