"""EinsumDense as a kernel layer: every method on it equals an independent computation.

- relevance and gradients: numpy closed forms of the z- and epsilon-rules per token, the tape
  gradient, and the same methods on a twin model written with Dense layers applied per token
  (an EinsumDense "abc,cd->abd" is a Dense on the last axis; "abc,cde->abde" a Dense with
  the kernel reshaped to (c, d * e) followed by a Reshape);
- patterns: the estimators' numpy closed form (`oracles.numpy_patterns`) with every token
  one observation of every neuron, for each kind of equation axis;
- PatternNet on the paper's toy, planted per token: it returns the planted signal.
"""

import keras
import numpy as np
import pytest
from keras import layers as L
from oracles import assert_close, numpy_patterns, tape_gradient

import keras_patterns as kp
from keras_patterns.roles import kernel_maps

T, C, D, H, E = 4, 5, 6, 2, 3


@pytest.fixture(scope="module")
def models():
    """The EinsumDense model and its Dense twin (same weights), and inputs."""
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.normal(0.5, 1.0, size=(6, T, C)).astype("float32")
    inp = keras.Input((T, C))
    first = L.EinsumDense("abc,cd->abd", output_shape=(T, D), bias_axes="d",
                          activation="relu")
    second = L.EinsumDense("abc,cde->abde", output_shape=(T, H, E))
    model = keras.Model(inp, L.Dense(3)(L.Flatten()(second(first(inp)))))
    first.bias.assign(rng.normal(0, 0.3, size=D).astype("float32"))
    model.layers[-1].bias.assign(rng.normal(0, 0.3, size=3).astype("float32"))

    inp = keras.Input((T, C))
    hidden = L.Dense(D, activation="relu")(inp)
    per_token = L.Reshape((T, H, E))(L.Dense(H * E, use_bias=False)(hidden))
    twin = keras.Model(inp, L.Dense(3)(L.Flatten()(per_token)))
    kernel2 = second.kernel.numpy().reshape(D, H * E)
    twin.set_weights([*first.get_weights(), kernel2, *model.layers[-1].get_weights()])
    return model, twin, x


def _z_rule(model, x, epsilon=0.0):
    """LRP-z (epsilon = 0) or LRP-epsilon on the model in numpy: R_i = sum_j x_i w_ij R_j /
    (z_j + epsilon sign(z_j)) at each token, the output's relevance its largest logit."""
    w1, b1, w2, w3, b3 = (np.asarray(v, np.float64) for v in model.get_weights())
    x = x.astype(np.float64)

    def ratio(r, z):
        return r / (z + epsilon * np.where(z >= 0, 1.0, -1.0))

    z1 = x @ w1 + b1
    a1 = np.maximum(z1, 0)
    z2 = np.einsum("ntd,dhe->nthe", a1, w2)
    flat = z2.reshape(len(x), -1)
    z3 = flat @ w3 + b3
    r3 = np.zeros_like(z3)
    top = z3.argmax(1)
    r3[np.arange(len(x)), top] = z3[np.arange(len(x)), top]
    r2 = (flat * (ratio(r3, z3) @ w3.T)).reshape(z2.shape)
    r1 = a1 * np.einsum("nthe,dhe->ntd", ratio(r2, z2), w2)
    return x * (ratio(r1, z1) @ w1.T)


@pytest.mark.parametrize("method,epsilon", [("lrp.z", 0.0), ("lrp.epsilon", 1e-7),
                                            ("lrp.epsilon", 0.5)])
def test_z_and_epsilon_rules_equal_their_numpy_closed_form(models, method, epsilon):
    model, _, x = models
    kwargs = {"epsilon": epsilon} if method == "lrp.epsilon" else {}
    got = kp.create_analyzer(method, model, **kwargs).analyze(x)
    assert_close(got, _z_rule(model, x, epsilon), rtol=1e-5)


def test_gradient_equals_the_tape(models):
    model, _, x = models
    assert_close(kp.create_analyzer("gradient", model).analyze(x), tape_gradient(model, x))


@pytest.mark.parametrize("method", ["gradient", "lrp.z", "lrp.epsilon", "lrp.alpha_1_beta_0",
                                    "deep_taylor"])
def test_methods_equal_those_of_the_dense_twin(models, method):
    model, twin, x = models
    expected = kp.create_analyzer(method, twin).analyze(x)
    assert np.abs(expected).max() > 0
    assert_close(kp.create_analyzer(method, model).analyze(x), expected, rtol=1e-5)


@pytest.mark.filterwarnings("ignore:.*zero pattern")  # a few dead relu neurons
@pytest.mark.parametrize("method", ["pattern.net", "pattern.attribution"])
def test_fitted_pattern_methods_equal_those_of_the_dense_twin(models, method):
    model, twin, x = models
    out = []
    for m in (model, twin):
        analyzer = kp.create_analyzer(method, m)
        analyzer.fit(x, batch_size=4)
        out.append(analyzer.analyze(x))
    assert_close(out[0], out[1], rtol=1e-5)


# -- patterns against the estimators' closed form --------------------------------------------

