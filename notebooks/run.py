"""Executes notebooks with nbclient and saves them with their outputs.

    python notebooks/run.py                          # every notebook, in place
    python notebooks/run.py notebooks/faces.ipynb    # one of them
    python notebooks/run.py notebooks/quickstart.ipynb --out /tmp/executed.ipynb

Each notebook runs in a fresh kernel of this Python interpreter (``sys.executable``), with
the notebook's folder as working directory and the repository root first on ``PYTHONPATH``,
so the checkout the notebook sits in is the one it imports. A cell that raises stops the
run with ``nbclient.exceptions.CellExecutionError`` and nothing is written. The test
(``tests/test_notebooks.py``) calls :func:`execute` on temporary copies.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NOTEBOOKS = (HERE / "quickstart.ipynb", HERE / "faces.ipynb", HERE / "evaluation.ipynb",
             HERE / "transformers.ipynb")
KERNEL = "python3"
#: names jupyter_client replaces by sys.executable when it starts a kernel
_PYTHON_NAMES = {"python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2]}


def _runs_this_interpreter(argv):
    if not argv:
        return False
    if argv[0] in _PYTHON_NAMES:
        return True
    try:
        return os.path.samefile(argv[0], sys.executable)
    except OSError:
        return False


@contextmanager
def _kernel_for_this_interpreter():
    """Makes the kernel named ``KERNEL`` start ``sys.executable``.

    Where the kernelspec Jupyter finds under that name already does (the usual case inside a
    virtual environment with ipykernel), nothing changes; otherwise a temporary kernelspec
    for ``sys.executable`` is put first on ``JUPYTER_PATH`` for the duration.
    """
    try:
        argv = KernelSpecManager().get_kernel_spec(KERNEL).argv
    except NoSuchKernel:
        argv = None
    if _runs_this_interpreter(argv):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="kp-kernel-") as tmp:
        spec_dir = Path(tmp) / "kernels" / KERNEL
        spec_dir.mkdir(parents=True)
        spec = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"Python ({sys.executable})",
            "language": "python",
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        saved = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (tmp, saved) if p)
        try:
            yield
        finally:
            if saved is None:
                del os.environ["JUPYTER_PATH"]
            else:
                os.environ["JUPYTER_PATH"] = saved


def execute(path, out=None, timeout=300, cwd=None):
    """Runs every cell of the notebook at ``path`` in a fresh kernel.

    Args:
        path: the notebook to run.
        out: where to write the executed notebook (``path`` itself to store the outputs in
            place); None writes nothing.
        timeout: seconds each cell may take.
        cwd: working directory of the kernel (default: the folder of ``path``).

    Returns:
        ``(notebook, seconds)``: the executed ``nbformat`` notebook and the wall-clock time
        of the run, kernel start included.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell raised (nothing is written).
        nbclient.exceptions.CellTimeoutError: a cell ran longer than ``timeout``.
    """
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=timeout,
        record_timing=False,
        resources={"metadata": {"path": str(cwd or path.parent)}},
    )
    start = time.perf_counter()
    with _kernel_for_this_interpreter():
        client.execute(env=env)
    seconds = time.perf_counter() - start
    if out is not None:
        nbformat.write(nb, out)
    return nb, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Execute notebooks and save them with their outputs (default: in place)."
    )
    parser.add_argument("notebooks", nargs="*", type=Path, default=list(NOTEBOOKS))
    parser.add_argument("--out", type=Path, help="output file (only with one notebook)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    args = parser.parse_args(argv)
    if args.out is not None and len(args.notebooks) != 1:
        parser.error("--out needs exactly one notebook")
    for path in args.notebooks:
        out = args.out if args.out is not None else path
        _, seconds = execute(path, out, timeout=args.timeout)
        print(f"{path}: executed in {seconds:.1f} s, written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
