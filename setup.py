from pathlib import Path

from setuptools import find_packages, setup

DEMO = ["scikit-learn>=1.3", "scikit-image>=0.21", "mtcnn==1.0.0", "lz4>=4.3", "joblib>=1.3",
        "matplotlib>=3.7"]

about = {}
exec((Path(__file__).parent / "keras_patterns" / "version.py").read_text(), about)

setup(
    name="keras-patterns",
    version=about["__version__"],
    description=(
        "PatternNet, PatternAttribution, LRP and gradient methods that explain Keras 3 models"
    ),
    long_description=(Path(__file__).parent / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    # one top-level package; the scripts in applications/ are run from a clone, not installed
    packages=find_packages(include=["keras_patterns", "keras_patterns.*"]),
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.0",
        "numpy>=1.23",
        "h5py>=3.7",
        "pillow>=9.0",
    ],
    extras_require={
        # real networks and data for keras_patterns.zoo (the demo, `keras-patterns
        # reproduce` and the scripts in applications/), all offline: the digits
        # ship with scikit-learn, LFW faces with scikit-image, the trained MTCNN face
        # networks (MIT licence) with mtcnn (whose weight files need lz4 and joblib);
        # matplotlib draws the plots of `keras-patterns reproduce`
        "demo": DEMO,
        # the tests run the applications too; hypothesis draws random architectures; ruff
        # is the project's linter (ruff.toml; .ci/run runs it); scipy's filters and rank
        # correlations are oracles of the evaluation tests; nbclient runs the notebooks;
        # tensorboard checks the callback's image summaries; mkdocs and mkdocstrings build
        # the API reference from the docstrings (static: nothing is imported, so the build
        # takes seconds); keras-hub builds the transformer backbones (BERT, ViT, GPT-2, ...)
        # from small configs, offline, for the tests of custom-layer tracing
        "test": ["pytest>=7", "hypothesis>=6.80", "ruff>=0.5", "scipy>=1.10", "nbclient>=0.7",
                 "nbformat>=5", "ipykernel>=6", "tensorboard>=2.16", "mkdocs>=1.6",
                 "mkdocstrings[python]>=0.26", "keras-hub>=0.32"] + DEMO,
    },
    entry_points={"console_scripts": ["keras-patterns = keras_patterns.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: Keras",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