# (name, equation, input shape, output_shape, bias_axes, the equation with the ellipsis
# written out, for the oracle)
PATTERN_CASES = [
    ("tokens", "abc,cd->abd", (T, C), (T, 3), "d", None),
    ("heads", "abc,cde->abde", (T, C), (T, H, E), "e", None),
    ("heads_kernel_transposed", "abc,ced->abde", (T, C), (T, H, E), "de", None),
    ("two_contracted_axes", "abcd,cde->abe", (T, H, 3), (T, 4), "e", None),
    ("contracted_kernel_transposed", "abcd,dce->abe", (T, H, 3), (T, 4), "e", None),
    ("ellipsis_left", "...b,bc->...c", (3, 2, C), 3, "c", "xyzb,bc->xyzc"),
    ("ellipsis_right", "ab...,bc->ac...", (C, T), 3, "c", "abx,bc->acx"),
    ("own_weights_per_token", "abc,bcd->abd", (3, C), (3, 2), "bd", None),
    ("bias_per_token", "abc,cd->abd", (T, C), (T, 3), "bd", None),
    ("summed_axis", "abc,cd->ad", (T, C), 3, "d", None),
]


def _closed_form(equation, x, w, bias, pattern_type):
    """Patterns of an einsum kernel from numpy alone: per index of the neuron axes that x
    also has, the matrix of observations (every token a row, the contracted entries its
    columns, x summed over the axes only x has) against the kernel's matrix."""
    operands, ys = equation.split("->")
    xs, ws = operands.split(",")
    z = np.einsum(equation, x, w) + (0.0 if bias is None else bias)
    tokens = [c for c in xs if c in ys and c not in ws]
    contracted = [c for c in ws if c in xs and c not in ys]
    shared = [c for c in ws if c in xs and c in ys]
    outs = [c for c in ws if c in ys and c not in xs]
    size = dict(zip(ws, w.shape)) | dict(zip(xs, x.shape))
    n_tok = int(np.prod([size[c] for c in tokens]))
    n_in = int(np.prod([size[c] for c in contracted]))
    n_out = int(np.prod([size[c] for c in outs]))
    order = "".join(tokens + shared + contracted)
    xt = np.einsum(f"{xs}->{order}", x).reshape(n_tok, -1, n_in)
    zt = np.einsum(f"{ys}->{''.join(tokens + shared + outs)}", z).reshape(n_tok, -1, n_out)
    wt = np.einsum(f"{ws}->{''.join(shared + contracted + outs)}", w).reshape(-1, n_in, n_out)
    result = {}
    for d in range(wt.shape[0]):
        plus = zt[:, d] > 0  # the regime: the pre-activation with its bias
        for name, a in numpy_patterns(xt[:, d], wt[d], 0.0, pattern_type, plus).items():
            result.setdefault(name, []).append(a)
    shape = [size[c] for c in shared + contracted + outs]
    back = f"{''.join(shared + contracted + outs)}->{ws}"
    return {name: np.einsum(back, np.stack(a).reshape(shape)) for name, a in result.items()}


@pytest.mark.parametrize("pattern_type", ["relu", "linear"])
@pytest.mark.parametrize("name,equation,shape,output_shape,bias_axes,written",
                         PATTERN_CASES, ids=[c[0] for c in PATTERN_CASES])
def test_patterns_equal_the_closed_form_with_tokens_as_samples(
        name, equation, shape, output_shape, bias_axes, written, pattern_type):
    _check_patterns(equation, shape, output_shape, bias_axes, written, pattern_type)


@pytest.mark.parametrize("name,equation,shape,output_shape,bias_axes,written",
                         [c for c in PATTERN_CASES if "transposed" in c[0]])
def test_eq8_patterns_with_input_means_equal_the_closed_form(
        name, equation, shape, output_shape, bias_axes, written):
    """relu.eq8 reads E_r[x], laid out from the input channels onto the kernel."""
    _check_patterns(equation, shape, output_shape, bias_axes, written, "relu.eq8")


def _check_patterns(equation, shape, output_shape, bias_axes, written, pattern_type):
    rng = np.random.default_rng(5)
    x = rng.normal(1.5, 1.0, size=(24,) + shape).astype("float32")  # offset: shifts matter
    layer = L.EinsumDense(equation, output_shape=output_shape, bias_axes=bias_axes)
    model = keras.Sequential([keras.Input(shape), layer])
    layer.bias.assign(rng.normal(0, 1.0, size=layer.bias.shape).astype("float32"))
    p = kp.compute_patterns(model, x, pattern_type=pattern_type, batch_size=10,
                            negative_patterns="all")
    expected = _closed_form(written or equation, x.astype(np.float64),
                            layer.kernel.numpy().astype(np.float64),
                            layer.bias.numpy().astype(np.float64), pattern_type)
    assert set(p[layer.name]) == set(expected)
    for pattern, a in expected.items():
        assert np.abs(a).max() > 0
        assert_close(p[layer.name][pattern], a, rtol=2e-4)


# -- the paper's toy, one planted signal per head and dimension -------------------------------


