"""Closed-form float64 numpy reference for LRP and Deep Taylor analyzers of whole models.

Written from the rule formulas alone (no code shared with the package):

- `walk`: a forward/backward walker for Sequential stacks of Dense / Conv1D / Conv2D /
  BatchNormalization / ReLU / Flatten / Reshape / MaxPooling / AveragePooling /
  GlobalAveragePooling layers, reading the weights from the Keras layers.
- `analyzer_setup`: the rule choice of every analyzer name, as specified.

The rules of one layer (linear maps, `rule_*`, `RULES`, pooling and merge relevance) live in
`lrp_layer_rules`; the names the tests use are re-exported here.
"""

import keras
import numpy as np
from lrp_layer_rules import (
    EPS,
    RULES,
    ConvOp,
    DenseOp,
    P,
    avg_pool,
    avg_pool_relevance,
    global_avg_pool_relevance,
    max_pool,
    max_pool_relevance,
    rule_alpha_beta,
    rule_bounded,
    rule_epsilon,
    rule_flat,
    rule_gamma,
    rule_z_plus,
)
from lrp_layer_rules import neg as neg
from lrp_layer_rules import pos as pos
from lrp_layer_rules import stab as stab
from lrp_layer_rules import sum_relevance as sum_relevance
from oracles import select

# -- model walker ------------------------------------------------------------------------------


def _np(v):
    return np.asarray(keras.ops.convert_to_numpy(v), np.float64)


def _activation_name(layer):
    act = getattr(layer, "activation", None)
    return None if act is None else getattr(act, "__name__", str(act))


def parse(model):
    """The model as a list of steps: ("kernel", layer), ("relu",), ("flatten",), ..."""
    steps = []
    for layer in model.layers:
        if isinstance(layer, (keras.layers.InputLayer, keras.layers.Dropout)):
            continue
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D)):
            steps.append({"kind": "kernel", "layer": layer, "bn": None})
            act = _activation_name(layer)
        elif isinstance(layer, keras.layers.BatchNormalization):
            assert steps and steps[-1]["kind"] == "kernel" and steps[-1]["bn"] is None
            steps[-1]["bn"] = layer
            continue
        elif isinstance(layer, keras.layers.ReLU):
            act = "relu"
        elif isinstance(layer, keras.layers.Activation):
            act = _activation_name(layer)
        elif isinstance(layer, keras.layers.Softmax):
            act = "softmax"
        elif isinstance(layer, keras.layers.Flatten):
            steps.append({"kind": "reshape", "shape": (-1,)})
            continue
        elif isinstance(layer, keras.layers.Reshape):
            steps.append({"kind": "reshape", "shape": tuple(layer.target_shape)})
            continue
        elif isinstance(layer, (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D)):
            steps.append({"kind": "maxpool", "layer": layer})
            continue
        elif isinstance(layer, (keras.layers.AveragePooling1D, keras.layers.AveragePooling2D)):
            steps.append({"kind": "avgpool", "layer": layer})
            continue
        elif isinstance(
            layer, (keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D)
        ):
            steps.append({"kind": "gap"})
            continue
        else:
            raise TypeError(f"reference walker: unsupported layer {layer.__class__.__name__}")
        if act in (None, "linear"):
            continue
        if act not in ("relu", "softmax"):
            raise TypeError(f"reference walker: unsupported activation {act}")
        steps.append({"kind": act})
    if steps and steps[-1]["kind"] == "softmax":  # explain the logits
        steps.pop()
    assert all(s["kind"] != "softmax" for s in steps)
    # annotate the kernel layers: position, input layer, output into a relu
    kernels = [i for i, s in enumerate(steps) if s["kind"] == "kernel"]
    for pos_, i in enumerate(kernels):
        s = steps[i]
        s["position"] = pos_
        s["is_input"] = all(steps[j]["kind"] == "reshape" for j in range(i))
        s["feeds_relu"] = i + 1 < len(steps) and steps[i + 1]["kind"] == "relu"
    return steps


def kernel_op(step, in_shape):
    """The (BN-folded) linear map of a kernel step, float64."""
    layer = step["layer"]
    W = _np(layer.kernel)
    b = _np(layer.bias) if layer.use_bias else np.zeros(W.shape[-1])
    bn = step["bn"]
    if bn is not None:
        gamma = _np(bn.gamma) if bn.scale else np.ones_like(b)
        beta = _np(bn.beta) if bn.center else np.zeros_like(b)
        scale = gamma / np.sqrt(_np(bn.moving_variance) + bn.epsilon)
        W = W * scale
        b = (b - _np(bn.moving_mean)) * scale + beta
    if isinstance(layer, keras.layers.Dense):
        return DenseOp(W, b)
    return ConvOp(W, b, in_shape, layer.strides, layer.padding, layer.dilation_rate)


