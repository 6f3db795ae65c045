"""A generated semantic segmentation task: random shapes on noisy backgrounds.

Every image holds one to three filled shapes (circle, square, triangle) of random colour,
size and position on a background of random colour with Gaussian noise; the mask gives every
pixel's class (0 background, 1 circle, 2 square, 3 triangle; a later shape covers an earlier
one). Everything comes from one `numpy` generator seeded by `seed`: no files, no network. It
exists so that the segmentation search of Auto-DeepLab (`tfnas.spaces.auto_deeplab`) runs
anywhere; `tfnas.data.load("shapes")` (or `tfnas.data.datasets.load_shapes` for another
size or count) returns it as a `tfnas.data.Dataset` whose labels are the masks.

Example:

```python
data = tfnas.data.load("shapes")
data.x_train.shape, data.y_train.shape  # (210, 32, 32, 3), (210, 32, 32)
```
"""

from __future__ import annotations

import numpy as np

CLASSES = ("background", "circle", "square", "triangle")
NUM_CLASSES = len(CLASSES)
DEFAULT_SIZE = 32  # Divisible by 32, the coarsest rate of Auto-DeepLab's trellis.


def _check_int(name: str, value: object, low: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"`{name}` must be an int >= {low}. Received: {name}={value!r}")
    return int(value)


def generate(
    num_images: int, size: int = DEFAULT_SIZE, seed: int = 0, noise: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Generates `num_images` images and their masks.

    Args:
        num_images: How many images.
        size: Height and width in pixels (at least 8).
        seed: Seed of the generator; the same seed gives identical arrays.
        noise: Standard deviation of the Gaussian pixel noise (before clipping to [0, 1]).

    Returns:
        `(x, masks)`: float32 images `(num_images, size, size, 3)` in [0, 1] and int32 masks
        `(num_images, size, size)` with values in `0..NUM_CLASSES - 1`.

    Raises:
        ValueError: for `num_images` < 1, `size` < 8 or a negative `noise`.
    """
    num_images = _check_int("num_images", num_images, 1)
    size = _check_int("size", size, 8)
    if not noise >= 0:
        raise ValueError(f"`noise` must be >= 0. Received: noise={noise!r}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    x = np.empty((num_images, size, size, 3), dtype=np.float32)
    masks = np.zeros((num_images, size, size), dtype=np.int32)
    for i in range(num_images):
        image = np.broadcast_to(rng.uniform(0, 1, 3), (size, size, 3)).copy()
        for _ in range(rng.integers(1, 4)):
            cls = int(rng.integers(1, NUM_CLASSES))
            radius = rng.uniform(0.12, 0.3) * size
            cy, cx = rng.uniform(radius, size - radius, 2)
            if cls == 1:
                inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
            elif cls == 2:
                inside = (np.abs(yy - cy) <= radius) & (np.abs(xx - cx) <= radius)
            else:  # an upright isosceles triangle in the box of half-side `radius`
                top = cy - radius
                height = (yy - top) / (2 * radius)
                inside = (height >= 0) & (height <= 1) & (np.abs(xx - cx) <= radius * height)
            colour = rng.uniform(0, 1, 3)
            # Keep the shape visible against the background.
            while np.abs(colour - image[0, 0]).max() < 0.3:
                colour = rng.uniform(0, 1, 3)
            image[inside] = colour
            masks[i][inside] = cls
        image += rng.normal(0, noise, image.shape)
        x[i] = np.clip(image, 0, 1)
    return x, masks


def splits(
    *,
    seed: int = 0,
    num_images: int = 300,
    size: int = DEFAULT_SIZE,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.15,
    limit: int | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """The shapes task split into `(x, masks)` for train, validation and test.

    `tfnas.data.load("shapes")` wraps them in a `Dataset` (its labels are the masks).

    Args:
        seed: Seed of the images and of the split.
        num_images: Images in all splits together.
        size: Height and width.
        validation_fraction: Fraction of the images for validation.
        test_fraction: Fraction of the images for test.
        limit: If set, keep at most this many training images.

    Returns:
        `((x_train, y_train), (x_val, y_val), (x_test, y_test))`.

    Raises:
        ValueError: for fractions that leave no training images, or a bad `limit`.
    """
    for arg, value in (
        ("validation_fraction", validation_fraction),
        ("test_fraction", test_fraction),
    ):
        if not 0 < value < 1:
            raise ValueError(f"`{arg}` must be in (0, 1). Received: {arg}={value!r}.")
    if limit is not None:
        _check_int("limit", limit, 1)
    num_images = _check_int("num_images", num_images, 1)
    n_val = max(1, round(num_images * validation_fraction))
    n_test = max(1, round(num_images * test_fraction))
    if n_val + n_test >= num_images:
        raise ValueError(
            "The splits leave no training images. Received: "
            f"num_images={num_images}, validation_fraction={validation_fraction!r}, "
            f"test_fraction={test_fraction!r}."
        )
    x, masks = generate(num_images, size=size, seed=seed)
    order = np.random.default_rng(seed).permutation(num_images)
    val, test, train = np.split(order, [n_val, n_val + n_test])
    if limit is not None:
        train = train[:limit]
    return tuple((x[i], masks[i]) for i in (train, val, test))


def is_segmentation(dataset) -> bool:
    """Whether `dataset`'s labels are per-pixel masks (one label per image pixel)."""
    return dataset.y_train.shape[1:] == tuple(dataset.input_shape[:2])