def test_pattern_net_recovers_the_planted_signal_per_token():
    """x = sum_k a_k s_k + a_d eps at every token, W^T a_k = e_k and W^T a_d = 0, so neuron
    (h, e) outputs s_k, k = h * E + e. The signals and the distractor are exactly
    uncorrelated over the tokens (orthogonalised), so the linear pattern of neuron k is a_k
    and PatternNet returns a_k y at the explained token, nothing elsewhere (section 2)."""
    rng = np.random.default_rng(11)
    k, n, dim = H * E, 250, H * E + 2
    directions = rng.normal(size=(k + 1, dim))  # a_1 .. a_k, then the distractor a_d
    w = np.linalg.pinv(directions)[:, :k]  # W^T a_j = e_j, W^T a_d = 0
    # zero-mean, mutually orthogonal sources: orthogonal to a constant column
    sources, _ = np.linalg.qr(np.hstack([np.ones((n * T, 1)),
                                         rng.normal(size=(n * T, k + 1))]))
    x = (sources[:, 1:] @ directions * np.sqrt(n * T)).reshape(n, T, dim).astype("float32")
    layer = L.EinsumDense("abc,cde->abde", output_shape=(T, H, E))
    model = keras.Sequential([keras.Input((T, dim)), layer])
    layer.kernel.assign(w.reshape(dim, H, E).astype("float32"))
    cos_w = [abs(w[:, j] @ directions[j]) / np.linalg.norm(w[:, j])
             / np.linalg.norm(directions[j]) for j in range(k)]
    assert max(cos_w) < 0.95  # the weights are not the signal direction
    analyzer = kp.create_analyzer("pattern.net", model, pattern_type="linear",
                                  neuron_selection_mode="index")
    analyzer.fit(x, batch_size=100)
    y = model.predict(x[:8], verbose=0)
    for t, h, e in [(0, 0, 0), (2, 1, 2), (3, 0, 1)]:
        index = (t * H + h) * E + e
        signal = analyzer.analyze(x[:8], neuron_selection=index)
        assert np.abs(np.delete(signal, t, axis=1)).max() == 0
        a = directions[h * E + e]
        for s in signal[:, t]:
            assert abs(s @ a) / np.linalg.norm(s) / np.linalg.norm(a) > 0.999
        assert_close(signal[:, t], y[:, t, h, e, None] * a, rtol=1e-4)


def test_per_neuron_vectors_follow_the_output_axes():
    """Neurons are flat over the output's neuron axes in the output's order, whatever the
    kernel's order: the bias (over some of them), per-neuron sums and their inverse."""
    layer = L.EinsumDense("abc,ced->abde", output_shape=(T, H, E), bias_axes="e")
    keras.Sequential([keras.Input((T, C)), layer])
    layer.bias.assign(np.arange(E, dtype="float32"))
    kmap = kernel_maps(layer)[0]
    w = layer.kernel.numpy()
    assert kmap.output_channels == H * E and kmap.input_channels == C
    assert_close(kmap.bias, np.tile(np.arange(E), H))
    assert_close(kmap.kernel_to_neuron(w, np.sum), np.einsum("ced->de", w).ravel())
    per_neuron = np.arange(H * E, dtype="float32")
    assert_close(kmap.neuron_to_kernel(per_neuron) * np.ones_like(w),
                 np.broadcast_to(per_neuron.reshape(H, E).T[None], w.shape))


# -- BatchNormalization folding and refusals --------------------------------------------------


def test_batchnorm_after_einsum_dense_is_folded_as_after_dense():
    keras.utils.set_random_seed(2)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, T, C)).astype("float32")
    outs = []
    for layer in (L.EinsumDense("abc,cd->abd", output_shape=(T, 3), bias_axes="d"),
                  L.Dense(3)):
        bn = L.BatchNormalization()
        model = keras.Sequential([keras.Input((T, C)), layer, bn, L.ReLU(), L.Flatten(),
                                  L.Dense(2)])
        if not outs:
            weights = [rng.normal(size=v.shape).astype("float32") for v in model.weights]
            weights[5] = np.abs(weights[5]) + 0.5  # a positive moving variance
        model.set_weights(weights)
        analyzer = kp.create_analyzer("lrp.z", model)
        assert any(node.batchnorm for node in analyzer.graph.nodes)
        outs.append(analyzer.analyze(x))
    assert_close(outs[0], outs[1], rtol=1e-5)


def test_an_equation_with_a_diagonal_is_refused_by_name_and_kept_for_gradients():
    layer = L.EinsumDense("abb,bc->ac", output_shape=3, name="diagonal_einsum")
    model = keras.Sequential([keras.Input((4, 4)), layer])
    x = np.random.default_rng(0).normal(size=(2, 4, 4)).astype("float32")
    with pytest.raises(kp.NotAnalyzableModelError, match="diagonal_einsum.*repeats an axis"):
        kp.create_analyzer("lrp.z", model)
    assert_close(kp.create_analyzer("gradient", model).analyze(x), tape_gradient(model, x))
