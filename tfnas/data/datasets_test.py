import keras
import numpy as np
import pytest
from sklearn import datasets as sk_datasets

from tfnas import data
from tfnas.data import datasets


@pytest.fixture(scope="module")
def digits() -> data.Dataset:
    return data.load("digits")


def _splits(ds: data.Dataset):
    return [(ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)]


def test_digits_shapes_dtypes_and_ranges(digits):
    assert digits.name == "digits"
    assert digits.input_shape == (8, 8, 1)
    assert digits.num_classes == 10
    sizes = [len(y) for _, y in _splits(digits)]
    assert sum(sizes) == 1797
    assert sizes[1] == pytest.approx(0.15 * 1797, abs=2)
    assert sizes[2] == pytest.approx(0.15 * 1797, abs=2)
    for x, y in _splits(digits):
        assert x.shape == (len(y), 8, 8, 1)
        assert x.dtype == np.float32 and y.dtype == np.int32
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert set(np.unique(y)) == set(range(10))  # stratified: every class in every split
    assert digits.x_train.max() == 1.0


def test_digits_splits_are_disjoint_and_complete():
    y = sk_datasets.load_digits().target
    train, val, test = datasets.split_indices(y, 0.15, 0.15, seed=0)
    assert not set(train) & set(val)
    assert not set(train) & set(test)
    assert not set(val) & set(test)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val, test])), np.arange(len(y)))


def test_digits_rows_are_disjoint(digits):
    # All 1,797 digits images are distinct, so rows identify examples.
    rows = [{x.tobytes() for x in xs} for xs, _ in _splits(digits)]
    assert sum(len(r) for r in rows) == 1797
    assert len(set.union(*rows)) == 1797


def test_digits_values_match_sklearn(digits):
    original = sk_datasets.load_digits()
    lookup = {
        (img / 16.0).astype(np.float32).tobytes(): t
        for img, t in zip(original.images, original.target)
    }
    for x, y in zip(digits.x_test, digits.y_test):
        assert lookup[x[..., 0].tobytes()] == y


def test_same_seed_same_arrays(digits):
    again = data.load("digits", seed=0)
    for (x1, y1), (x2, y2) in zip(_splits(digits), _splits(again)):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


def test_different_seed_different_split(digits):
    other = data.load("digits", seed=1)
    assert other.x_test.shape == digits.x_test.shape
    assert not np.array_equal(other.x_test, digits.x_test)


def test_custom_fractions_and_limit():
    ds = data.load("digits", validation_fraction=0.2, test_fraction=0.1, limit=100)
    assert len(ds.y_train) == 100
    assert set(np.unique(ds.y_train)) == set(range(10))
    assert len(ds.y_val) == pytest.approx(0.2 * 1797, abs=2)
    assert len(ds.y_test) == pytest.approx(0.1 * 1797, abs=2)
    assert len(data.load("digits", limit=5).y_train) == 5  # fewer than classes: not stratified
    assert len(data.load("digits", limit=10**6).y_train) == len(data.load("digits").y_train)


def test_as_tf_data(digits):
    train = digits.as_tf_data("train", batch_size=64)
    x, y = next(iter(train))
    assert x.shape == (64, 8, 8, 1) and y.shape == (64,)
    assert x.dtype.name == "float32" and y.dtype.name == "int32"

    test = list(digits.as_tf_data("test", batch_size=100))
    assert sum(len(b[1]) for b in test) == len(digits.y_test)
    # Not shuffled by default: same order as the numpy split.
    np.testing.assert_array_equal(np.concatenate([b[1] for b in test]), digits.y_test)

    val = digits.as_tf_data("validation", batch_size=1000, shuffle=True, seed=3)
    labels = next(iter(val))[1].numpy()
    assert sorted(labels) == sorted(digits.y_val)


def test_as_tf_data_errors(digits):
    with pytest.raises(
        ValueError,
        match=r"Unknown split: 'dev'\. Received: split='dev'; "
        r"expected one of \['test', 'train', 'val', 'validation'\]\.",
    ):
        digits.as_tf_data("dev", batch_size=8)
    with pytest.raises(ValueError, match=r"`batch_size` must be >= 1\. Received: batch_size=0\."):
        digits.as_tf_data("train", batch_size=0)


def test_unknown_dataset():
    with pytest.raises(
        ValueError,
        match=r"Unknown dataset: 'foo'\. Received: name='foo'; "
        r"expected one of \['cifar10', 'digits', 'fashion_mnist', 'mnist', 'shapes'\]\.",
    ):
        data.load("foo")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"validation_fraction": 0.0},
            r"`validation_fraction` must be in \(0, 1\)\. Received: validation_fraction=0\.0\.",
        ),
        (
            {"test_fraction": 1.0},
            r"`test_fraction` must be in \(0, 1\)\. Received: test_fraction=1\.0\.",
        ),
        (
            {"validation_fraction": 0.5, "test_fraction": 0.5},
            r"`validation_fraction \+ test_fraction` must be < 1 to leave training data\. "
            r"Received: validation_fraction=0\.5, test_fraction=0\.5\.",
        ),
        ({"limit": 0}, r"`limit` must be None or >= 1\. Received: limit=0\."),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.load("digits", **kwargs)


def test_datasets_registry():
    assert sorted(data.DATASETS) == ["cifar10", "digits", "fashion_mnist", "mnist", "shapes"]
    assert data.DATASETS["cifar10"].input_shape == (32, 32, 3)
    with pytest.raises(TypeError):
        data.DATASETS["other"] = data.DATASETS["digits"]


def _fake_load_data(n_train, n_test, image_shape, label_shape):
    rng = np.random.default_rng(0)

    def load_data():
        def part(n):
            x = rng.integers(0, 256, (n, *image_shape), dtype=np.uint8)
            x[0] = 255  # so the maximum after scaling is exactly 1
            y = (np.arange(n) % 10).astype(np.uint8).reshape(n, *label_shape)
            return x, y

        return part(n_train), part(n_test)

    return load_data


@pytest.mark.parametrize(
    "name, image_shape, label_shape, input_shape",
    [
        ("mnist", (28, 28), (), (28, 28, 1)),
        ("fashion_mnist", (28, 28), (), (28, 28, 1)),
        ("cifar10", (32, 32, 3), (1,), (32, 32, 3)),
    ],
)
def test_keras_datasets(monkeypatch, name, image_shape, label_shape, input_shape):
    monkeypatch.setattr(
        getattr(keras.datasets, name),
        "load_data",
        _fake_load_data(200, 40, image_shape, label_shape),
    )
    ds = data.load(name, validation_fraction=0.1)
    assert ds.input_shape == input_shape and ds.num_classes == 10
    assert len(ds.y_train) == 180 and len(ds.y_val) == 20 and len(ds.y_test) == 40
    for x, y in _splits(ds):
        assert x.shape == (len(y), *input_shape) and x.dtype == np.float32
        assert y.shape == (len(y),) and y.dtype == np.int32
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert set(np.unique(y)) == set(range(10))
    assert ds.x_test.max() == 1.0
    # The official test set is used as is, in order.
    np.testing.assert_array_equal(ds.y_test, np.arange(40) % 10)

    limited = data.load(name, validation_fraction=0.1, limit=50)
    assert len(limited.y_train) == 50 and len(limited.y_test) == 40
    assert set(np.unique(limited.y_train)) == set(range(10))
