"""Packaging for tfnas: `pip install .` (or `pip install -e ".[test]"` for development)."""

from setuptools import find_packages, setup

# tensorflow-model-optimization 0.8 pins absl-py~=1.2, so absl stays on 1.x here.
INSTALL_REQUIRES = [
    "tensorflow>=2.21,<2.22",
    "keras>=3.12,<4",
    "keras-tuner>=1.4.7,<1.5",
    "tensorflow-model-optimization>=0.8,<0.9",
    "absl-py>=1.2,<2",
    "ai-edge-litert>=2.0,<3",
    "scikit-learn>=1.4",
    "tensorboard>=2.21,<2.22",
    "matplotlib>=3.8",
    "numpy>=1.26",
]

setup(
    name="tfnas",
    version="0.1.0",
    description="Neural architecture search for Keras 3 and KerasTuner.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tfnas", "tfnas.*"]),
    package_data={"tfnas": ["nasbench/data/*.json"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": ["pytest>=8", "pytest-xdist>=3.5", "ruff>=0.6"]},
    entry_points={
        "console_scripts": [
            "tfnas-search=tfnas.bin.search:console_main",
            "tfnas-train=tfnas.bin.train:console_main",
            "tfnas-export=tfnas.bin.export:console_main",
            "tfnas-latency-table=tfnas.bin.latency_table:console_main",
        ]
    },
)
