"""The models of the oracle test matrix (tests/test_layers.py): one tiny model per layer
kind, with seeded weights, non-zero biases and non-trivial BatchNormalization statistics, and
a rectifier somewhere so that DeConvNet and Guided Backprop differ from the gradient. Models
are built once (`get_case`) and shared by the tests."""

import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers as L  # noqa: E402

METHODS = ("gradient", "input_t_gradient", "deconvnet", "guided_backprop")
RECTIFIER_METHODS = ("deconvnet", "guided_backprop")
N_SAMPLES = 3

def randomize(model, seed):
    """Seeded weights: kernels keep their (seeded) initializer; biases, BatchNorm statistics
    and the other parameters are drawn so that none is trivial (zero bias, unit variance)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        name = w.name
        shape = tuple(w.shape)
        if name in ("moving_variance",):
            value = rng.uniform(0.5, 2.0, shape)
        elif name in ("gamma",):
            value = rng.uniform(0.5, 1.5, shape)
        elif name == "alpha":  # PReLU
            value = rng.uniform(0.1, 0.5, shape)
        elif name == "embeddings":
            value = rng.normal(0.0, 1.0, shape)
        elif "kernel" in name:
            continue
        else:  # bias, beta, moving_mean
            value = rng.normal(0.0, 0.5, shape)
        w.assign(value.astype(w.dtype))
    return model


class Case:
    """A model, its inputs, and what the references are computed on.

    reference: the model the tape references run over (the same model by default; the model
        without its inference-time identity layers for the dropout cases).
    refused: for non-rectifier activations, the layer name DeConvNet/GB must name.
    clipped: the model has ReLUs clipped at max_value (use `clipped_rectifier_model`).
    """

    def __init__(self, model, x, reference=None, refused=None, clipped=False):
        self.model = model
        self.x = x
        self.reference = model if reference is None else reference
        self.refused = refused
        self.clipped = clipped


def random_inputs(shape, seed, scale=1.0):
    rng = np.random.default_rng(seed + 1000)
    return (scale * rng.normal(size=(N_SAMPLES,) + tuple(shape))).astype("float32")


def seq(input_shape, *layers, seed=0, scale=1.0, **kw):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input(input_shape), *layers])
    randomize(model, seed)
    return Case(model, random_inputs(input_shape, seed, scale), **kw)


def head(*layers, units=4):
    """`layers`, then Flatten and a Dense output (for spatial cases)."""
    return [*layers, L.Flatten(), L.Dense(units)]


def two_branch(merge, shape=(5,), seed=0):
    """x -> Dense(relu) and Dense -> merge -> Dense."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape)
    a = L.Dense(6, activation="relu")(inp)
    b = L.Dense(6)(inp)
    out = L.Dense(4)(merge([a, b]))
    model = randomize(keras.Model(inp, out), seed)
    return Case(model, random_inputs(shape, seed))


def with_identity_layers(input_shape, make, identity, seed=0):
    """A model with `identity` layers (inference: identity) and the same model without."""
    keras.utils.set_random_seed(seed)
    parts = make()
    with_ids = keras.Sequential([keras.Input(input_shape), *parts[:1], identity, *parts[1:]])
    without = keras.Sequential([keras.Input(input_shape), *parts])  # shares the layers
    randomize(with_ids, seed)
    return Case(with_ids, random_inputs(input_shape, seed), reference=without)


# -- the cases -------------------------------------------------------------------------------

S1, S2, S3 = (7, 3), (6, 6, 3), (4, 4, 4, 2)

