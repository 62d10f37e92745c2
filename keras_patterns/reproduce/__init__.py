"""`keras-patterns reproduce`: the paper's experiments on data available offline.

    from keras_patterns.reproduce import reproduce
    reproduce("report")            # report/report.md and its figures

Sections (paper, Kindermans et al. ICLR 2018): Fig. 2 (the linear toy), Fig. 3 (the signal
quality rho(S) per layer), Fig. 4 (image degradation), Fig. 6 (images x methods), and two
measurements the paper did not make: a benchmark whose signal is known and sanity checks.
The networks are a CNN trained on scikit-learn's digits and MTCNN's pretrained ONet on
scikit-image's LFW faces (`keras_patterns.zoo`). Every number in the report is measured in the
run; where an ordering differs from the paper's, the report says so.
"""

import time
import warnings
from pathlib import Path

from ..zoo import DEMO_MODULES, check_installed
from . import sections


def reproduce(out, quick=False, seed=0, verbose=1):
    """Run the experiments and write `out/report.md` with its figures.

    Args:
        out: the output folder (created).
        quick: a small setting (fewer images, methods and steps), for a test.
        seed: seeds the data splits, training and baselines.
        verbose: 1 prints each section's time.

    Returns:
        The path of report.md.

    Raises:
        MissingExtraError: a module of the demo extra (scikit-learn, scikit-image, mtcnn,
            joblib, lz4, matplotlib) is not installed; checked before anything runs.
    """
    check_installed(DEMO_MODULES, "keras-patterns reproduce")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    setting = sections.Setting(quick=quick, seed=seed)
    start = time.perf_counter()
    parts = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ends in a softmax.*")
        warnings.filterwarnings("ignore", message=".*zero pattern.*")
        warnings.filterwarnings("ignore", message=".*signal_quality.*")
        for name, run in sections.SECTIONS:
            t0 = time.perf_counter()
            parts.append(run(setting, out))
            if verbose:
                print(f"reproduce: {name} in {time.perf_counter() - t0:.0f} s", flush=True)
    head = sections.header(setting, time.perf_counter() - start)
    path = out / "report.md"
    path.write_text("\n\n".join([head] + parts + [sections.account(setting)]) + "\n")
    if verbose:
        print(f"reproduce: wrote {path} in {time.perf_counter() - start:.0f} s")
    return path
