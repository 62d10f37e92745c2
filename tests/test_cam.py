"""Class activation maps against numpy: Grad-CAM equals the CAM of a network whose last
convolution feeds a global average pool and a dense layer; Grad-CAM++ and LayerCAM follow
their papers' formulas from tape gradients; Score-CAM is a numpy loop over the masks."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers
from oracles import assert_close, resize_bilinear

import keras_patterns as kp

SHAPE = (9, 9, 2)


def _x(n=3, shape=SHAPE, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=(n, *shape)).astype("float32")


@pytest.fixture(scope="module")
def gap_net():
    """conv -> conv 'feat' (6x6x5) -> global average pool -> dense(4)."""
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input(SHAPE), layers.Conv2D(4, 3, activation="relu", padding="same"),
        layers.Conv2D(5, 4, activation="relu", name="feat"),
        layers.GlobalAveragePooling2D(), layers.Dense(4, name="head")])


@pytest.fixture(scope="module")
def deep_net():
    """conv -> conv 'feat' (7x7x6) -> conv 'last' (5x5x3) -> flatten -> dense(3): the head
    after 'feat' is nonlinear, so the gradient varies over the positions."""
    keras.utils.set_random_seed(1)
    inp = keras.Input(SHAPE)
    h = layers.Conv2D(4, 3, activation="relu", padding="same")(inp)
    feat = layers.Conv2D(6, 3, activation="relu", name="feat")(h)
    h = layers.Conv2D(3, 3, activation="relu", name="last")(feat)
    out = layers.Dense(3)(layers.Flatten()(h))
    return keras.Model(inp, out), feat


def _upsampled(cam, x):
    """The map resized to the input and repeated over its channels."""
    up = resize_bilinear(cam, x.shape[1:3])
    return np.repeat(up[..., None], x.shape[-1], axis=-1)


def test_grad_cam_equals_the_class_activation_map(gap_net):
    """With A -> GAP -> dense W: dy_c/dA_k = W_kc / (h w) at every position, so Grad-CAM is
    ReLU(sum_k W_kc A_k) / (h w), the CAM (Zhou et al.) scaled."""
    x = _x()
    a = keras.Model(gap_net.inputs[0], gap_net.get_layer("feat").output)(x).numpy()
    w = gap_net.get_layer("head").kernel.numpy()
    c = np.argmax(gap_net(x).numpy(), axis=1)
    cam = np.maximum(np.einsum("nhwk,kn->nhw", a, w[:, c]), 0.0) / (a.shape[1] * a.shape[2])
    assert cam.max() > 0
    assert_close(kp.create_analyzer("grad_cam", gap_net).analyze(x), _upsampled(cam, x))
    raw = kp.create_analyzer("grad_cam", gap_net, layer="feat", upsample=False).analyze(x)
    assert_close(raw, cam)
    # index and "all" (the sum of the outputs)
    got = kp.create_analyzer("grad_cam", gap_net, neuron_selection_mode="index",
                             upsample=False).analyze(x, neuron_selection=[0, 2, 3])
    want = np.einsum("nhwk,kn->nhw", a, w[:, [0, 2, 3]]) / 36.0
    assert_close(got, np.maximum(want, 0.0))
    got = kp.create_analyzer("grad_cam", gap_net, neuron_selection_mode="all",
                             upsample=False).analyze(x)
    assert_close(got, np.maximum(np.einsum("nhwk,k->nhw", a, w.sum(axis=1)) / 36.0, 0.0))


def _tape(model, feat, x):
    """A at 'feat', the largest logit y and dy/dA, by a tape over the model's layers."""
    a_model = keras.Model(model.inputs[0], feat)
    head = keras.Model(feat, model.outputs[0])
    a = tf.constant(a_model(x))
    with tf.GradientTape() as tape:
        tape.watch(a)
        y = head(a)
        score = tf.reduce_max(y, axis=1)
    return a.numpy().astype(np.float64), score.numpy().astype(np.float64), tape.gradient(
        score, a).numpy().astype(np.float64)