CASES = {
    # Dense
    "dense_rank2": lambda: seq((5,), L.Dense(6, activation="relu"), L.Dense(4)),
    "dense_rank3": lambda: seq((3, 5), L.Dense(6, activation="relu"), L.Dense(4)),
    # Convolutions
    "conv1d_strides_valid": lambda: seq(
        S1, *head(L.Conv1D(4, 3, strides=2, padding="valid", activation="relu"))),
    "conv1d_dilation_same": lambda: seq(
        S1, *head(L.Conv1D(4, 3, dilation_rate=2, padding="same", activation="relu"))),
    "conv1d_causal": lambda: seq(
        S1, *head(L.Conv1D(4, 3, dilation_rate=2, padding="causal", activation="relu"))),
    "conv1d_strides_causal": lambda: seq(
        S1, *head(L.Conv1D(4, 2, strides=2, padding="causal", activation="relu"))),
    "conv1d_groups": lambda: seq(
        (7, 4), *head(L.Conv1D(6, 3, groups=2, activation="relu"))),
    "conv2d_strides_same": lambda: seq(
        (7, 7, 3), *head(L.Conv2D(4, 3, strides=2, padding="same", activation="relu"))),
    "conv2d_dilation_valid": lambda: seq(
        S2, *head(L.Conv2D(4, 2, dilation_rate=2, padding="valid", activation="relu"))),
    "conv2d_rect_strides": lambda: seq(
        S2, *head(L.Conv2D(4, (3, 2), strides=(2, 1), padding="valid", activation="relu"))),
    "conv2d_groups": lambda: seq(
        (5, 5, 4), *head(L.Conv2D(6, 3, groups=2, padding="same", activation="relu"))),
    "conv2d_channel_groups": lambda: seq(
        (6, 5, 3), *head(L.Conv2D(6, 3, groups=3, strides=2, padding="same",
                                  activation="relu"))),
    "conv2d_1x1_strided": lambda: seq(
        (6, 7, 2), *head(L.Conv2D(3, 1, strides=2, activation="relu"))),
    "conv2d_1x1_strided_same": lambda: seq(
        (7, 8, 2), *head(L.Conv2D(3, 1, strides=(3, 2), padding="same", activation="relu"))),
    "conv2d_unread_rows": lambda: seq(
        (7, 6, 2), *head(L.Conv2D(3, 2, strides=2, activation="relu"))),
    "conv3d_strides_same": lambda: seq(
        S3, *head(L.Conv3D(3, 2, strides=2, padding="same", activation="relu"))),
    "conv3d_dilation_valid": lambda: seq(
        S3, *head(L.Conv3D(3, 2, dilation_rate=2, padding="valid", activation="relu"))),
    "conv3d_groups": lambda: seq(
        (3, 3, 3, 4), *head(L.Conv3D(4, 2, groups=2, activation="relu"))),
    # Transposed convolutions
    "conv1d_transpose_same": lambda: seq(
        (4, 3), *head(L.Conv1DTranspose(3, 3, strides=2, padding="same", activation="relu"))),
    "conv1d_transpose_valid": lambda: seq(
        (4, 3), *head(L.Conv1DTranspose(3, 3, strides=2, padding="valid", activation="relu"))),
    "conv2d_transpose_same": lambda: seq(
        (3, 3, 2), *head(L.Conv2DTranspose(3, 3, strides=2, padding="same", activation="relu"))),
    "conv2d_transpose_valid": lambda: seq(
        (3, 3, 2), *head(L.Conv2DTranspose(3, 2, strides=(2, 1), padding="valid",
                                           activation="relu"))),
    "conv2d_transpose_output_padding": lambda: seq(
        (3, 3, 2), *head(L.Conv2DTranspose(3, 3, strides=2, padding="valid", output_padding=1,
                                           activation="relu"))),
    "conv3d_transpose_same": lambda: seq(
        (2, 2, 2, 2), *head(L.Conv3DTranspose(2, 3, strides=2, padding="same",
                                              activation="relu"))),
    "conv3d_transpose_valid": lambda: seq(
        (2, 2, 2, 2), *head(L.Conv3DTranspose(2, 2, strides=2, padding="valid",
                                              activation="relu"))),
    # Depthwise and separable convolutions
    "depthwise1d": lambda: seq(
        S1, *head(L.DepthwiseConv1D(3, strides=2, depth_multiplier=2, activation="relu"))),
    "depthwise2d": lambda: seq(
        (7, 7, 3), *head(L.DepthwiseConv2D(3, strides=2, depth_multiplier=2, padding="same",
                                           activation="relu"))),
    "separable1d": lambda: seq(
        S1, *head(L.SeparableConv1D(4, 3, strides=2, depth_multiplier=2, padding="same",
                                    activation="relu"))),
    "separable2d": lambda: seq(
        S2, *head(L.SeparableConv2D(4, 3, depth_multiplier=2, activation="relu"))),
    # Pooling (after a rectified convolution, so that maxima can tie at zero)
    "max_pool1d": lambda: seq(S1, *head(L.Conv1D(4, 2, activation="relu"),
                                        L.MaxPooling1D(3, strides=2))),
    "max_pool2d": lambda: seq(S2, *head(L.Conv2D(4, 2, activation="relu"), L.MaxPooling2D(2))),
    "max_pool2d_same": lambda: seq(S2, *head(L.Conv2D(4, 2, activation="relu"),
                                             L.MaxPooling2D(3, strides=2, padding="same"))),
    "max_pool3d": lambda: seq(S3, *head(L.Conv3D(3, 2, padding="same", activation="relu"),
                                        L.MaxPooling3D(2))),
    "avg_pool1d": lambda: seq(S1, *head(L.Conv1D(4, 2, activation="relu"),
                                        L.AveragePooling1D(3, strides=2))),
    "avg_pool2d": lambda: seq(S2, *head(L.Conv2D(4, 2, activation="relu"),
                                        L.AveragePooling2D(2, padding="same"))),
    "avg_pool2d_same": lambda: seq(S2, *head(L.Conv2D(4, 2, activation="relu"),
                                             L.AveragePooling2D(3, strides=2, padding="same"))),
    "avg_pool3d": lambda: seq(S3, *head(L.Conv3D(3, 2, padding="same", activation="relu"),
                                        L.AveragePooling3D(2))),
    "global_max_pool1d": lambda: seq(S1, L.Conv1D(4, 2, activation="relu"),
                                     L.GlobalMaxPooling1D(), L.Dense(4)),
    "global_max_pool2d": lambda: seq(S2, L.Conv2D(4, 2, activation="relu"),
                                     L.GlobalMaxPooling2D(), L.Dense(4)),
    "global_max_pool3d": lambda: seq(S3, L.Conv3D(6, 2, activation="relu"),
                                     L.GlobalMaxPooling3D(), L.Dense(4)),
    "global_avg_pool1d": lambda: seq(S1, L.Conv1D(4, 2, activation="relu"),
                                     L.GlobalAveragePooling1D(), L.Dense(4)),
    "global_avg_pool2d": lambda: seq(S2, L.Conv2D(4, 2, activation="relu"),
                                     L.GlobalAveragePooling2D(), L.Dense(4)),
    "global_avg_pool3d": lambda: seq(S3, L.Conv3D(3, 2, activation="relu"),
                                     L.GlobalAveragePooling3D(), L.Dense(4)),
    # Normalization
    "batchnorm_conv": lambda: seq(S2, *head(L.Conv2D(4, 3), L.BatchNormalization(),
                                            L.ReLU())),
    "batchnorm_dense": lambda: seq((5,), L.Dense(6), L.BatchNormalization(), L.ReLU(),
                                   L.Dense(4)),
    "batchnorm_input": lambda: seq((5,), L.BatchNormalization(), L.Dense(6, activation="relu"),
                                   L.Dense(4)),
    "batchnorm_no_scale_center": lambda: seq(
        (5,), L.Dense(6), L.BatchNormalization(center=False, scale=False), L.ReLU(),
        L.Dense(4)),
    "batchnorm_axis1": lambda: seq((3, 5), L.BatchNormalization(axis=1),
                                   *head(L.Dense(6, activation="relu"))),
    "layernorm": lambda: seq((5,), L.Dense(6), L.LayerNormalization(), L.ReLU(), L.Dense(4)),
    "layernorm_conv": lambda: seq(S2, *head(L.Conv2D(4, 3), L.LayerNormalization(axis=-1),
                                            L.ReLU())),
    # Activations (inputs scaled so that relu6 saturates somewhere)
    "activation_relu": lambda: seq((5,), L.Dense(16), L.Activation("relu"), L.Dense(4), scale=4),
    "relu_layer": lambda: seq((5,), L.Dense(16), L.ReLU(), L.Dense(4), scale=4),
    "relu_max_value_6": lambda: seq((5,), L.Dense(16), L.ReLU(max_value=6.0), L.Dense(4),
                                    scale=8, clipped=True),
    "activation_relu6": lambda: seq((5,), L.Dense(16), L.Activation("relu6"), L.Dense(4),
                                    scale=8, clipped=True),
    "leaky_relu": lambda: seq((5,), L.Dense(8), L.LeakyReLU(0.2, name="leaky"), L.Dense(4),
                              refused="leaky"),
    "relu_negative_slope": lambda: seq((5,), L.Dense(8), L.ReLU(negative_slope=0.1, name="nrelu"),
                                       L.Dense(4), refused="nrelu"),
    "prelu": lambda: seq((5,), L.Dense(8), L.PReLU(name="prelu"), L.Dense(4), refused="prelu"),
    "elu": lambda: seq((5,), L.Dense(8), L.ELU(name="elu"), L.Dense(4), refused="elu"),
    "tanh": lambda: seq((5,), L.Dense(8), L.Activation("tanh", name="tanh"), L.Dense(4),
                        refused="tanh"),
    "sigmoid": lambda: seq((5,), L.Dense(8), L.Activation("sigmoid", name="sig"), L.Dense(4),
                           refused="sig"),
    "softplus": lambda: seq((5,), L.Dense(8), L.Activation("softplus", name="sp"), L.Dense(4),
                            refused="sp"),
    "swish": lambda: seq((5,), L.Dense(8), L.Activation("swish", name="sw"), L.Dense(4),
                         refused="sw"),
    "dense_tanh": lambda: seq((5,), L.Dense(8, activation="tanh", name="dtanh"), L.Dense(4),
                              refused="dtanh"),
    "conv_elu": lambda: seq(S2, *head(L.Conv2D(3, 3, activation="elu", name="celu")),
                            refused="celu"),
    # Merges (functional, two branches)
    "add": lambda: two_branch(L.Add()),
    "subtract": lambda: two_branch(L.Subtract()),
    "average": lambda: two_branch(L.Average()),
    "multiply": lambda: two_branch(L.Multiply()),
    "maximum": lambda: two_branch(L.Maximum()),
    "concatenate": lambda: two_branch(L.Concatenate()),
    "concatenate_axis1": lambda: two_branch(L.Concatenate(axis=1)),
    # Reshapes
    "flatten": lambda: seq((3, 4), L.Flatten(), L.Dense(6, activation="relu"), L.Dense(4)),
    "reshape": lambda: seq((6,), L.Dense(12, activation="relu"), L.Reshape((3, 4)),
                           *head(L.Conv1D(3, 2))),
    "permute": lambda: seq((3, 5), L.Permute((2, 1)), *head(L.Dense(4, activation="relu"))),
    "repeat_vector": lambda: seq((5,), L.Dense(4, activation="relu"), L.RepeatVector(3),
                                 *head(L.Conv1D(3, 2))),
    # Padding, cropping, upsampling (before a rectified convolution)
    "zero_padding1d": lambda: seq(S1, *head(L.ZeroPadding1D((1, 2)),
                                            L.Conv1D(3, 3, activation="relu"))),
    "zero_padding2d": lambda: seq(S2, *head(L.ZeroPadding2D(((1, 0), (2, 1))),
                                            L.Conv2D(3, 3, activation="relu"))),
    "zero_padding3d": lambda: seq(S3, *head(L.ZeroPadding3D(1), L.Conv3D(2, 3, activation="relu"))),
    "cropping1d": lambda: seq(S1, *head(L.Cropping1D((1, 2)), L.Conv1D(3, 2, activation="relu"))),
    "cropping2d": lambda: seq(S2, *head(L.Cropping2D(((1, 0), (2, 1))),
                                        L.Conv2D(3, 2, activation="relu"))),
    "cropping3d": lambda: seq(S3, *head(L.Cropping3D(((1, 0), (0, 1), (1, 1))),
                                        L.Conv3D(2, 2, activation="relu"))),
    "upsampling1d": lambda: seq(S1, *head(L.UpSampling1D(2), L.Conv1D(3, 3, activation="relu"))),
    "upsampling2d": lambda: seq((3, 3, 2), *head(L.UpSampling2D((2, 3)),
                                                 L.Conv2D(3, 3, activation="relu"))),
    "upsampling2d_bilinear": lambda: seq(
        (3, 3, 2), *head(L.UpSampling2D(2, interpolation="bilinear"),
                         L.Conv2D(3, 3, activation="relu"))),
    "upsampling3d": lambda: seq((2, 2, 2, 2), *head(L.UpSampling3D(2),
                                                    L.Conv3D(2, 2, activation="relu"))),
    # Identity at inference: compared with the same model (same layers) without them
    "dropout": lambda: with_identity_layers(
        (5,), lambda: [L.Dense(6, activation="relu"), L.Dense(4)], L.Dropout(0.5)),
    "spatial_dropout1d": lambda: with_identity_layers(
        S1, lambda: head(L.Conv1D(4, 2, activation="relu")), L.SpatialDropout1D(0.5)),
    "spatial_dropout2d": lambda: with_identity_layers(
        S2, lambda: head(L.Conv2D(4, 2, activation="relu")), L.SpatialDropout2D(0.5)),
    "spatial_dropout3d": lambda: with_identity_layers(
        S3, lambda: head(L.Conv3D(3, 2, activation="relu")), L.SpatialDropout3D(0.5)),
    "gaussian_noise": lambda: with_identity_layers(
        (5,), lambda: [L.Dense(6, activation="relu"), L.Dense(4)], L.GaussianNoise(1.0)),
    "gaussian_dropout": lambda: with_identity_layers(
        (5,), lambda: [L.Dense(6, activation="relu"), L.Dense(4)], L.GaussianDropout(0.5)),
    "alpha_dropout": lambda: with_identity_layers(
        (5,), lambda: [L.Dense(6, activation="relu"), L.Dense(4)], L.AlphaDropout(0.5)),
    # Preprocessing
    "rescaling": lambda: seq(S2, L.Rescaling(2.0, offset=-0.5),
                             *head(L.Conv2D(3, 3, activation="relu"))),
    "normalization": lambda: seq(
        (5,), L.Normalization(mean=[0.1, -0.2, 0.3, 0.0, 1.0], variance=[0.5, 2.0, 1.0, 3.0, 0.25]),
        L.Dense(6, activation="relu"), L.Dense(4)),
    "normalization_image": lambda: seq(
        S2, L.Normalization(axis=-1, mean=[0.1, -0.2, 0.3], variance=[0.5, 2.0, 1.0]),
        *head(L.Conv2D(3, 3, activation="relu"))),
}

