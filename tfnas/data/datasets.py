"""Image classification (and segmentation) datasets as numpy splits, with a `tf.data` view.

The default, "digits", is scikit-learn's bundled 8x8 digits (1,797 images, no network), split
into stratified train/validation/test sets. "mnist", "fashion_mnist" and "cifar10" come from
`keras.datasets` (downloaded to `~/.keras/datasets` on first use); their official test set is
the test split and the validation split is carved from the official training set.
"shapes" is a generated segmentation task (`tfnas.data.shapes`: labels are per-pixel masks,
`DatasetInfo.task == "segmentation"`).
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from sklearn import datasets as sk_datasets
from sklearn import model_selection

from tfnas.data import shapes


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset before loading it.

    Attributes:
        input_shape: Shape of one image, `(height, width, channels)`.
        num_classes: Number of labels, `0..num_classes - 1`.
        description: One line about the source.
        task: "classification" (labels are class ids) or "segmentation" (labels are
            per-pixel masks of the image size).
    """

    input_shape: tuple[int, int, int]
    num_classes: int
    description: str
    task: str = "classification"


DATASETS = types.MappingProxyType(
    {
        "cifar10": DatasetInfo((32, 32, 3), 10, "CIFAR-10 via keras.datasets (downloads)."),
        "digits": DatasetInfo((8, 8, 1), 10, "scikit-learn digits, bundled (no network)."),
        "fashion_mnist": DatasetInfo(
            (28, 28, 1), 10, "Fashion-MNIST via keras.datasets (downloads)."
        ),
        "mnist": DatasetInfo((28, 28, 1), 10, "MNIST via keras.datasets (downloads)."),
        "shapes": DatasetInfo(
            (shapes.DEFAULT_SIZE, shapes.DEFAULT_SIZE, 3),
            shapes.NUM_CLASSES,
            "Generated shapes with per-pixel masks, deterministic by seed (no network).",
            task="segmentation",
        ),
    }
)

