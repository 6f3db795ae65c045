"""Dataset loaders: scikit-learn digits (bundled, the default), MNIST, Fashion-MNIST, CIFAR-10,
and the generated "shapes" segmentation task."""

from tfnas.data.datasets import DATASETS, Dataset, DatasetInfo, load

__all__ = ["DATASETS", "Dataset", "DatasetInfo", "load"]
