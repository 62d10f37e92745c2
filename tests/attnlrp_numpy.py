"""AttnLRP and CP-LRP of a two-block Keras encoder, evaluated directly in numpy (float64).

An oracle written apart from the package: the model's forward pass is recomputed in numpy
from the Keras weights, every intermediate kept, and the relevance is carried back in
relevance form (no gradient anywhere), one function per rule:

- `lrp_0` (Dense, the EinsumDense projections of attention): R_x = x ⊙ Wᵀ(R / z), z the
  layer's output with its bias (which absorbs its share);
- `proportional_split` (Add) and `mean_pool_rule` (mean pooling): each summand gets its share
  of the sum's relevance in proportion to its value;
- `identity_rule` (GELU): the relevance passes unchanged;
- `layer_norm_rule`: σ held constant, R_x = x ⊙ Jᵀ(R / y), J the Jacobian of
  γ (x - mean(x)) / σ + β at fixed σ;
- `product_rule` (the attention's two products S = (Q/√d)Kᵀ and O = A V): factor f gets
  share_f · f ⊙ J_fᵀ(R / y); AttnLRP gives each factor ½, CP gives the value all of O's
  relevance and the probabilities none (so Q and K get none);
- `softmax_rule` (AttnLRP): R_S = S ⊙ Jᵀ(R_A / A), per row S_i (R_Ai - A_i Σ_j R_Aj).

The relevance starts as the explained logit (the head's output j, zero elsewhere).
"""

import math

import keras
import numpy as np
from keras import layers
from transformer_oracles import randomize

SHARES = {"attnlrp": {"scores": (0.5, 0.5), "attended": (0.5, 0.5)},
          "cp": {"scores": (0.0, 0.0), "attended": (0.0, 1.0)}}
"""The share of each factor of the attention's products: scores (Q, K), attended (A, V)."""


# -- the model ---------------------------------------------------------------------------

def two_block_encoder(seed=0, tokens=5, width=8, heads=2, key_dim=4, dropout=0.0):
    """2 × [MultiHeadAttention, Add, LayerNorm, Dense gelu, Dense, Add, LayerNorm], mean
    pooling and a 3-class Dense head, every weight random (biases and β too). With
    `dropout` > 0, Keras computes the attention with einsums and a Softmax layer instead of
    one fused `dot_product_attention`; the weights are the same for the same seed."""
    keras.utils.set_random_seed(seed)
    x = inp = keras.Input((tokens, width))
    for b in range(2):
        a = layers.MultiHeadAttention(heads, key_dim, dropout=dropout, name=f"b{b}_mha")(x, x)
        x = layers.LayerNormalization(name=f"b{b}_ln1")(layers.Add()([x, a]))
        f = layers.Dense(2 * width, activation="gelu", name=f"b{b}_ff1")(x)
        f = layers.Dense(width, name=f"b{b}_ff2")(f)
        x = layers.LayerNormalization(name=f"b{b}_ln2")(layers.Add()([x, f]))
    out = layers.Dense(3, name="head")(layers.GlobalAveragePooling1D()(x))
    return randomize(keras.Model(inp, out), seed)


def weights_of(model):
    """The encoder's weights as float64 arrays, by layer name and weight name."""
    out = {}
    for layer in model.layers:
        for w in layer.weights:
            out[w.path] = np.asarray(w.numpy(), np.float64)
    return out


# -- the rules ---------------------------------------------------------------------------

def _backward(equation):
    """'x,w->z' (an einsum of input and kernel) as 'z,w->x' (its transpose)."""
    x, rest = equation.split(",")
    w, z = rest.split("->")
    return f"{z},{w}->{x}"


def lrp_0(x, kernel, z, relevance, equation):
    """LRP-0 of z = einsum(equation, x, kernel) + bias: R_x = x ⊙ Wᵀ(R / z)."""
    return x * np.einsum(_backward(equation), relevance / z, kernel)


def proportional_split(summands, relevance):
    """Each summand x_i of y = Σ x_i gets x_i R / y."""
    total = sum(summands)
    return [x * relevance / total for x in summands]


def mean_pool_rule(x, relevance):
    """y = mean over tokens (axis 1): token t gets (x_t / T) R / y."""
    return x / x.shape[1] * (relevance / x.mean(axis=1))[:, None]


def identity_rule(relevance):
    """An element-wise activation (GELU): the relevance passes unchanged."""
    return relevance


def layer_norm_rule(x, sigma, gamma, y, relevance):
    """y = γ (x - mean(x)) / σ + β with σ held: R_x = x ⊙ Jᵀ(R / y); Jᵀ s = centre(γ s / σ)."""
    g = gamma * (relevance / y) / sigma
    return x * (g - g.mean(axis=-1, keepdims=True))


def product_rule(a, b, y, relevance, equation, shares):
    """y = einsum(equation, a, b), linear in each factor: a gets share_a · a ⊙ J_aᵀ(R / y),
    b gets share_b · b ⊙ J_bᵀ(R / y)."""
    sa, sb = equation.split("->")[0].split(",")
    out = equation.split("->")[1]
    s = relevance / y
    r_a = shares[0] * a * np.einsum(f"{out},{sb}->{sa}", s, b)
    r_b = shares[1] * b * np.einsum(f"{sa},{out}->{sb}", a, s)
    return r_a, r_b


