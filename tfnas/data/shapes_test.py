import numpy as np
import pytest

from tfnas import data
from tfnas.data import shapes


def test_shapes_generate_is_deterministic_and_in_range():
    x, masks = shapes.generate(12, size=16, seed=3)
    assert x.shape == (12, 16, 16, 3) and x.dtype == np.float32
    assert masks.shape == (12, 16, 16) and masks.dtype == np.int32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(np.unique(masks)) <= set(range(shapes.NUM_CLASSES))
    # Every image has at least one shape and some background.
    assert np.all((masks > 0).any(axis=(1, 2)))
    x2, masks2 = shapes.generate(12, size=16, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(masks, masks2)
    _, masks3 = shapes.generate(12, size=16, seed=4)
    assert not np.array_equal(masks, masks3)


def test_shapes_masks_mark_the_shape_pixels():
    # Without noise, pixels of one mask class in one image share the shape's colour.
    x, masks = shapes.generate(20, size=24, seed=0, noise=0.0)
    for image, mask in zip(x, masks):
        for cls in np.unique(mask):
            colours = np.unique(image[mask == cls].round(5), axis=0)
            # Two shapes of one class may appear (different colours), at most three.
            assert len(colours) <= 3
    # All classes occur over the set.
    assert set(np.unique(masks)) == set(range(shapes.NUM_CLASSES))


def test_shapes_load_through_tfnas_data():
    ds = data.load("shapes", seed=1, limit=50)
    assert ds.name == "shapes" and ds.num_classes == 4 and ds.input_shape == (32, 32, 3)
    assert ds.x_train.shape == (50, 32, 32, 3) and ds.y_train.shape == (50, 32, 32)
    assert len(ds.x_val) == len(ds.x_test) == 45
    assert shapes.is_segmentation(ds)
    assert not shapes.is_segmentation(data.load("digits"))
    np.testing.assert_array_equal(ds.x_val, data.load("shapes", seed=1).x_val)


def test_shapes_errors_name_the_argument():
    with pytest.raises(ValueError, match="Received: num_images=0"):
        shapes.generate(0)
    with pytest.raises(ValueError, match="Received: size=4"):
        shapes.generate(2, size=4)
    with pytest.raises(ValueError, match="Received: noise=-1"):
        shapes.generate(2, noise=-1)
    with pytest.raises(ValueError, match="Received: limit=0"):
        shapes.splits(limit=0)
    with pytest.raises(ValueError, match="Received: test_fraction=1.5"):
        shapes.splits(test_fraction=1.5)
    with pytest.raises(ValueError, match="leave no training images. Received: num_images=4"):
        shapes.splits(num_images=4, validation_fraction=0.5, test_fraction=0.4)
