"""keras_patterns.callbacks.ExplanationGrid, checked against independent recomputations.

A tiny CNN (convolution, BatchNormalization, ReLU, max pooling, dropout, dense logits) trains
for three epochs on random images with the callback. A second callback copies the weights at
the end of every epoch; the oracles rebuild the network from those copies, explain the same
images with fresh analyzers (patterns refitted on the same data) and draw them with
``kp.visualize.grid``: the PNG files and the TensorBoard images must be those pictures,
pixel for pixel, and the explanation cells must sit where grid's docstring says (its layout
formula, written out here). The gradient is also checked against a tf.GradientTape gradient
drawn with the paper's display x / (2 max|x|) + 1/2. Training with and without the callback
(same seed) must give the same losses and weights, with two optimizers. The event file is
read back with tf.data.TFRecordDataset and tf.compat.v1.Event (no tensorboard needed).
"""

import math
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image, ImageFont  # noqa: E402

import keras_patterns as kp  # noqa: E402
from keras_patterns.callbacks import ExplanationGrid, write_image_summary  # noqa: E402

SHAPE = (8, 8, 1)
CLASSES = 3
EPOCHS = 3
ROWS = 3
METHODS = ("gradient", "pattern.attribution", "lrp.epsilon")
LABELS = ["first", "second", "third"]
PAD = 2  # grid's default
FACTOR = round(96 / max(SHAPE[:2]))  # grid's default cell: input size x round(96 / max(H, W))


def build():
    layers = keras.layers
    inputs = keras.Input(SHAPE)
    x = layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.Activation("relu", name="relu")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(0.25, name="dropout")(x)
    outputs = layers.Dense(CLASSES, name="logits")(x)
    return keras.Model(inputs, outputs, name="tiny_cnn")


def data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(40, *SHAPE)).astype(np.float32)
    y = rng.integers(0, CLASSES, size=40)
    return x, y


class WeightCopies(keras.callbacks.Callback):
    """Keeps a copy of the weights (and the loss) at the end of every epoch."""

    def __init__(self):
        super().__init__()
        self.weights, self.losses = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([np.array(w, copy=True) for w in self.model.get_weights()])
        self.losses.append(float(logs["loss"]))


def train(callbacks, optimizer="adam", seed=3, epochs=EPOCHS):
    """Trains the tiny CNN from a fixed seed; returns the weight copies of every epoch."""
    keras.utils.set_random_seed(seed)
    x, y = data()
    model = build()
    opt = {"adam": lambda: keras.optimizers.Adam(1e-2),
           "sgd": lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True)}[optimizer]()
    model.compile(opt, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    copies = WeightCopies()
    model.fit(x, y, epochs=epochs, batch_size=8, shuffle=True, verbose=0,
              callbacks=[*callbacks, copies])
    return copies


def rebuilt(weights):
    model = build()
    model.set_weights(weights)
    return model


def recomputed_explanations(weights, images, fit_data, methods=METHODS):
    """Fresh analyzers on a rebuilt model with the saved weights (patterns refitted)."""
    model = rebuilt(weights)
    maps = {}
    for name in methods:
        analyzer = kp.create_analyzer(name, model)
        if name.startswith("pattern."):
            analyzer.fit(fit_data)
        maps[name] = analyzer.analyze(images)
    return maps


def png(path):
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        return np.asarray(picture.convert("RGB"))


def layout(rows, methods, row_labels, col_labels, cell):
    """grid's docstring: left margin L, top margin T, width and height of the picture."""
    font = ImageFont.load_default()
    ch, cw = cell
    left = 0 if row_labels is None else max(math.ceil(font.getlength(t)) for t in row_labels) + 6
    for label in col_labels:  # each label fits one line, so T = line height + 6
        assert math.ceil(font.getlength(label)) <= cw, label
    top = sum(font.getmetrics()) + 6
    width = left + (methods + 1) * cw + (methods + 2) * PAD
    height = top + rows * ch + (rows + 1) * PAD
    return left, top, width, height


def cell_at(picture, left, top, r, c, cell):
    ch, cw = cell
    x0, y0 = left + PAD + c * (cw + PAD), top + PAD + r * (ch + PAD)
    return picture[y0 : y0 + ch, x0 : x0 + cw]


def upscale(pixels, factor):
    return np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)


