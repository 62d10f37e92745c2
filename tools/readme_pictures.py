"""Draw the pictures README.md shows (docs/digits.png, docs/faces.png, docs/text.png): the
demo's two grids with a few methods each, small enough to commit, and the demo's text
picture itself.

    python tools/readme_pictures.py
"""

import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import keras_patterns as kp  # noqa: E402
from applications.digits import explain as explain_digits  # noqa: E402
from keras_patterns.cli.demo import _explain_text  # noqa: E402
from keras_patterns.zoo import digits, faces  # noqa: E402

METHODS = ("gradient", "guided_backprop", "pattern.net", "lrp.epsilon",
           "pattern.attribution", "deep_taylor")
FACE_METHODS = ("gradient", "smoothgrad", "pattern.net", "lrp.epsilon",
                "pattern.attribution", "lrp.sequential_preset_a_flat")


def main():
    warnings.simplefilter("ignore")
    data = digits.load_digits_data(seed=0)
    model, _ = digits.train_cnn(seed=0, data=data)
    x_train, _, x_test, y_test = data
    maps = explain_digits(model, x_test[:4], METHODS, fit_images=x_train)
    kp.visualize.grid(x_test[:4], maps, row_labels=[str(y) for y in y_test[:4]],
                      path=ROOT / "docs" / "digits.png", cell=56)
    onet = faces.build_onet()
    images, labels = faces.face_data()
    chosen = faces.pick(labels, 4)
    result = faces.explain(FACE_METHODS, images[chosen], onet, fit_images=images,
                           method_kwargs={"smoothgrad": {"augment_by_n": 16}})
    kp.visualize.grid((images[chosen] + 1) / 2, result.maps, path=ROOT / "docs" / "faces.png",
                      row_labels=["face" if y else "other" for y in labels[chosen]], cell=64)
    print("wrote docs/digits.png docs/faces.png", np.round(faces.face_probability(
        onet, images[chosen]), 3))
    _explain_text(ROOT / "docs", 3)  # docs/text.png (and text.html, not committed)
    (ROOT / "docs" / "text.html").unlink()


if __name__ == "__main__":
    main()
