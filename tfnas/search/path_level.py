"""Path-level EAS (Cai, Yang, Zhang, Han & Yu 2018, arXiv 1806.02639): the Keras-free core.

Path-level EAS grows a cell by *path-level network transformations* that preserve the
function of the network, so that every child network starts from its parent's trained
weights and needs only a few epochs of training to be evaluated. This module holds the
cell, the transformations, the meta-controller's decisions and the search algorithm as
plain data and numpy; `tfnas.spaces.path_level` builds the Keras network of a cell and maps
a parent's weights into its child, `tfnas.tuners.path_level` is the KerasTuner oracle.

**The tree-structured cell** (the reference's `TreeNode`, as JSON). A node is

    {"merge": None | "add" | "concat", "split": "copy" | "split",
     "branches": [{"op": OPERATION, "child": node | None}, ...]}

Branch `j` applies its operation (an "edge" of the reference) to the node's input, then its
child node if any; the node merges the branches' outputs: `None` (exactly one branch: the
branch's output), `"add"` (the *average* of the branches, the reference's `use_avg=True`) or
`"concat"` (along channels). With `"split": "copy"` every branch reads the node's whole
input; with `"split"` the input channels are split evenly among the branches (what a concat
merge of a channel-wise operation, identity or pooling, needs). Channels: a cell maps C
channels to C; a node's branches output its out channels (add) or an even share of them
(concat); a child node keeps its branch's channel count. The operations are
`OPERATIONS`: identity, convolutions 1x1 / 3x3, separable convolutions 3x3 / 5x5 / 7x7 and
3x3 average / max pooling (stride 1), each convolution followed by batch norm and ReLU
(`tfnas.spaces.path_level`). A node is named by its path from the root, e.g. "r" (the
root) or "r.0.1" (the child of branch 1 of the child of the root's branch 0).

**The transformations** (`apply_transformation`), the reference's three:

* `{"type": "set_merge", "node": id, "merge": "add" | "concat", "branches": k}`: a node
  with one branch and no child (a single operation) becomes a k-branch motif. Add: the
  operation is replicated k times and the branches averaged (equal outputs, the same
  function). Concat: a convolution's filters are split evenly among k convolutions that
  all read the input ("copy"); a channel-wise operation's input channels are split
  ("split"); the concatenation is the original output. A channel count not divisible by
  k is refused (the reference splits unevenly; refusing keeps every branch equal).
* `{"type": "insert", "node": id, "branch": j}`: a node with one identity branch is
  inserted after branch j's operation (its old child becomes the new node's child): the
  identity keeps the function, and the new node is a leaf the next decisions can grow.
* `{"type": "replace_identity", "node": id, "branch": j, "op": OPERATION}`: branch j's
  identity becomes the operation. Convolutions are initialised to compute the identity
  (identity kernel, batch norm that undoes itself, ReLU of a non-negative input, see
  `tfnas.spaces.path_level`); pooling cannot be an identity, so that replacement does not
  preserve the function (`preserves_function`), as in the reference (which trains such
  children by mimicking the start network).

Net2Net widening is not part of the path-level pipeline (the paper searches the cell at a
fixed width), so it is not implemented.

**The meta-controller's decisions** (`TransformationSpace`), the reference's
`sample_cell` generalised from the start cell to any parent cell. Depth first from the
root, at each node:

1. if it is a single operation with no child, a *merge* decision among `merge_choices`
   ("none", "add:2", "add:3", "concat:2" as in the reference; concat choices whose
   channels do not divide are left out at that node);
2. for each branch whose operation is the identity, an *edge* decision among
   `replace_choices` (the reference's seven: separable 3x3/5x5/7x7, conv 1x1, identity,
   max and average pooling; "identity" keeps it);
3. for each branch in order: if it has a child, the child is visited; else, below
   `max_depth` levels of nodes (3, the reference's), an *insert* decision (False / True);
   an inserted node is visited at once.

An inserted node left as a bare identity (merge "none" and edge "identity") is taken out
again, since it changes nothing; a rollout whose child equals its parent is not proposed.

The meta-controller (documented equivalent): the paper's is a bidirectional tree-LSTM
encoder of the current cell with one actor network per kind of decision. Here it is the
numpy LSTM controller of `tfnas.search.reinforce` (`Controller`, trained by REINFORCE with
`ReinforceUpdate`) run over the same decisions in the traversal order above: the LSTM's
state carries what was decided before (and so, for a rollout, the structure built so far),
and the decisions share their softmax head and embedding per kind, depth and candidate
set (the reference shares one actor per kind across nodes). Each rollout starts from a
parent cell, which the tree-LSTM encodes and this controller does not see except through
the decisions it offers; that is the deviation.

**The search** (`PathLevelSearch`): the first trial is the start cell, trained from
scratch; every later trial picks a parent among the `pool_size` best evaluated cells
(uniformly; the reference always transforms its start network), lets the controller
transform it, and trains the child from the parent's transformed weights. The reward is the
validation accuracy passed through the reference's `tan(acc * pi / 2)` (EAS's reward
shaping, `reward_transform="tan"`, accuracy clipped to 0.99), with the reference's REINFORCE
settings: Adam at 6e-3, entropy weight 0.01, a moving-average baseline of decay 0.95 and
10 networks per update (`batch_size`).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfnas import validation
from tfnas.search import base, encoding
from tfnas.search.reinforce import Controller

OPERATIONS = (
    "identity",
    "conv1x1",
    "conv3x3",
    "sep3x3",
    "sep5x5",
    "sep7x7",
    "avgpool3x3",
    "maxpool3x3",
)
# Channel-wise operations: a concat merge splits their input channels.
CHANNELWISE = ("identity", "avgpool3x3", "maxpool3x3")
# Operations that can be initialised to compute the identity.
IDENTITY_INITIALIZABLE = ("conv1x1", "conv3x3", "sep3x3", "sep5x5", "sep7x7")
MERGES = (None, "add", "concat")
TRANSFORMATIONS = ("set_merge", "insert", "replace_identity")

DEFAULT_MERGE_CHOICES = ("none", "add:2", "add:3", "concat:2")
DEFAULT_REPLACE_CHOICES = (
    "sep3x3",
    "sep5x5",
    "sep7x7",
    "conv1x1",
    "identity",
    "maxpool3x3",
    "avgpool3x3",
)

# The hyperparameters of a trial (all `Fixed`; see `tfnas.spaces.path_level`).
CELL = "path_level/cell"
PARENT = "path_level/parent"
PARENT_CELL = "path_level/parent_cell"
TRANSFORMS = "path_level/transforms"
CHANNELS = "path_level/channels"

ROOT = "r"

Cell = dict[str, Any]
Transformation = dict[str, Any]


# --- The cell ----------------------------------------------------------------------------


def start_cell(op: str = "conv3x3") -> Cell:
    """The start cell: one operation (the reference's start networks have one edge)."""
    validation.check_one_of("op", op, OPERATIONS)
    return {"merge": None, "split": "copy", "branches": [{"op": op, "child": None}]}


def cell_key(cell: Cell) -> str:
    """The canonical JSON string of a cell (the identity of an architecture)."""
    return json.dumps(cell, sort_keys=True, separators=(",", ":"))


def parse_cell(text: str) -> Cell:
    """Inverse of `cell_key`."""
    try:
        cell = json.loads(text)
    except (TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"A cell must be a JSON object. Received: {text!r}") from e
    if not isinstance(cell, dict):
        raise ValueError(f"A cell must be a JSON object. Received: {text!r}")
    return cell


def node_path(node_id: str) -> tuple[int, ...]:
    """The branch indices from the root to the node `node_id` ("r", "r.0", "r.0.1")."""
    parts = node_id.split(".") if isinstance(node_id, str) else None
    if not parts or parts[0] != ROOT or not all(p.isdigit() for p in parts[1:]):
        raise ValueError(
            f'A node id is "r" followed by ".<branch>" per level, e.g. "r.0.1". '
            f"Received: node={node_id!r}"
        )
    return tuple(int(p) for p in parts[1:])


def child_id(node_id: str, branch: int) -> str:
    return f"{node_id}.{branch}"


def get_node(cell: Cell, node_id: str) -> Cell:
    """The node `node_id` of `cell`; a ValueError naming it if the cell has no such node."""
    node = cell
    for depth, branch in enumerate(node_path(node_id)):
        branches = node.get("branches", [])
        child = branches[branch]["child"] if branch < len(branches) else None
        if child is None:
            at = ".".join([ROOT, *map(str, node_path(node_id)[:depth])])
            raise ValueError(
                f"The cell has no node {node_id!r}: node {at!r} has no child on branch "
                f"{branch}. Received: node={node_id!r}"
            )
        node = child
    return node


def split_sizes(channels: int, parts: int, node_id: str = ROOT) -> list[int]:
    """`channels` split evenly in `parts`; a ValueError naming the node if it does not divide."""
    if channels % parts:
        raise ValueError(
            f"Node {node_id!r} cannot split {channels} channels evenly among {parts} "
            f"branches. Received: branches={parts}"
        )
    return [channels // parts] * parts


@dataclass(frozen=True)
class BranchChannels:
    """Channels of one branch: its operation maps `in_channels` to `out_channels`."""

    in_channels: int
    out_channels: int


def node_channels(cell: Cell, channels: int) -> dict[str, list[BranchChannels]]:
    """The channels of every branch of every node, by node id (validates the cell).

    Raises:
        ValueError: naming the node, when the cell is malformed (unknown operation or
            merge, a merge-less node with several branches, channels that do not split,
            an identity or pooling that would change the channel count).
    """
    validation.check_int("channels", channels, low=1)
    plan: dict[str, list[BranchChannels]] = {}

    def visit(node: Any, node_id: str, in_ch: int, out_ch: int) -> None:
        if not isinstance(node, dict) or not isinstance(node.get("branches"), list):
            raise ValueError(
                f"Node {node_id!r} must be a dict with a list of branches. Received: {node!r}"
            )
        merge, split, branches = node.get("merge"), node.get("split", "copy"), node["branches"]
        if merge not in MERGES:
            raise ValueError(
                f"Node {node_id!r} has an unknown merge; one of {list(MERGES)}. "
                f"Received: merge={merge!r}"
            )
        if split not in ("copy", "split"):
            raise ValueError(
                f"Node {node_id!r} has an unknown split; 'copy' or 'split'. "
                f"Received: split={split!r}"
            )
        if not branches or (merge is None and len(branches) != 1):
            raise ValueError(
                f"Node {node_id!r} needs one branch without a merge, at least one with one. "
                f"Received: merge={merge!r} with {len(branches)} branches"
            )
        k = len(branches)
        ins = split_sizes(in_ch, k, node_id) if split == "split" else [in_ch] * k
        outs = split_sizes(out_ch, k, node_id) if merge == "concat" else [out_ch] * k
        plan[node_id] = []
        for j, (branch, b_in, b_out) in enumerate(zip(branches, ins, outs)):
            op = branch.get("op") if isinstance(branch, dict) else None
            if op not in OPERATIONS:
                raise ValueError(
                    f"Branch {j} of node {node_id!r} has an unknown operation; one of "
                    f"{list(OPERATIONS)}. Received: op={op!r}"
                )
            if op in CHANNELWISE and b_in != b_out:
                raise ValueError(
                    f"Branch {j} of node {node_id!r} is {op!r}, which keeps its {b_in} "
                    f"channels, but the node needs {b_out} from it. Received: op={op!r}"
                )
            plan[node_id].append(BranchChannels(b_in, b_out))
            if branch.get("child") is not None:
                visit(branch["child"], child_id(node_id, j), b_out, b_out)

    visit(cell, ROOT, channels, channels)
    return plan


def check_cell(cell: Cell, channels: int) -> Cell:
    """Returns `cell` if it is a valid cell of `channels` channels, else raises ValueError."""
    node_channels(cell, channels)
    return cell


def is_single_op(node: Cell) -> bool:
    """Whether the node is one operation with no child (what `set_merge` transforms)."""
    return (
        node["merge"] is None
        and len(node["branches"]) == 1
        and node["branches"][0]["child"] is None
    )


def depth(cell: Cell) -> int:
    """Levels of nodes (1 for a start cell)."""
    children = [b["child"] for b in cell["branches"] if b["child"] is not None]
    return 1 + max((depth(c) for c in children), default=0)


def operations(cell: Cell) -> list[str]:
    """The operations of the cell, depth first."""
    ops = []
    for branch in cell["branches"]:
        ops.append(branch["op"])
        if branch["child"] is not None:
            ops += operations(branch["child"])
    return ops


def describe(cell: Cell) -> str:
    """A short text of the cell, e.g. `add(sep3x3, conv3x3 > concat(identity, maxpool3x3))`."""
    parts = []
    for branch in cell["branches"]:
        text = branch["op"]
        if branch["child"] is not None:
            text += " > " + describe(branch["child"])
        parts.append(text)
    if cell["merge"] is None:
        return parts[0]
    return f"{cell['merge']}({', '.join(parts)})"


# --- The transformations -------------------------------------------------------------------


def _check_branch(node: Cell, node_id: str, branch: Any) -> int:
    if isinstance(branch, bool) or not isinstance(branch, int):
        raise ValueError(f"branch must be an integer. Received: branch={branch!r}")
    if not 0 <= branch < len(node["branches"]):
        raise ValueError(
            f"Node {node_id!r} has {len(node['branches'])} branches, no branch {branch}. "
            f"Received: branch={branch}"
        )
    return branch


def check_transformation(cell: Cell, transformation: Transformation, channels: int) -> None:
    """Raises a ValueError (naming the node) unless `transformation` applies to `cell`."""
    if not isinstance(transformation, dict):
        raise ValueError(
            f"A transformation must be a dict. Received: transformation={transformation!r}"
        )
    kind = transformation.get("type")
    validation.check_one_of("type", kind, TRANSFORMATIONS)
    node_id = transformation.get("node")
    node = get_node(cell, node_id)
    plan = node_channels(cell, channels)[node_id]
    if kind == "set_merge":
        merge, k = transformation.get("merge"), transformation.get("branches")
        validation.check_one_of("merge", merge, ("add", "concat"))
        validation.check_int("branches", k, low=2)
        if not is_single_op(node):
            raise ValueError(
                f"set_merge needs a node with one operation and no child; node {node_id!r} "
                f"is {describe(node)!r} (merge {node['merge']!r}). Received: node={node_id!r}"
            )
        if merge == "concat":
            split_sizes(plan[0].out_channels, k, node_id)
            if node["branches"][0]["op"] in CHANNELWISE:
                split_sizes(plan[0].in_channels, k, node_id)
    elif kind == "insert":
        _check_branch(node, node_id, transformation.get("branch"))
    else:
        j = _check_branch(node, node_id, transformation.get("branch"))
        op = transformation.get("op")
        validation.check_one_of("op", op, tuple(o for o in OPERATIONS if o != "identity"))
        if node["branches"][j]["op"] != "identity":
            raise ValueError(
                f"replace_identity needs an identity; branch {j} of node {node_id!r} is "
                f"{node['branches'][j]['op']!r}. Received: node={node_id!r}, branch={j}"
            )


def apply_transformation(cell: Cell, transformation: Transformation, channels: int) -> Cell:
    """Returns the child cell (a new dict; `cell` is not changed). Validates first."""
    check_transformation(cell, transformation, channels)
    child = copy.deepcopy(cell)
    node = get_node(child, transformation["node"])
    kind = transformation["type"]
    if kind == "set_merge":
        op = node["branches"][0]["op"]
        k = transformation["branches"]
        node["merge"] = transformation["merge"]
        split = transformation["merge"] == "concat" and op in CHANNELWISE
        node["split"] = "split" if split else "copy"
        node["branches"] = [{"op": op, "child": None} for _ in range(k)]
    elif kind == "insert":
        branch = node["branches"][transformation["branch"]]
        branch["child"] = {
            "merge": None,
            "split": "copy",
            "branches": [{"op": "identity", "child": branch["child"]}],
        }
    else:
        node["branches"][transformation["branch"]]["op"] = transformation["op"]
    return child


def apply_transformations(
    cell: Cell, transformations: Sequence[Transformation], channels: int
) -> Cell:
    """Applies the transformations in order."""
    for transformation in transformations:
        cell = apply_transformation(cell, transformation, channels)
    return cell


def preserves_function(transformation: Transformation) -> bool:
    """Whether the child computes its parent's function (False: replacing an identity by a
    pooling, which no initialisation makes an identity)."""
    return not (
        transformation["type"] == "replace_identity"
        and transformation["op"] not in IDENTITY_INITIALIZABLE
    )


# --- The decisions -------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeDecision:
    """One decision of a rollout, with the interface `tfnas.search.reinforce.Controller`
    reads from `tfnas.search.encoding.Decision` (`key`, `name`, `candidates`, ...).

    `key` is shared by the decisions of a kind at a depth with the same candidates (one
    softmax head and embedding each); `name` is unique in a rollout.
    """

    key: str
    name: str
    candidates: tuple

    @property
    def size(self) -> int:
        return len(self.candidates)

    @property
    def default_index(self) -> int:
        return 0

    def accepts(self, value: Any) -> bool:
        return any(type(value) is type(c) and value == c for c in self.candidates)

    def index_of(self, value: Any) -> int:
        for i, candidate in enumerate(self.candidates):
            if type(candidate) is type(value) and candidate == value:
                return i
        return 0


@dataclass(frozen=True)
class Rollout:
    """A parent cell, the decisions taken on it, and what they give."""

    values: encoding.Values
    transformations: list[Transformation]
    child: Cell


class TransformationSpace:
    """The meta-controller's decisions on one parent cell (see the module docstring).

    Duck-types the part of `tfnas.search.encoding.SpaceEncoding` that the controller uses
    (`assemble`, `complete`): an "architecture" is the dict of the rollout's decisions, by
    name, plus "parent" (the parent's `cell_key`).

    Args:
        parent: the parent cell.
        channels: the cell's channels.
        merge_choices: candidates of a merge decision: "none" or "add:k" / "concat:k".
        replace_choices: candidates of an edge decision (operations; "identity" keeps it);
            empty: identities are never replaced.
        max_depth: levels of nodes a rollout may reach (>= 1).
    """

    def __init__(
        self,
        parent: Cell,
        channels: int,
        merge_choices: Sequence[str] = DEFAULT_MERGE_CHOICES,
        replace_choices: Sequence[str] = DEFAULT_REPLACE_CHOICES,
        max_depth: int = 3,
    ):
        self.parent = check_cell(copy.deepcopy(parent), channels)
        self.parent_key = cell_key(self.parent)
        self.channels = channels
        self.merge_choices = check_merge_choices(merge_choices)
        self.replace_choices = check_replace_choices(replace_choices)
        self.max_depth = validation.check_int("max_depth", max_depth, low=1)

    def walk(self, choose: Callable[[TreeDecision, encoding.Values], Any]) -> Rollout:
        """Runs the traversal, asking `choose(decision, values_so_far)` for each value."""
        values: encoding.Values = {"parent": self.parent_key}
        transforms: list[Transformation] = []
        state = {"cell": copy.deepcopy(self.parent)}

        def ask(kind: str, name: str, depth_: int, candidates: tuple) -> Any:
            key = f"{kind}@{depth_}[{','.join(map(str, candidates))}]"
            value = choose(TreeDecision(key, name, candidates), values)
            values[name] = value
            return value

        def apply(transformation: Transformation) -> None:
            state["cell"] = apply_transformation(state["cell"], transformation, self.channels)
            transforms.append(transformation)

        def visit(node_id: str, level: int) -> None:
            node = get_node(state["cell"], node_id)
            if is_single_op(node):
                candidates = self._merge_candidates(node_id, state["cell"])
                if len(candidates) > 1:
                    merge = ask("merge", f"merge@{node_id}", level, candidates)
                    if merge != "none":
                        kind, k = merge.split(":")
                        apply({"type": "set_merge", "node": node_id, "merge": kind,
                               "branches": int(k)})  # fmt: skip
            node = get_node(state["cell"], node_id)
            if self.replace_choices:
                for j, branch in enumerate(node["branches"]):
                    if branch["op"] != "identity":
                        continue
                    op = ask("edge", f"edge@{node_id}#{j}", level, self.replace_choices)
                    if op != "identity":
                        apply({"type": "replace_identity", "node": node_id, "branch": j,
                               "op": op})  # fmt: skip
            for j in range(len(node["branches"])):
                branch = get_node(state["cell"], node_id)["branches"][j]
                if branch["child"] is not None:
                    visit(child_id(node_id, j), level + 1)
                elif level + 1 < self.max_depth:
                    if ask("insert", f"insert@{node_id}#{j}", level, (False, True)):
                        before = (copy.deepcopy(state["cell"]), len(transforms))
                        apply({"type": "insert", "node": node_id, "branch": j})
                        visit(child_id(node_id, j), level + 1)
                        inserted = get_node(state["cell"], child_id(node_id, j))
                        if inserted == start_cell("identity"):  # Changes nothing: undo.
                            state["cell"] = before[0]
                            del transforms[before[1] :]

        visit(ROOT, 0)
        return Rollout(values, transforms, state["cell"])

    def _merge_candidates(self, node_id: str, cell: Cell) -> tuple:
        plan = node_channels(cell, self.channels)[node_id][0]
        op = get_node(cell, node_id)["branches"][0]["op"]
        kept = []
        for choice in self.merge_choices:
            if choice.startswith("concat:"):
                k = int(choice.split(":")[1])
                if plan.out_channels % k or (op in CHANNELWISE and plan.in_channels % k):
                    continue
            kept.append(choice)
        return tuple(kept)

    def replay(self, values: encoding.Values) -> Rollout:
        """The rollout that `values` (as `assemble` returned them) describe."""

        def choose(decision: TreeDecision, _: encoding.Values) -> Any:
            value = values.get(decision.name)
            return value if decision.accepts(value) else decision.candidates[0]

        return self.walk(choose)

    # The `SpaceEncoding` interface the controller uses.
    def assemble(self, pick, fixed=None) -> encoding.Values:
        return self.walk(pick).values

    def complete(self, values: encoding.Values, rng=None, fixed=None) -> encoding.Values:
        return self.replay(values).values

    def sample(self, rng: np.random.Generator) -> encoding.Values:
        """A uniformly random rollout."""
        return self.walk(lambda d, _: d.candidates[int(rng.integers(d.size))]).values


def check_merge_choices(choices: Sequence[str]) -> tuple:
    """Returns the merge choices as a tuple; a ValueError naming a bad one."""
    choices = tuple(choices) if not isinstance(choices, str) else (choices,)
    for choice in choices:
        kind, _, k = str(choice).partition(":")
        if choice == "none":
            continue
        if kind not in ("add", "concat") or not k.isdigit() or int(k) < 2:
            raise ValueError(
                'merge_choices holds "none", "add:k" or "concat:k" with k >= 2. '
                f"Received: merge_choices={list(choices)!r}"
            )
    if "none" not in choices or len(set(choices)) != len(choices) or len(choices) < 2:
        raise ValueError(
            'merge_choices must hold "none" and at least one merge, without repeats. '
            f"Received: merge_choices={list(choices)!r}"
        )
    return choices


def check_replace_choices(choices: Sequence[str]) -> tuple:
    """Returns the edge choices as a tuple (empty, or with "identity" and another op)."""
    choices = tuple(choices) if not isinstance(choices, str) else (choices,)
    if not choices:
        return choices
    if (
        any(c not in OPERATIONS for c in choices)
        or "identity" not in choices
        or len(set(choices)) != len(choices)
        or len(choices) < 2
    ):
        raise ValueError(
            f'replace_choices must be empty, or "identity" and other operations of '
            f"{list(OPERATIONS)}, without repeats. Received: replace_choices={list(choices)!r}"
        )
    return choices


# --- The meta-controller and the search ----------------------------------------------------


class TreeController(Controller):
    """`Controller` over the rollouts of `TransformationSpace`s of several parents.

    A batch holds rollouts of different parents, and the update rules call
    `loss_and_grads(space, values, ...)` with one space: the space of a rollout is rebuilt
    from its "parent" value (`space_of`) instead.
    """

    def __init__(self, space_of: Callable[[str], TransformationSpace], **kwargs: Any):
        super().__init__(**kwargs)
        self.space_of = space_of

    def loss_and_grads(self, space, values, advantage):
        return super().loss_and_grads(self.space_of(values["parent"]), values, advantage)

    def log_prob_and_entropy(self, space, values):
        return super().log_prob_and_entropy(self.space_of(values["parent"]), values)


def shape_reward(reward: float, transform: str) -> float:
    """The reward the controller learns from: `tan(clip(acc, -0.99, 0.99) * pi / 2)` for "tan".

    The reference's transform of an accuracy. A negative reward is what
    `tfnas.results.objectives.BudgetedAccuracy` gives an architecture above a cost limit
    (`1 - cost / limit`); tan is increasing on (-pi/2, pi/2), so clipping there keeps every
    architecture within the limits above every one beyond them.
    """
    if transform == "identity":
        return reward
    if not reward <= 1.0:
        raise ValueError(
            'reward_transform="tan" needs accuracies (at most 1; negative: above a cost '
            'limit); use reward_transform="identity" for other objectives. Received: '
            f"reward={reward!r}"
        )
    return math.tan(min(max(reward, -0.99), 0.99) * math.pi / 2)


class PathLevelSearch(base.SearchAlgorithm):
    """Path-level EAS: a parent pool grown by controller-chosen transformations, no Keras.

    `propose` returns the values of a trial: `CELL` (the child's `cell_key`),
    `PARENT_CELL` (the parent's, "" for the start cell) and `TRANSFORMS` (the JSON list of
    transformations from parent to child); the oracle adds the parent's trial id.

    Args:
        channels: the cell's channels (default: the space's `CHANNELS` value).
        start: the start cell (default: the space's `CELL` value).
        pool_size: parents are drawn uniformly among this many best cells (>= 1); when
            none of them can be transformed into an unseen cell, a random rollout of any
            evaluated cell is proposed.
        parent_selection: "pool" (the above) or "start" (every child is a transformed
            start cell, as in the reference implementation).
        merge_choices, replace_choices, max_depth: see `TransformationSpace`.
        reward_transform: "tan" (the reference's shaping of accuracies) or "identity".
        hidden_size, learning_rate, entropy_weight, baseline_decay, batch_size,
            normalize_advantage, max_resamples: the `Controller`'s (reference: Adam at
            6e-3, entropy 0.01, decay 0.95, 10 networks per update).
        max_parent_tries: parents tried when the controller only samples known cells,
            before a uniformly random rollout is proposed.
        seed: the random seed.

    Example:

    ```python
    search = PathLevelSearch(channels=8, start=start_cell("conv3x3"), seed=0)
    values = search.propose(None, is_seen=lambda v: False)  # the start cell
    search.observe(None, values, reward=0.9)
    child = search.propose(None, is_seen=lambda v: False)  # a transformed start cell
    ```
    """

    def __init__(
        self,
        channels: int | None = None,
        start: Cell | None = None,
        pool_size: int = 5,
        parent_selection: str = "pool",
        merge_choices: Sequence[str] = DEFAULT_MERGE_CHOICES,
        replace_choices: Sequence[str] = DEFAULT_REPLACE_CHOICES,
        max_depth: int = 3,
        reward_transform: str = "tan",
        hidden_size: int = 32,
        learning_rate: float = 6e-3,
        entropy_weight: float = 0.01,
        baseline_decay: float = 0.95,
        batch_size: int = 10,
        normalize_advantage: bool = False,
        max_resamples: int = 20,
        max_parent_tries: int = 5,
        seed: int | None = None,
    ):
        super().__init__(seed)
        self.channels = None if channels is None else validation.check_int("channels", channels, 1)
        self.start = None if start is None else copy.deepcopy(start)
        if self.start is not None and self.channels is not None:
            check_cell(self.start, self.channels)
        self.pool_size = validation.check_int("pool_size", pool_size, low=1)
        self.parent_selection = validation.check_one_of(
            "parent_selection", parent_selection, ("pool", "start")
        )
        self.merge_choices = check_merge_choices(merge_choices)
        self.replace_choices = check_replace_choices(replace_choices)
        self.max_depth = validation.check_int("max_depth", max_depth, low=1)
        self.reward_transform = validation.check_one_of(
            "reward_transform", reward_transform, ("tan", "identity")
        )
        self.max_parent_tries = validation.check_int("max_parent_tries", max_parent_tries, low=1)
        self.controller = TreeController(
            self.space_of,
            hidden_size=hidden_size,
            learning_rate=learning_rate,
            entropy_weight=entropy_weight,
            baseline_decay=baseline_decay,
            batch_size=batch_size,
            normalize_advantage=normalize_advantage,
            max_resamples=max_resamples,
            reuse_seen=True,
            seed=None if seed is None else seed + 1,
        )
        # Cells proposed, in order; evaluated cells and their rewards ([key, reward]).
        self.proposed: list[str] = []
        self.pool: list[list[Any]] = []
        # Proposed children by key: their parent and, if the controller chose them, the
        # rollout's decisions.
        self.pending: dict[str, dict[str, Any]] = {}
        self._spaces: dict[str, TransformationSpace] = {}

    def space_of(self, parent_key: str) -> TransformationSpace:
        """The `TransformationSpace` of a parent cell (by its `cell_key`), cached."""
        if parent_key not in self._spaces:
            self._spaces[parent_key] = TransformationSpace(
                parse_cell(parent_key),
                self.channels,
                self.merge_choices,
                self.replace_choices,
                self.max_depth,
            )
        return self._spaces[parent_key]

    def _configure(self, space: encoding.SpaceEncoding | None) -> None:
        fixed = space.fixed_hyperparameters() if space is not None else {}
        if self.channels is None and CHANNELS in fixed:
            self.channels = validation.check_int(CHANNELS, fixed[CHANNELS].value, low=1)
        if self.start is None and CELL in fixed:
            self.start = parse_cell(fixed[CELL].value)
        if self.channels is None or self.start is None:
            raise ValueError(
                f"PathLevelSearch needs the cell's channels and start cell: pass channels= "
                f"and start=, or search a space with the Fixed hyperparameters {CHANNELS!r} "
                f"and {CELL!r} (tfnas.spaces.PathLevelSpace). Received: channels="
                f"{self.channels!r}, start={self.start!r}"
            )
        check_cell(self.start, self.channels)

    def parents(self, everyone: bool = False) -> list[str]:
        """The cells parents are drawn from: the `pool_size` best evaluated (ties: earlier),
        or the start cell once evaluated with `parent_selection="start"`; `everyone`: all
        evaluated cells, best first."""
        order = sorted(range(len(self.pool)), key=lambda i: (-self.pool[i][1], i))
        ranked = [self.pool[i][0] for i in order]
        if everyone:
            return ranked
        if self.parent_selection == "start":
            start = cell_key(self.start) if self.start is not None else None
            return [key for key in ranked if key == start]
        return ranked[: self.pool_size]

    def propose(
        self, space: encoding.SpaceEncoding | None, is_seen: base.IsSeen
    ) -> encoding.Values | None:
        self._configure(space)
        start_key = cell_key(self.start)
        if start_key not in self.proposed:
            return self._proposal(start_key, "", [], None)
        parents = self.parents()
        if not parents:
            return None  # The start cell is running, or failed: nothing to transform.
        seen = set(self.proposed)

        def known(parent: str) -> Callable[[encoding.Values], bool]:
            def check(values: encoding.Values) -> bool:
                child = cell_key(self.space_of(parent).replay(values).child)
                return child == parent or child in seen

            return check

        for _ in range(self.max_parent_tries):
            parent = parents[int(self.rng.integers(len(parents)))]
            values = self.controller.propose(self.space_of(parent), known(parent))
            if values is not None:
                rollout = self.space_of(parent).replay(values)
                return self._proposal(
                    cell_key(rollout.child), parent, rollout.transformations, values
                )
        if self.parent_selection == "pool":
            parents = self.parents(everyone=True)
        for _ in range(self.max_parent_tries * self.controller.max_resamples):
            parent = parents[int(self.rng.integers(len(parents)))]
            values = self.space_of(parent).sample(self.rng)
            if not known(parent)(values):
                rollout = self.space_of(parent).replay(values)
                return self._proposal(
                    cell_key(rollout.child), parent, rollout.transformations, None
                )
        return None

    def _proposal(self, child: str, parent: str, transforms, decisions) -> encoding.Values:
        self.proposed.append(child)
        self.pending[child] = {"parent": parent, "decisions": decisions}
        return {CELL: child, PARENT_CELL: parent, TRANSFORMS: json.dumps(transforms)}

    def observe(
        self, space: encoding.SpaceEncoding | None, values: encoding.Values, reward: float | None
    ) -> None:
        key = values.get(CELL)
        if key is None:
            return
        self._configure(space)
        if reward is not None:
            self.pool.append([key, float(reward)])
        proposal = self.pending.pop(key, None)
        if proposal is None or proposal["decisions"] is None:
            return
        shaped = None if reward is None else shape_reward(float(reward), self.reward_transform)
        parent = proposal["parent"]
        self.controller.observe(self.space_of(parent), proposal["decisions"], shaped)

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(),
            "controller": self.controller.get_state(),
            "proposed": list(self.proposed),
            "pool": [list(item) for item in self.pool],
            "pending": copy.deepcopy(self.pending),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.controller.set_state(state["controller"])
        self.proposed = list(state["proposed"])
        self.pool = [[key, float(reward)] for key, reward in state["pool"]]
        self.pending = copy.deepcopy(state["pending"])