def softmax_rule(scores, probabilities, relevance):
    """A = softmax(S) along the last axis: R_S = S ⊙ Jᵀ(R_A / A) = S (R_A - A Σ_j R_Aj)."""
    return scores * (relevance - probabilities * relevance.sum(axis=-1, keepdims=True))


# -- the forward pass, every intermediate kept --------------------------------------------

QKV = "btc,cnh->btnh"
SCORES = "btnh,bsnh->bnts"
ATTENDED = "bnts,bsnh->btnh"
OUTPUT = "btnh,nhw->btw"
DENSE = "btc,cd->btd"


def _gelu(z):
    return 0.5 * z * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))


def _softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _layer_norm(w, name, x):
    sigma = np.sqrt(x.var(axis=-1, keepdims=True) + 1e-3)  # Keras' default epsilon
    gamma = w[f"{name}/gamma"]
    return {"x": x, "sigma": sigma, "gamma": gamma,
            "y": gamma * (x - x.mean(axis=-1, keepdims=True)) / sigma + w[f"{name}/beta"]}


def _dense(w, name, x, equation):
    kernel = w[f"{name}/kernel"]
    return {"x": x, "kernel": kernel, "equation": equation,
            "z": np.einsum(equation, x, kernel) + w[f"{name}/bias"]}


def _block(w, b, x):
    mha = f"b{b}_mha"
    t = {"x": x}
    for p in ("query", "key", "value"):
        t[p] = _dense(w, f"{mha}/{p}", x, QKV)
    q, k, v = (t[p]["z"] for p in ("query", "key", "value"))
    t["q_scaled"] = q / math.sqrt(q.shape[-1])
    t["scores"] = np.einsum(SCORES, t["q_scaled"], k)
    t["probabilities"] = _softmax(t["scores"])
    t["attended"] = np.einsum(ATTENDED, t["probabilities"], v)
    t["output"] = _dense(w, f"{mha}/attention_output", t["attended"], OUTPUT)
    t["ln1"] = _layer_norm(w, f"b{b}_ln1", x + t["output"]["z"])
    t["ff1"] = _dense(w, f"b{b}_ff1", t["ln1"]["y"], DENSE)
    t["ff2"] = _dense(w, f"b{b}_ff2", _gelu(t["ff1"]["z"]), DENSE)
    t["ln2"] = _layer_norm(w, f"b{b}_ln2", t["ln1"]["y"] + t["ff2"]["z"])
    return t


def forward(w, x):
    """The encoder's forward pass: the two blocks' intermediates, the pooled tokens, the
    head's intermediates (its "z" is the logits)."""
    blocks = []
    for b in range(2):
        blocks.append(_block(w, b, x))
        x = blocks[-1]["ln2"]["y"]
    pooled = x.mean(axis=1)
    head = {"x": pooled, "kernel": w["head/kernel"], "equation": "bc,cd->bd",
            "z": pooled @ w["head/kernel"] + w["head/bias"]}
    return blocks, head


# -- the relevance, carried back --------------------------------------------------------

def _lrp_0(dense, relevance):
    return lrp_0(dense["x"], dense["kernel"], dense["z"], relevance, dense["equation"])


def _layer_norm_relevance(ln, relevance):
    return layer_norm_rule(ln["x"], ln["sigma"], ln["gamma"], ln["y"], relevance)


def _attention_relevance(t, r_attended, treatment):
    shares = SHARES[treatment]
    r_probabilities, r_v = product_rule(t["probabilities"], t["value"]["z"], t["attended"],
                                        r_attended, ATTENDED, shares["attended"])
    if treatment == "cp":  # the probabilities are held: Q and K get nothing
        return 0.0, 0.0, r_v
    r_scores = softmax_rule(t["scores"], t["probabilities"], r_probabilities)
    r_q, r_k = product_rule(t["q_scaled"], t["key"]["z"], t["scores"], r_scores, SCORES,
                            shares["scores"])
    return r_q, r_k, r_v  # q / √d is linear in q: its relevance is q's


def _block_relevance(t, relevance, treatment):
    r_ln1_out, r_ff2 = proportional_split(
        [t["ln1"]["y"], t["ff2"]["z"]], _layer_norm_relevance(t["ln2"], relevance))
    r_gelu = _lrp_0(t["ff2"], r_ff2)
    r_ln1_out = r_ln1_out + _lrp_0(t["ff1"], identity_rule(r_gelu))
    r_x, r_output = proportional_split([t["x"], t["output"]["z"]],
                                       _layer_norm_relevance(t["ln1"], r_ln1_out))
    r_attended = _lrp_0(t["output"], r_output)
    r_q, r_k, r_v = _attention_relevance(t, r_attended, treatment)
    for p, r in (("query", r_q), ("key", r_k), ("value", r_v)):
        if treatment == "attnlrp" or p == "value":
            r_x = r_x + _lrp_0(t[p], r)
    return r_x


def relevance(model, x, index, treatment="attnlrp"):
    """The relevance of the input tokens for logit `index` of `two_block_encoder`'s model,
    under `treatment` ("attnlrp" or "cp"), in float64; also the logits."""
    blocks, head = forward(weights_of(model), np.asarray(x, np.float64))
    r_logits = np.zeros_like(head["z"])
    r_logits[:, index] = head["z"][:, index]
    r = mean_pool_rule(blocks[-1]["ln2"]["y"], _lrp_0(head, r_logits))
    for t in reversed(blocks):
        r = _block_relevance(t, r, treatment)
    return r, head["z"]