def test_grad_cam_plus_plus_follows_the_exp_score_closed_form(deep_net):
    """Chattopadhay et al. Eq. 19 for Y = exp(y): alpha = Y'' / (2 Y'' + sum A Y'''),
    w_k = sum alpha ReLU(Y'), with Y' = exp(y) g, Y'' = exp(y) g², Y''' = exp(y) g³; the
    package's map is that map divided by exp(y)."""
    model, feat = deep_net
    x = _x(4)
    a, y, g = _tape(model, feat, x)
    e = np.exp(y)[:, None, None, None]
    d1, d2, d3 = e * g, e * g**2, e * g**3
    denominator = 2 * d2 + a.sum(axis=(1, 2), keepdims=True) * d3
    alpha = np.where(denominator != 0, d2 / np.where(denominator != 0, denominator, 1), 0)
    weights = (alpha * np.maximum(d1, 0)).sum(axis=(1, 2), keepdims=True)
    paper = np.maximum((weights * a).sum(axis=-1), 0.0)
    assert paper.max() > 0
    got = kp.create_analyzer("grad_cam_plus_plus", model, layer="feat",
                             upsample=False).analyze(x)
    assert_close(got * np.exp(y)[:, None, None], paper, rtol=1e-4)
    up = kp.create_analyzer("grad_cam_plus_plus", model, layer="feat").analyze(x)
    assert_close(up, _upsampled(got.astype(np.float64), x), rtol=1e-5)


def test_layer_cam_and_grad_cam_from_tape_gradients(deep_net):
    model, feat = deep_net
    x = _x(4)
    a, _, g = _tape(model, feat, x)
    layer_cam = np.maximum((np.maximum(g, 0) * a).sum(axis=-1), 0.0)
    grad_cam = np.maximum((g.mean(axis=(1, 2), keepdims=True) * a).sum(axis=-1), 0.0)
    assert layer_cam.max() > 0 and grad_cam.max() > 0
    for name, want in (("layer_cam", layer_cam), ("grad_cam", grad_cam)):
        analyzer = kp.create_analyzer(name, model, layer="feat", upsample=False)
        assert_close(analyzer.analyze(x), want, rtol=1e-5)
        assert_close(kp.create_analyzer(name, model, layer="feat").analyze(x),
                     _upsampled(want, x), rtol=1e-5)


def _score_cam(model, feat, x, weights):
    """Score-CAM by a numpy loop over the channels' masks (the largest logit)."""
    a = keras.Model(model.inputs[0], feat)(x).numpy().astype(np.float64)
    c = np.argmax(model(x).numpy(), axis=1)
    out = []
    for i in range(len(x)):
        scores = []
        for k in range(a.shape[-1]):
            up = resize_bilinear(a[i : i + 1, ..., k], x.shape[1:3])[0]
            span = up.max() - up.min()
            mask = (up - up.min()) / span if span > 0 else np.zeros_like(up)
            masked = (x[i] * mask[..., None]).astype("float32")[None]
            scores.append(float(model(masked).numpy()[0, c[i]]))
        scores = np.asarray(scores)
        if weights == "softmax":
            w = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        else:
            w = scores - float(model(np.zeros_like(x[:1])).numpy()[0, c[i]])
        out.append(np.maximum((a[i] * w).sum(axis=-1), 0.0))
    return np.stack(out)


@pytest.mark.parametrize("weights", ["softmax", "increase"])
def test_score_cam_equals_a_loop_over_the_masks(deep_net, weights):
    model, feat = deep_net
    x = _x(3)
    want = _score_cam(model, feat, x, weights)
    assert want.max() > 0
    raw = kp.create_analyzer("score_cam", model, layer="feat", upsample=False,
                             weights=weights)
    assert_close(raw.analyze(x), want, rtol=1e-4)
    # any batch size: the masks go through the model in other groups, the same map
    up = kp.create_analyzer("score_cam", model, layer="feat", weights=weights,
                            batch_size=4)
    assert_close(up.analyze(x, batch_size=2), _upsampled(want, x), rtol=1e-4)


def test_the_default_layer_is_the_last_spatial_one(deep_net):
    model, _ = deep_net
    x = _x(2)
    assert_close(kp.create_analyzer("layer_cam", model).analyze(x),
                 kp.create_analyzer("layer_cam", model, layer="last").analyze(x))


def test_one_dimensional_inputs():
    """Conv1D 'feat' -> GAP -> dense: Grad-CAM is the CAM along the steps."""
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((12, 2)), layers.Conv1D(3, 4, activation="relu",
                                                                  name="feat"),
                              layers.GlobalAveragePooling1D(), layers.Dense(2, name="head")])
    x = _x(3, (12, 2))
    a = keras.Model(model.inputs[0], model.get_layer("feat").output)(x).numpy()
    w = model.get_layer("head").kernel.numpy()
    c = np.argmax(model(x).numpy(), axis=1)
    cam = np.maximum(np.einsum("nlk,kn->nl", a, w[:, c]), 0.0) / a.shape[1]
    got = kp.create_analyzer("grad_cam", model).analyze(x)
    up = resize_bilinear(cam, (12,))
    assert_close(got, np.repeat(up[..., None], 2, axis=-1))


