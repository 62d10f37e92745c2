from pathlib import Path

from setuptools import find_packages, setup

about = {}
exec((Path(__file__).parent / "keras_patterns" / "__init__.py").read_text().split("\nfrom ")[0], about)

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
    packages=find_packages(include=["keras_patterns", "keras_patterns.*"]),
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.0",
        "numpy>=1.23",
        "h5py>=3.7",
        "pillow>=9.0",
    ],
    extras_require={"test": ["pytest>=7"]},
    entry_points={},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: Keras",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