_SPLITS = {"train": "train", "val": "val", "validation": "val", "test": "test"}


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Train/validation/test splits of an image classification dataset.

    Images are float32 in [0, 1], NHWC; labels are int32 class ids.

    Example:

    ```python
    data = tfnas.data.load("digits")
    model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val))
    train_ds = data.as_tf_data("train", batch_size=64)
    ```

    Attributes:
        x_train: Training images, `(n_train, *input_shape)`.
        y_train: Training labels, `(n_train,)`.
        x_val: Validation images.
        y_val: Validation labels.
        x_test: Test images.
        y_test: Test labels.
        num_classes: Number of classes.
        input_shape: Shape of one image, `(height, width, channels)`.
        name: Dataset name, a key of `DATASETS`.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    input_shape: tuple[int, ...]
    name: str

    def split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Returns `(x, y)` of `split`: "train", "val" (or "validation") or "test"."""
        if split not in _SPLITS:
            raise ValueError(
                f"Unknown split: {split!r}. Received: split={split!r}; "
                f"expected one of {sorted(_SPLITS)}."
            )
        key = _SPLITS[split]
        return getattr(self, f"x_{key}"), getattr(self, f"y_{key}")

    def as_tf_data(
        self, split: str, batch_size: int, shuffle: bool | None = None, seed: int = 0
    ) -> tf.data.Dataset:
        """Returns a batched, prefetched `tf.data.Dataset` of `(image, label)` pairs.

        Args:
            split: "train", "val" (or "validation") or "test".
            batch_size: Examples per batch; the last batch may be smaller.
            shuffle: Whether to reshuffle every epoch. `None` shuffles only "train".
            seed: Shuffle seed.

        Returns:
            The dataset.
        """
        x, y = self.split(split)
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1. Received: batch_size={batch_size}.")
        if shuffle is None:
            shuffle = _SPLITS[split] == "train"
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle:
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def load(
    name: str = "digits",
    *,
    seed: int = 0,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.15,
    limit: int | None = None,
) -> Dataset:
    """Loads a dataset as stratified, deterministic numpy splits.

    Args:
        name: One of `DATASETS`: "digits" (default, no network), "mnist", "fashion_mnist",
            "cifar10", or "shapes" (generated segmentation masks, no network).
        seed: Seed of the splits (and of the `limit` subsample). The same seed gives identical
            arrays.
        validation_fraction: Fraction held out for validation: of all examples for "digits",
            of the official training set for the others.
        test_fraction: Fraction held out for test ("digits" only; the others use their
            official test set, but the value is still validated).
        limit: If set, keep at most this many training examples (a stratified subsample of
            the training split) for quick runs. Validation and test splits are unchanged.

    Returns:
        A `Dataset`.

    Raises:
        ValueError: If `name` is unknown or a fraction or `limit` is out of range.
    """
    if name == "shapes":  # generated segmentation masks, see `load_shapes`
        return load_shapes(
            seed=seed,
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            limit=limit,
        )
    if name not in DATASETS:
        raise ValueError(
            f"Unknown dataset: {name!r}. Received: name={name!r}; expected one of "
            f"{sorted(DATASETS)}."
        )
    for arg, value in (
        ("validation_fraction", validation_fraction),
        ("test_fraction", test_fraction),
    ):
        if not 0 < value < 1:
            raise ValueError(f"`{arg}` must be in (0, 1). Received: {arg}={value!r}.")
    if validation_fraction + test_fraction >= 1:
        raise ValueError(
            "`validation_fraction + test_fraction` must be < 1 to leave training data. "
            f"Received: validation_fraction={validation_fraction!r}, "
            f"test_fraction={test_fraction!r}."
        )
    if limit is not None and limit < 1:
        raise ValueError(f"`limit` must be None or >= 1. Received: limit={limit!r}.")

    info = DATASETS[name]
    if name == "digits":
        x, y = _load_digits()
        train, val, test = split_indices(y, validation_fraction, test_fraction, seed)
        splits = [(x[i], y[i]) for i in (train, val, test)]
    else:
        (x, y), test_split = _LOADERS[name]()
        train, val = model_selection.train_test_split(
            np.arange(len(y)), test_size=validation_fraction, stratify=y, random_state=seed
        )
        splits = [(x[train], y[train]), (x[val], y[val]), test_split]

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = splits
    if limit is not None and limit < len(y_train):
        keep = _stratified_subsample(y_train, limit, seed)
        x_train, y_train = x_train[keep], y_train[keep]
    return Dataset(
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        num_classes=info.num_classes,
        input_shape=info.input_shape,
        name=name,
    )


def load_shapes(
    *, seed: int = 0, num_images: int = 300, size: int = shapes.DEFAULT_SIZE, **kwargs
) -> Dataset:
    """The generated segmentation task of `tfnas.data.shapes` (labels: int32 masks).

    Args:
        seed: Seed of the images and of the split.
        num_images: Images in all splits together.
        size: Height and width.
        **kwargs: `validation_fraction`, `test_fraction`, `limit` of `shapes.splits`.
    """
    train, val, test = shapes.splits(seed=seed, num_images=num_images, size=size, **kwargs)
    return Dataset(*train, *val, *test, shapes.NUM_CLASSES, (size, size, 3), "shapes")


def split_indices(
    y: np.ndarray, validation_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Splits `arange(len(y))` into stratified train, validation and test indices.

    Args:
        y: Labels to stratify on.
        validation_fraction: Fraction of all examples for validation.
        test_fraction: Fraction of all examples for test.
        seed: `random_state` of both splits.

    Returns:
        `(train, val, test)` index arrays; disjoint, and together `arange(len(y))`.
    """
    indices = np.arange(len(y))
    rest, test = model_selection.train_test_split(
        indices, test_size=test_fraction, stratify=y, random_state=seed
    )
    # The second split sees only `rest`, so rescale to keep validation a fraction of all data.
    train, val = model_selection.train_test_split(
        rest,
        test_size=validation_fraction / (1 - test_fraction),
        stratify=y[rest],
        random_state=seed,
    )
    return train, val, test


def _stratified_subsample(y: np.ndarray, size: int, seed: int) -> np.ndarray:
    num_classes = len(np.unique(y))
    keep, _ = model_selection.train_test_split(
        np.arange(len(y)),
        train_size=size,
        # Stratifying needs at least one example per class.
        stratify=y if size >= num_classes else None,
        random_state=seed,
    )
    return keep


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    digits = sk_datasets.load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]
    return x, digits.target.astype(np.int32)


def _keras_loader(module_name: str) -> Callable[[], tuple]:
    def load_data() -> tuple:
        # Looked up at call time so tests can monkeypatch `keras.datasets.<name>.load_data`.
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, module_name).load_data()
        return _prepare(x_train, y_train), _prepare(x_test, y_test)

    return load_data


def _prepare(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float32) / 255.0
    if x.ndim == 3:  # grayscale (N, H, W)
        x = x[..., np.newaxis]
    return x, np.asarray(y).reshape(-1).astype(np.int32)  # cifar labels are (N, 1)


_LOADERS = {name: _keras_loader(name) for name in ("mnist", "fashion_mnist", "cifar10")}
