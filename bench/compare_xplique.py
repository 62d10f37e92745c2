"""keras-patterns beside xplique 2.0.2: Grad-CAM, Occlusion and RISE on VGG16 (random
weights), each over the forward pass, all timed alternately in one process.

xplique 2.0.2 needs TensorFlow 2.18-2.20, so this runs in its own environment, outside the
repository, with keras-patterns taken from the checkout (its pin, tensorflow>=2.16, allows
TF 2.20)::

    python -m venv /work/xplique-venv
    /work/xplique-venv/bin/pip install "tensorflow==2.20.*" xplique==2.0.2
    PYTHONPATH=$PWD /work/xplique-venv/bin/python bench/compare_xplique.py --size 56

``--only keras_patterns`` times keras-patterns alone (e.g. in the project's environment, to
see what TF 2.21 changes); the model's weights and the inputs are saved to ``--cache`` on
the first run and loaded by later ones, so every run explains the same model and images.

Settings, the same on both sides: ``--images`` images per call and as many rows per model
call (xplique's ``batch_size`` counts the masks of one image per call, keras-patterns'
counts the rows of all images: both are given the batch, so each model call holds as many
rows as the forward pass); Occlusion with patches of size/7 every size/14 (32 and 16 at
224: 169 patches), fill 0; RISE with ``--masks`` masks on a 7 x 7 grid, probability 0.5;
Grad-CAM on block5_conv3 (xplique's default, the last convolution), the class explained
being the argmax of the forward pass. Timings on a busy machine are noisy; the ratios of
one run are comparable, each being timed between calls of the others.
"""

import argparse
import functools
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # bench.py, then this checkout's package
import keras_patterns as kp  # noqa: E402
from bench import interleaved, vgg16  # noqa: E402

SIDES = ("keras_patterns", "xplique")


def model_and_inputs(size, images, cache):
    """VGG16 and `images` uniform images, saved under `cache` once and loaded after."""
    os.makedirs(cache, exist_ok=True)
    weights = os.path.join(cache, f"vgg16_{size}.weights.h5")
    inputs = os.path.join(cache, f"inputs_{size}_{images}.npy")
    model = vgg16(size)
    if os.path.exists(weights):
        model.load_weights(weights)
    else:
        model.save_weights(weights)
    if not os.path.exists(inputs):
        x = np.random.default_rng(0).uniform(size=(images, size, size, 3)).astype("float32")
        np.save(inputs, x)
    return model, np.load(inputs)


def keras_patterns_methods(model, x, size, masks):
    n = len(x)
    options = {
        "gradient": {},
        "grad_cam": {"layer": "block5_conv3"},
        "occlusion": {"patch_size": size // 7, "stride": size // 14},
        "rise": {"n_masks": masks, "resolution": 7, "probability": 0.5, "seed": 0},
    }
    out = {}
    for name, kwargs in options.items():
        analyzer = kp.create_analyzer(name, model, batch_size=n,
                                      neuron_selection_mode="max_activation", **kwargs)
        out[f"keras_patterns {name}"] = functools.partial(analyzer.analyze, x)
    return out


def xplique_methods(model, x, size, masks):
    from xplique.attributions import GradCAM, Occlusion, Rise, Saliency

    n = len(x)
    y = model.predict(x, verbose=0)
    targets = tf.one_hot(np.argmax(y, axis=1), y.shape[1])
    explainers = {
        "saliency": Saliency(model, batch_size=n),
        "grad_cam": GradCAM(model, batch_size=n, conv_layer="block5_conv3"),
        "occlusion": Occlusion(model, batch_size=n, patch_size=size // 7,
                               patch_stride=size // 14, occlusion_value=0.0),
        "rise": Rise(model, batch_size=n, nb_samples=masks, grid_size=7,
                     preservation_probability=0.5, mask_value=0.0),
    }
    return {f"xplique {name}": functools.partial(e.explain, x, targets)
            for name, e in explainers.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--masks", type=int, default=256, help="RISE masks")
    p.add_argument("--repeats", type=int, default=1,
                   help="timed rounds after one warm-up round")
    p.add_argument("--only", choices=SIDES, default=None)
    p.add_argument("--cache", default="/tmp/compare_xplique")
    args = p.parse_args()
    model, x = model_and_inputs(args.size, args.images, args.cache)
    forward_fn = tf.function(lambda v: model(v, training=False), autograph=False)

    def forward():
        return forward_fn(x).numpy()

    methods = {}
    if args.only in (None, "keras_patterns"):
        methods.update(keras_patterns_methods(model, x, args.size, args.masks))
    if args.only in (None, "xplique"):
        methods.update(xplique_methods(model, x, args.size, args.masks))
    names = list(methods)
    # one forward call before each method call: the forward time is the best of them all
    fns = [f for name in names for f in (forward, methods[name])]
    times = interleaved(fns, args.repeats)
    t_forward = min(times[0::2])
    patches = len(range(0, args.size - args.size // 7 + 1, args.size // 14)) ** 2
    floors = {"occlusion": patches + 1, "rise": args.masks + 1}
    print(f"VGG16, {len(x)} images of {args.size}x{args.size}, forward {t_forward * 1000:.0f} ms;"
          f" TensorFlow {tf.__version__}; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'method':<32} {'/ forward':>10} {'/ floor':>8}   (floor: passes incl. reference)")
    for name, t in zip(names, times[1::2]):
        floor = floors.get(name.split()[-1])
        print(f"{name:<32} {t / t_forward:>10.2f} "
              + (f"{t / (floor * t_forward):>8.3f}   {floor} passes" if floor else ""))


if __name__ == "__main__":
    main()
