"""`python -m keras_patterns`: explain a small convolutional network with every method.

Until the `keras-patterns` command lands, this is the quick check that an installation
works: it builds a small CNN (random weights), explains four images with every analyzer and
prints one line per method. A method that fails prints its error on its line, and the exit
status is 1. The pattern methods use patterns fitted once on 64 random images; the methods
that need parameters get the values in `DEMO_ARGUMENTS`.
"""

import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: Parameters the demo passes to the methods that cannot run on the model alone.
DEMO_ARGUMENTS = {
    "lrp": {"rule": "epsilon"},
    "lrp.alpha_beta": {"alpha": 2.0, "beta": 1.0},
    "lrp.alpha_beta_IB": {"alpha": 2.0, "beta": 1.0},
    "lrp.bounded": {"low": 0.0, "high": 1.0},  # the range of the random images
    "deep_taylor.bounded": {"low": 0.0, "high": 1.0},  # the range of the random images
    "lrp.sequential_preset_b_flat_until_idx": {"until_layer_idx": 1},
}


def main(argv=None):
    import keras
    import numpy as np

    import keras_patterns as kp

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(8, 3, activation="relu", padding="same"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ],
        name="demo_cnn",
    )
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(4, 16, 16, 3)).astype("float32")
    fit_images = rng.uniform(size=(64, 16, 16, 3)).astype("float32")
    with warnings.catch_warnings():  # random weights and images leave some units dead
        warnings.simplefilter("ignore")
        patterns = kp.compute_patterns(model, fit_images)
    names = kp.list_analyzers()
    width = max(len(n) for n in names) + 1
    print(f"keras-patterns {kp.__version__}: explaining {model.name} on {len(images)} images")
    print(f"{'method':<{width}} {'shape':<18} {'seconds':>8}  {'mean |e|':>10}  description")
    failed = 0
    for name, description in names.items():
        kwargs = dict(DEMO_ARGUMENTS.get(name, {}))
        if name.startswith("pattern."):
            kwargs["patterns"] = patterns
        try:
            start = time.perf_counter()
            explanation = kp.create_analyzer(name, model, **kwargs).analyze(images)
            took = time.perf_counter() - start
        except Exception as e:  # one line per method, also for a failing one
            failed += 1
            print(f"{name:<{width}} failed: {type(e).__name__}: {e}".splitlines()[0])
            continue
        print(
            f"{name:<{width}} {str(explanation.shape):<18} {took:>8.2f}  "
            f"{float(np.abs(explanation).mean()):>10.4g}  {description}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
