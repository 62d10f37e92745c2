"""MTCNN's face detector ONet explained on LFW faces and non-faces, from the command line.

The networks (rebuilt as Keras functional models with the weights shipped in the ``mtcnn``
package), the data (scikit-image's LFW subset) and the explanation loop are
``keras_patterns.zoo.faces``; its docstring describes the networks, the input convention
and the measured scores.

Command line (with keras-patterns and its demo extra installed)::

    python applications/faces.py --out DIR [--methods NAME ...] [--n N] [--fit-n N]

writes one ``<method>.npy`` per applicable method, the explained inputs and labels
(``images.npy``, ``labels.npy``) and ``faces.json`` (p(face) statistics, refusals,
timings).
"""

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import keras_patterns
from keras_patterns.zoo.faces import (
    FACE_CLASS,
    FACE_OUTPUT,
    build_onet,
    explain,
    face_data,
    face_probability,
    pick,
    score_summary,
)


def main(argv=None):
    """Command line: explain ONet on LFW crops and write the arrays and a summary.

    Args:
        argv: arguments (default ``sys.argv[1:]``).

    Returns:
        int exit status (0).
    """
    parser = argparse.ArgumentParser(
        description="Explain MTCNN's ONet (trained weights from the mtcnn package) on LFW "
                    "faces and non-faces; writes <method>.npy files and faces.json.")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                        help="analyzer names (default: all but the generic 'lrp' and "
                             "'lrp.alpha_beta')")
    parser.add_argument("--n", type=int, default=200,
                        help="images to explain, half faces and half non-faces (default 200)")
    parser.add_argument("--fit-n", type=int, default=200,
                        help="images the patterns are fitted on (default all 200)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # one analyzer per method: retracing notices
    if args.methods:
        unknown = sorted(set(args.methods) - set(keras_patterns.list_analyzers()))
        if unknown:
            parser.error(f"unknown method(s) {', '.join(unknown)}; available: "
                         f"{', '.join(keras_patterns.list_analyzers())}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = build_onet()
    build_s = time.perf_counter() - t0
    images, labels = face_data(48)
    scores = score_summary(face_probability(model, images), labels)
    chosen = pick(labels, args.n)
    fit_chosen = pick(labels, args.fit_n)
    with warnings.catch_warnings():  # the face softmax is stripped on purpose
        warnings.filterwarnings("ignore", message="The model ends in a softmax")
        result = explain(args.methods, images[chosen], model, images[fit_chosen],
                         batch_size=args.batch_size)

    np.save(out / "images.npy", images[chosen])
    np.save(out / "labels.npy", labels[chosen])
    files = {}
    for name, heatmap in result.maps.items():
        files[name] = f"{name}.npy"
        np.save(out / files[name], heatmap.astype("float32"))
    summary = {
        "model": "MTCNN ONet (weights of the mtcnn 1.0.0 package)",
        "data": "skimage.data.lfw_subset, 48x48x3, (v - 127.5) / 128; label 1 = face",
        "p_face": scores,
        "explained": {"n": len(chosen), "n_faces": int(labels[chosen].sum()),
                      "fit_n": len(fit_chosen), "output_index": FACE_OUTPUT,
                      "neuron_selection": FACE_CLASS, "explains": "the face logit"},
        "methods": {name: {"file": files[name], "seconds": result.seconds[name]}
                    for name in result.maps},
        "refused": result.refused,
        "build_seconds": build_s,
    }
    (out / "faces.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"p(face): faces {scores['faces_mean']:.3f}, non-faces {scores['nonfaces_mean']:.3f}, "
          f"accuracy {scores['accuracy']:.3f}")
    for name, s in result.seconds.items():
        print(f"{name:40s} fit {s['fit']:6.2f} s  analyze {s['analyze']:6.2f} s")
    for name, why in result.refused.items():
        print(f"{name:40s} refused: {why}")
    print(f"wrote {len(files)} explanation(s) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
