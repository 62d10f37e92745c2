"""The wheel installs one top-level package, keras_patterns: the scripts in applications/ and
the tests stay in the repository.

Oracle: the wheel's own metadata, top_level.txt and RECORD (the list of every file it
installs), read from a wheel built from a clean copy of the sources (so that no earlier
build folder leaks into it). About 3 s.
"""

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("setup.py", "setup.cfg", "README.md", "keras_patterns", "applications")


def test_the_wheel_installs_keras_patterns_alone(tmp_path):
    # --no-build-isolation builds with the setuptools of this environment
    assert importlib.util.find_spec("setuptools") is not None, "setuptools is not installed"
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, source / name)
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
         "--no-build-isolation", "-w", str(wheels), "-q"],
        capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = wheels.glob("keras_patterns-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert archive.read(top_level).decode().split() == ["keras_patterns"]
        (record,) = [n for n in names if n.endswith(".dist-info/RECORD")]
        installed = [line.split(",")[0] for line in archive.read(record).decode().splitlines()]
    roots = {path.split("/")[0] for path in installed}
    info = top_level.split("/")[0]
    assert roots == {"keras_patterns", info}, sorted(roots)
    # the package's subpackages are all in it, the zoo included
    for module in ("keras_patterns/__init__.py", "keras_patterns/zoo/__init__.py",
                   "keras_patterns/zoo/faces.py", "keras_patterns/images.py",
                   "keras_patterns/cli/demo.py"):
        assert module in installed, module
    assert not any(path.startswith(("applications/", "tests/")) for path in installed)