# channels_first variants. TensorFlow's CPU kernels refuse NCHW Conv1D/2D and their transposes
# (the Keras layer itself fails); those cases are skipped with TensorFlow's message. The other
# channels_first cases use DepthwiseConv (which Keras runs on CPU by transposing) where they
# need a rectified convolution.
CF1, CF2, CF3 = (3, 7), (3, 6, 6), (2, 4, 4, 4)
CF = "channels_first"


def _cf_depthwise(**kw):
    return L.DepthwiseConv2D(2, depth_multiplier=2, data_format=CF, activation="relu", **kw)


CHANNELS_FIRST_CASES = {
    "cf_conv1d": lambda: seq(CF1, *head(L.Conv1D(4, 3, strides=2, data_format=CF,
                                                 activation="relu"))),
    "cf_conv2d": lambda: seq(CF2, *head(L.Conv2D(4, 3, strides=2, padding="same",
                                                 data_format=CF, activation="relu"))),
    "cf_conv2d_transpose": lambda: seq(
        (2, 3, 3), *head(L.Conv2DTranspose(3, 3, strides=2, padding="same", data_format=CF,
                                           activation="relu"))),
    # Keras runs NCDHW convolutions with XLA. With 3 filters and an output whose last axis has
    # 3 entries, keras.ops.add puts the bias on the last axis (a Keras quirk the package must
    # replay, not "correct").
    "cf_conv3d": lambda: seq(CF3, *head(L.Conv3D(3, 2, data_format=CF, activation="relu"))),
    "cf_conv3d_strides": lambda: seq(
        CF3, *head(L.Conv3D(4, 2, strides=2, padding="same", data_format=CF,
                            activation="relu"))),
    "cf_depthwise1d": lambda: seq(CF1, *head(L.DepthwiseConv1D(3, strides=2, depth_multiplier=2,
                                                               data_format=CF,
                                                               activation="relu"))),
    "cf_depthwise2d": lambda: seq(CF2, *head(L.DepthwiseConv2D(3, depth_multiplier=2,
                                                               data_format=CF,
                                                               activation="relu"))),
    "cf_separable1d": lambda: seq(CF1, *head(L.SeparableConv1D(4, 3, data_format=CF,
                                                               activation="relu"))),
    "cf_separable2d": lambda: seq(CF2, *head(L.SeparableConv2D(4, 3, strides=2, data_format=CF,
                                                               activation="relu"))),
    "cf_max_pool2d": lambda: seq(CF2, *head(_cf_depthwise(), L.MaxPooling2D(2, data_format=CF))),
    "cf_avg_pool2d": lambda: seq(CF2, *head(_cf_depthwise(),
                                            L.AveragePooling2D(2, data_format=CF))),
    "cf_max_pool1d": lambda: seq(CF1, *head(L.Dense(7, activation="relu"),
                                            L.MaxPooling1D(2, data_format=CF))),
    "cf_max_pool3d": lambda: seq(CF3, *head(L.Dense(4, activation="relu"),
                                            L.MaxPooling3D(2, data_format=CF))),
    "cf_global_max_pool2d": lambda: seq(
        CF2, _cf_depthwise(), L.GlobalMaxPooling2D(data_format=CF), L.Dense(4)),
    "cf_global_avg_pool2d": lambda: seq(
        CF2, _cf_depthwise(), L.GlobalAveragePooling2D(data_format=CF), L.Dense(4)),
    "cf_batchnorm": lambda: seq(CF2, *head(L.DepthwiseConv2D(3, data_format=CF),
                                           L.BatchNormalization(axis=1), L.ReLU())),
    "cf_upsampling2d": lambda: seq((2, 3, 3), *head(L.UpSampling2D(2, data_format=CF),
                                                    _cf_depthwise())),
    "cf_zero_padding2d": lambda: seq(CF2, *head(L.ZeroPadding2D(1, data_format=CF),
                                                _cf_depthwise())),
    "cf_cropping2d": lambda: seq(CF2, *head(L.Cropping2D(1, data_format=CF), _cf_depthwise())),
}

_BUILT = {}


def get_case(name):
    """Build a case once. A channels_first case whose own forward pass the TensorFlow CPU
    kernels refuse (NHWC only) is skipped with TensorFlow's message."""
    if name not in _BUILT:
        builder = CASES.get(name) or CHANNELS_FIRST_CASES[name]
        case = builder()
        if name in CHANNELS_FIRST_CASES:
            try:
                case.model(case.x)
            except (tf.errors.UnimplementedError, tf.errors.InvalidArgumentError) as error:
                if "NHWC" not in str(error):
                    raise
                reason = next(line for line in str(error).splitlines() if "NHWC" in line)
                reason = re.sub(r"\x1b\[[0-9;]*m|\{\{.*\}\}", "", reason).strip()
                case = f"TensorFlow on this CPU cannot run the model {name}: {reason}"
        _BUILT[name] = case
    case = _BUILT[name]
    if isinstance(case, str):
        pytest.skip(case)
    return case