def events(log_dir):
    """(step, tag, summary value) of every image summary in the event files of log_dir."""
    out = []
    for path in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "images":
                    out.append((event.step, value.tag, value))
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Three epochs with two grids (array fit data / a function returning a generator)."""
    root = tmp_path_factory.mktemp("callback")
    x, _ = data()
    images = x[:ROWS]

    def batches():
        return (x[i : i + 32] for i in range(0, len(x), 32))

    grid = ExplanationGrid(images, methods=METHODS, out_dir=root / "png", log_dir=root / "tb",
                           fit_data=x, labels=LABELS)
    from_generator = ExplanationGrid(images, methods=METHODS, out_dir=root / "gen",
                                     fit_data=batches, labels=LABELS)
    copies = train([grid, from_generator])
    return {"root": root, "grid": grid, "generator": from_generator, "copies": copies,
            "images": images, "fit_data": x}


def test_pngs_are_the_grids_of_each_epochs_weights(run):
    root, images = run["root"], run["images"]
    paths = [root / "png" / f"epoch_{e:03d}.png" for e in range(1, EPOCHS + 1)]
    assert sorted((root / "png").iterdir()) == paths  # nothing else (no temporaries)
    assert run["grid"].written == paths
    drawn = []
    for epoch, path in enumerate(paths):
        maps = recomputed_explanations(run["copies"].weights[epoch], images, run["fit_data"])
        expected = np.asarray(kp.visualize.grid(images, maps, row_labels=LABELS))
        actual = png(path)
        assert actual.shape == expected.shape
        np.testing.assert_array_equal(actual, expected)
        drawn.append(actual)
    # the weights changed: every epoch's picture differs from the others
    for a in range(EPOCHS):
        for b in range(a + 1, EPOCHS):
            assert not np.array_equal(drawn[a], drawn[b])


def test_png_size_and_explanation_cells_follow_grid_layout(run):
    root, images = run["root"], run["images"]
    cell = (SHAPE[0] * FACTOR, SHAPE[1] * FACTOR)
    left, top, width, height = layout(ROWS, len(METHODS), LABELS, ["input", *METHODS], cell)
    for epoch in range(1, EPOCHS + 1):
        picture = png(root / "png" / f"epoch_{epoch:03d}.png")
        assert picture.shape == (height, width, 3)
        maps = recomputed_explanations(run["copies"].weights[epoch - 1], images, run["fit_data"])
        heat = {name: kp.visualize.heatmap(maps[name]) for name in METHODS[1:]}
        signal = kp.visualize.project(maps["gradient"])  # (R, H, W, 1): gray
        for r in range(ROWS):
            gradient_cell = cell_at(picture, left, top, r, 1, cell)
            np.testing.assert_array_equal(
                gradient_cell, upscale(np.repeat(signal[r], 3, axis=-1), FACTOR))
            for c, name in enumerate(METHODS[1:], start=2):
                np.testing.assert_array_equal(cell_at(picture, left, top, r, c, cell),
                                              upscale(heat[name][r], FACTOR))


def test_gradient_cells_equal_a_tape_gradient_in_the_papers_display(run):
    root, images = run["root"], run["images"]
    cell = (SHAPE[0] * FACTOR, SHAPE[1] * FACTOR)
    left, top, _, _ = layout(ROWS, len(METHODS), LABELS, ["input", *METHODS], cell)
    picture = png(root / "png" / f"epoch_{EPOCHS:03d}.png")
    model = rebuilt(run["copies"].weights[-1])
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model(x, training=False)
        chosen = tf.reduce_sum(logits * tf.one_hot(tf.argmax(logits, axis=1), CLASSES))
    g = tape.gradient(chosen, x).numpy().astype(np.float64)
    shown = g / (2 * np.abs(g).max(axis=(1, 2, 3), keepdims=True)) + 0.5
    gray = np.floor(255 * shown + 0.5).astype(np.uint8)
    for r in range(ROWS):
        expected = upscale(np.repeat(gray[r], 3, axis=-1), FACTOR)
        actual = cell_at(picture, left, top, r, 1, cell).astype(int)
        assert np.abs(actual - expected).max() <= 1  # float32 tape against the analyzer


def test_fit_data_as_a_function_returning_a_generator(run):
    root = run["root"]
    for epoch in range(1, EPOCHS + 1):
        name = f"epoch_{epoch:03d}.png"
        np.testing.assert_array_equal(png(root / "gen" / name), png(root / "png" / name))


def test_tensorboard_event_file_holds_the_grids(run):
    root = run["root"]
    found = events(root / "tb")
    # at Keras's epoch index (the step of keras.callbacks.TensorBoard's epoch metrics)
    assert [step for step, _, _ in found] == list(range(EPOCHS))
    for step, tag, value in found:
        assert tag == "explanations"
        strings = value.tensor.string_val
        assert len(strings) == 3  # width, height, one PNG
        stored = tf.io.decode_png(strings[2]).numpy()
        on_disk = png(root / "png" / f"epoch_{step + 1:03d}.png")
        np.testing.assert_array_equal(stored, on_disk)
        assert (int(strings[0]), int(strings[1])) == (on_disk.shape[1], on_disk.shape[0])


def test_training_is_not_disturbed_adam(run):
    """The fixture trained with two callbacks; without them, the same seed gives the same
    losses and weights at every epoch, bit for bit."""
    plain = train([])
    assert plain.losses == run["copies"].losses
    for with_cb, without in zip(run["copies"].weights, plain.weights):
        for a, b in zip(with_cb, without):
            np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore:.*got a zero pattern:UserWarning")
def test_training_is_not_disturbed_sgd_momentum(tmp_path):
    x, _ = data()
    grid = ExplanationGrid(x[:2], methods=("pattern.net", "smoothgrad"), out_dir=tmp_path,
                           fit_data=x, method_kwargs={"smoothgrad": {"augment_by_n": 4}})
    with_cb = train([grid], optimizer="sgd", seed=11)
    plain = train([], optimizer="sgd", seed=11)
    assert len(grid.written) == EPOCHS
    assert with_cb.losses == plain.losses
    for a, b in zip(with_cb.weights[-1], plain.weights[-1]):
        np.testing.assert_array_equal(a, b)


def test_every_log_dir_only_neuron_selection_and_display_images(tmp_path):
    """every=2 over 3 epochs: one summary (epoch 2: step 1), no PNG; the chosen units' gradients
    (tape oracle) and the display images in the first column."""
    x, _ = data()
    images = x[:ROWS]
    display = np.arange(ROWS * 64, dtype=np.float64).reshape(ROWS, 8, 8, 1) ** 2
    units = [2, 0, 1]
    grid = ExplanationGrid(images, methods="gradient", every=2, out_dir=None,
                           log_dir=tmp_path / "tb", neuron_selection=units,
                           display_images=display, grid_kwargs={"col_labels": False},
                           tag="watch")
    copies = train([grid], seed=5)
    assert grid.written == []
    assert sorted(os.listdir(tmp_path)) == ["tb"]
    found = events(tmp_path / "tb")
    assert [(step, tag) for step, tag, _ in found] == [(1, "watch")]
    picture = tf.io.decode_png(found[0][2].tensor.string_val[2]).numpy()
    cell = (SHAPE[0] * FACTOR, SHAPE[1] * FACTOR)
    width = 2 * cell[1] + 3 * PAD  # no labels: L = T = 0
    assert picture.shape == (ROWS * cell[0] + (ROWS + 1) * PAD, width, 3)

    model = rebuilt(copies.weights[1])  # the weights after epoch 2
    xt = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        chosen = tf.reduce_sum(model(xt, training=False) * tf.one_hot(units, CLASSES))
    g = tape.gradient(chosen, xt).numpy().astype(np.float64)
    gray = np.floor(255 * (g / (2 * np.abs(g).max(axis=(1, 2, 3), keepdims=True)) + 0.5) + 0.5)
    lo = display.min(axis=(1, 2, 3), keepdims=True)
    hi = display.max(axis=(1, 2, 3), keepdims=True)
    shown = np.floor(255 * (display - lo) / (hi - lo) + 0.5)
    for r in range(ROWS):
        first = cell_at(picture, 0, 0, r, 0, cell)
        np.testing.assert_array_equal(first, upscale(np.repeat(shown[r], 3, -1), FACTOR))
        second = cell_at(picture, 0, 0, r, 1, cell).astype(int)
        assert np.abs(second - upscale(np.repeat(gray[r], 3, -1), FACTOR)).max() <= 1


def test_a_sequential_model_built_by_its_first_batch(tmp_path):
    """No keras.Input: the model is built by the first batch, after on_train_begin."""
    def sequential():
        return keras.Sequential([keras.layers.Conv2D(3, 3, activation="relu"),
                                 keras.layers.Flatten(), keras.layers.Dense(CLASSES)])

    keras.utils.set_random_seed(2)
    x, y = data()
    model = sequential()
    model.compile("rmsprop", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    grid = ExplanationGrid(x[:2], methods=("gradient", "lrp.z"), out_dir=tmp_path)
    copies = WeightCopies()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[grid, copies])
    assert grid.written == [tmp_path / "epoch_001.png", tmp_path / "epoch_002.png"]
    for epoch, path in enumerate(grid.written):
        again = sequential()
        again.build((None, *SHAPE))
        again.set_weights(copies.weights[epoch])
        maps = {name: kp.create_analyzer(name, again).analyze(x[:2])
                for name in ("gradient", "lrp.z")}
        np.testing.assert_array_equal(png(path), np.asarray(kp.visualize.grid(x[:2], maps)))


def test_fallback_record_equals_tf_summary_image(tmp_path):
    """The record written without TensorBoard equals tf.summary.image's (the test extra
    installs tensorboard)."""
    import tensorboard  # noqa: F401 - tf.summary.image needs it
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    records = []
    for kind in ("image", "fallback"):
        writer = tf.summary.create_file_writer(str(tmp_path / kind))
        with writer.as_default():
            if kind == "image":
                tf.summary.image("t", pixels[None].astype(np.float32) / 255.0, step=4)
            else:
                write_image_summary("t", pixels, 4)
        writer.close()
        (step, tag, value), = events(tmp_path / kind)
        records.append((step, tag, value.metadata.SerializeToString(),
                        value.tensor.SerializeToString()))
    assert records[0] == records[1]