def forward(steps, x):
    """Forward pass; returns the input of every step and the output."""
    inputs = []
    for s in steps:
        inputs.append(x)
        k = s["kind"]
        if k == "kernel":
            s["op"] = op = kernel_op(s, x.shape[1:])
            x = op.f(x, op.W) + op.b
        elif k == "relu":
            x = np.maximum(x, 0.0)
        elif k == "reshape":
            x = x.reshape((len(x),) + s["shape"])
        elif k == "maxpool":
            x = max_pool(x, s["layer"].pool_size, s["layer"].strides, s["layer"].padding)
        elif k == "avgpool":
            assert s["layer"].padding == "valid"
            x = avg_pool(x, s["layer"].pool_size, s["layer"].strides)
        elif k == "gap":
            x = x.mean(axis=tuple(range(1, x.ndim - 1)))
    return inputs, x


def start_relevance(y, mode="max_activation", index=None, positive=False):
    """y at the selected output unit, 0 elsewhere (max(y, 0) for Deep Taylor)."""
    flat = y.reshape(len(y), -1)
    mask = select(y, mode, index).reshape(flat.shape)
    start = mask * (np.maximum(flat, 0.0) if positive else flat)
    return start.reshape(y.shape)


def walk(model, x, rule_for, mode="max_activation", index=None, deep_taylor=False):
    """Input relevance of a Sequential model.

    rule_for(step) -> rule(op, x, R) for every kernel step (keys: layer, position, is_input,
    feeds_relu). With deep_taylor, the start is max(y, 0) and a relu passes relevance only
    where its input was positive; otherwise element-wise activations pass it unchanged.
    """
    steps = parse(model)
    x = np.asarray(x, np.float64)
    inputs, y = forward(steps, x)
    R = start_relevance(y, mode, index, positive=deep_taylor)
    for s, xin in zip(reversed(steps), reversed(inputs)):
        k = s["kind"]
        if k == "kernel":
            R = rule_for(s)(s["op"], xin, R)
        elif k == "relu":
            if deep_taylor:
                R = R * (xin > 0)
        elif k == "reshape":
            R = R.reshape(xin.shape)
        elif k == "maxpool":
            L = s["layer"]
            R = max_pool_relevance(xin, R, L.pool_size, L.strides, L.padding)
        elif k == "avgpool":
            L = s["layer"]
            R = avg_pool_relevance(xin, R, L.pool_size, L.strides)
        elif k == "gap":
            R = global_avg_pool_relevance(xin, R)
    return R


def predict(model, x):
    """The reference forward pass (logits), for checking the walker against Keras."""
    return forward(parse(model), np.asarray(x, np.float64))[1]


# -- analyzer names -> rules -------------------------------------------------------------------


def _constant(rule):
    return lambda step: rule


def analyzer_setup(name, **params):
    """(rule_for, deep_taylor) for an analyzer name, following the specification."""
    if name == "lrp.epsilon":
        return _constant(P(rule_epsilon, epsilon=params.get("epsilon", EPS), bias=True)), False
    if name == "lrp.epsilon_IB":
        return _constant(P(rule_epsilon, epsilon=params.get("epsilon", EPS), bias=False)), False
    if name == "lrp.alpha_beta":
        return _constant(
            P(rule_alpha_beta, alpha=params["alpha"], beta=params["beta"],
              bias=params.get("bias", True))
        ), False
    if name == "lrp.gamma":
        return _constant(P(rule_gamma, gamma=params.get("gamma", 0.25))), False
    if name.startswith("lrp.sequential_preset_"):
        eps = params.get("epsilon", 0.1)
        conv_rule = RULES["alpha_1_beta_0" if "preset_a" in name else "alpha_2_beta_1"]
        flat_input = name.endswith("_flat")

        def rule_for(step):
            if flat_input and step["is_input"]:
                return rule_flat
            if isinstance(step["layer"], keras.layers.Dense):
                return P(rule_epsilon, epsilon=eps, bias=True)
            return conv_rule

        return rule_for, False
    if name in ("deep_taylor", "deep_taylor.bounded"):
        bounded = name == "deep_taylor.bounded"

        def rule_for(step):
            if bounded and step["is_input"]:
                return P(rule_bounded, low=params["low"], high=params["high"])
            return rule_z_plus  # at every kernel layer, the linear output layer too

        return rule_for, True
    if name.startswith("lrp."):
        assert not params, params
        return _constant(RULES[name[4:]]), False
    raise KeyError(name)


def reference(name, model, x, mode="max_activation", index=None, **params):
    rule_for, dt = analyzer_setup(name, **params)
    return walk(model, x, rule_for, mode, index, deep_taylor=dt)
