"""`python -m keras_patterns`: explain a small convolutional network with every method.

Until the `keras-patterns` command lands, this is the quick check that an installation
works: it builds a small CNN (random weights), explains four images with every analyzer
and prints one line per method.
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


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
    images = np.random.default_rng(0).uniform(size=(4, 16, 16, 3)).astype("float32")
    print(f"keras-patterns {kp.__version__}: explaining {model.name} on {len(images)} images")
    print(f"{'method':<22} {'shape':<18} {'seconds':>8}  {'mean |e|':>10}  description")
    for name, description in kp.list_analyzers().items():
        start = time.perf_counter()
        analyzer = kp.create_analyzer(name, model)
        explanation = analyzer.analyze(images)
        took = time.perf_counter() - start
        print(
            f"{name:<22} {str(explanation.shape):<18} {took:>8.2f}  "
            f"{float(np.abs(explanation).mean()):>10.4g}  {description}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