def test_a_layer_of_a_nested_model_by_its_name_or_path():
    keras.utils.set_random_seed(3)
    backbone = keras.Sequential([keras.Input(SHAPE), layers.Conv2D(3, 3, activation="relu",
                                                                   name="feat")],
                                name="backbone")
    head = layers.Dense(2)
    model = keras.Sequential([keras.Input(SHAPE), backbone, layers.GlobalAveragePooling2D(),
                              head])
    x = _x(2)
    a = backbone(x).numpy()
    c = np.argmax(model(x).numpy(), axis=1)
    cam = np.maximum(np.einsum("nhwk,kn->nhw", a, head.kernel.numpy()[:, c]), 0.0) / 49.0
    for layer in ("feat", "backbone/feat", None):
        got = kp.create_analyzer("grad_cam", model, layer=layer, upsample=False).analyze(x)
        assert_close(got, cam)


def test_bad_layers_and_models_are_refused_by_name(deep_net):
    model, _ = deep_net
    with pytest.raises(kp.NotAnalyzableModelError, match="'feats'.*feat, last"):
        kp.create_analyzer("grad_cam", model, layer="feats")
    with pytest.raises(kp.NotAnalyzableModelError, match="Layer 'flatten.*needs a spatial"):
        kp.create_analyzer("score_cam", model, layer=model.layers[-2].name)
    with pytest.raises(ValueError, match="weights='max'"):
        kp.create_analyzer("score_cam", model, weights="max")
    dense = keras.Sequential([keras.Input((4,)), layers.Dense(2)])
    with pytest.raises(kp.NotAnalyzableModelError, match="'layer_cam' needs an input with "
                                                         "spatial axes"):
        kp.create_analyzer("layer_cam", dense)

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = layers.Conv2D(2, 3)
            self.head = layers.Dense(2)

        def call(self, x):
            return self.head(tf.reduce_mean(self.conv(x), axis=(1, 2)))

    sub = Subclassed()
    sub(_x(1))
    with pytest.raises(kp.NotAnalyzableModelError, match="'grad_cam' reads the activations "
                                                         "of an inner layer"):
        kp.create_analyzer("grad_cam", sub)


def test_the_grid_and_the_callback_draw_them_as_heat_maps(tmp_path):
    """Every method of this issue returns an attribution shaped like the input: the grid
    and the ExplanationGrid callback draw it with `heatmap`."""
    from keras_patterns.analyzers import analyzer_class
    from keras_patterns.callbacks import ExplanationGrid

    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((8, 8, 3)),
                              layers.Conv2D(4, 3, activation="relu", padding="same"),
                              layers.Conv2D(4, 3, activation="relu"),
                              layers.GlobalAveragePooling2D(), layers.Dense(3)])
    x = _x(2, (8, 8, 3))
    names = ("grad_cam", "grad_cam_plus_plus", "layer_cam", "score_cam", "occlusion", "rise")
    kwargs = {name: dict(analyzer_class(name).example) for name in names}
    maps = {name: kp.create_analyzer(name, model, **kwargs[name]).analyze(x)
            for name in names}
    callback = ExplanationGrid(x, methods=names, out_dir=tmp_path, method_kwargs=kwargs,
                               grid_kwargs={"col_labels": False, "cell": (8, 8)})
    callback.set_model(model)
    pictures = [np.asarray(kp.visualize.grid(x, maps, col_labels=False, cell=(8, 8), pad=2)),
                np.asarray(callback.draw(1))]
    for picture in pictures:
        for c, name in enumerate(names, start=1):
            assert analyzer_class(name).returns == "attribution"
            assert maps[name].shape == x.shape and np.abs(maps[name]).max() > 0, name
            drawn = kp.visualize.heatmap(maps[name])
            for r in range(len(x)):
                x0, y0 = 2 + c * 10, 2 + r * 10
                np.testing.assert_array_equal(picture[y0:y0 + 8, x0:x0 + 8], drawn[r],
                                              err_msg=name)
