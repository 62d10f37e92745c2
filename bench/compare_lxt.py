"""keras-patterns' AttnLRP against lxt's (the AttnLRP authors' PyTorch package), on the same
two-block encoder with the same weights.

Two Python environments take part, exchanging .npz files in DIR:

    python bench/compare_lxt.py keras DIR                     # this project's environment
    /path/to/lxt-venv/bin/python bench/compare_lxt.py lxt DIR  # torch, transformers 4.x, lxt 2.1

or both at once (the second through a subprocess):

    python bench/compare_lxt.py all DIR --lxt-python /path/to/lxt-venv/bin/python

``keras`` builds the encoder of `tests/attnlrp_numpy.py` (2 × [MultiHeadAttention, Add,
LayerNorm, Dense gelu, Dense, Add, LayerNorm], mean pooling, Dense head; every weight
random, biases and β too) at two sizes, and writes its weights, inputs, keras-patterns'
``attnlrp`` relevance (the float32 model, and a float64 copy with the same weights) and the
float64 numpy evaluation in relevance form.

``lxt`` loads the weights into Hugging Face's ``BertEncoder`` (post-norm blocks of the same
layout; its embeddings are not used: the inputs enter the encoder directly) patched by
``lxt.efficient.monkey_patch`` (lxt's BERT: the uniform rule at QKᵀ and attention·V by
halving the gradient, the identity rule at GELU, LayerNorm with its standard deviation
detached; linear layers untouched, i.e. LRP-0 with ε = 0), mean-pools the tokens and applies
the head, all in float64; the relevance is input × the gradient of the explained logit. It
prints the agreement of keras-patterns and of the numpy evaluation with lxt, as shipped and
with its identity rule's ε (f(z) / (z + 1e-10) at GELU) set to 0.

The lxt environment (outside the repository; lxt 2.1 imports with transformers 4.x only,
and imports torchvision, whose PyPI wheel needs PyPI's torch rather than a CPU-only build):

    python3 -m venv lxt-venv
    lxt-venv/bin/pip install torch==2.13.0 transformers==4.52.4 lxt==2.1
    lxt-venv/bin/pip uninstall -y kernels   # where its dependencies brought it
"""

import argparse
import contextlib
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = {"tiny": dict(tokens=5, width=8, heads=2, key_dim=4),
         "small": dict(tokens=16, width=32, heads=4, key_dim=8)}
LOGITS = (0, 1, 2)


def keras_side(directory, samples=4):
    """Weights, inputs, keras-patterns' relevance (float32, and float64 with the same
    weights) and the numpy oracle's, per size."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path[:0] = [os.path.join(HERE, ".."), os.path.join(HERE, "..", "tests")]
    import keras
    from attnlrp_numpy import relevance, two_block_encoder, weights_of

    import keras_patterns as kp

    for size, dims in SIZES.items():
        model = two_block_encoder(seed=0, **dims)
        keras.config.set_floatx("float64")  # the Input's dtype
        keras.config.set_dtype_policy("float64")  # the layers'
        model64 = two_block_encoder(seed=0, **dims)
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy("float32")
        model64.set_weights([w.astype("float64") for w in model.get_weights()])
        x = np.random.default_rng(1).normal(size=(samples, dims["tokens"], dims["width"]))
        x = x.astype("float32")
        out = {f"w:{k}": v for k, v in weights_of(model).items()}
        out.update(x=x, logits=model(x).numpy(), heads=dims["heads"])
        for name, m, xs in (("kp32", model, x), ("kp64", model64, x.astype("float64"))):
            analyzer = kp.create_analyzer("attnlrp", m, neuron_selection_mode="index")
            for j in LOGITS:
                out[f"{name}:{j}"] = analyzer.analyze(xs, neuron_selection=j)
        for j in LOGITS:
            out[f"numpy:{j}"] = relevance(model, x, j, "attnlrp")[0]
        np.savez(os.path.join(directory, f"keras_{size}.npz"), **out)


def lxt_encoder(w, heads):
    """Hugging Face's BertEncoder patched by lxt, in float64, with the Keras weights, and
    the head (kernel, bias)."""
    import torch
    import transformers.models.bert.modeling_bert as modeling_bert

    width = w["w:b0_ln1/gamma"].shape[0]
    config = modeling_bert.BertConfig(
        hidden_size=width, num_hidden_layers=2, num_attention_heads=heads,
        intermediate_size=w["w:b0_ff1/kernel"].shape[1], hidden_act="gelu",
        layer_norm_eps=1e-3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    config._attn_implementation = "eager"
    encoder = modeling_bert.BertEncoder(config).double().eval()

    def load(linear, kernel, bias):  # a Keras kernel (in, out) -> torch's weight (out, in)
        linear.weight.data = torch.from_numpy(np.ascontiguousarray(kernel.T))
        linear.bias.data = torch.from_numpy(bias.reshape(-1).copy())

    def norm(ln, name):
        ln.weight.data = torch.from_numpy(w[f"w:{name}/gamma"].copy())
        ln.bias.data = torch.from_numpy(w[f"w:{name}/beta"].copy())

    for b, layer in enumerate(encoder.layer):
        mha, attention = f"w:b{b}_mha", layer.attention
        for p in ("query", "key", "value"):
            # (width, heads, key_dim): head-major, as BERT's transpose_for_scores splits
            load(getattr(attention.self, p), w[f"{mha}/{p}/kernel"].reshape(width, -1),
                 w[f"{mha}/{p}/bias"])
        load(attention.output.dense, w[f"{mha}/attention_output/kernel"].reshape(-1, width),
             w[f"{mha}/attention_output/bias"])
        norm(attention.output.LayerNorm, f"b{b}_ln1")
        load(layer.intermediate.dense, w[f"w:b{b}_ff1/kernel"], w[f"w:b{b}_ff1/bias"])
        load(layer.output.dense, w[f"w:b{b}_ff2/kernel"], w[f"w:b{b}_ff2/bias"])
        norm(layer.output.LayerNorm, f"b{b}_ln2")
    return encoder, torch.from_numpy(w["w:head/kernel"]), torch.from_numpy(w["w:head/bias"])


def agreement(got, reference):
    """Max |got - reference| over max |reference|, and the correlation of the two."""
    got, reference = np.ravel(got), np.ravel(reference)
    return (float(np.abs(got - reference).max() / np.abs(reference).max()),
            float(np.corrcoef(got, reference)[0, 1]))


@contextlib.contextmanager
def identity_rule_epsilon(epsilon):
    """lxt's identity rule (GELU) computes its gradient as f(z) / (z + 1e-10); within this
    context as f(z) / (z + epsilon)."""
    from lxt.efficient import rules

    shipped = rules.identity_rule_implicit_fn.forward
    rules.identity_rule_implicit_fn.forward = staticmethod(
        lambda ctx, fn, z, _=None: shipped(ctx, fn, z, epsilon))
    try:
        yield
    finally:
        rules.identity_rule_implicit_fn.forward = staticmethod(shipped)


def lxt_relevance(encoder, kernel, bias, x, j):
    """x ⊙ the gradient of logit j through lxt's patched encoder, mean pooling and the head."""
    import torch

    x = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    logits = encoder(x).last_hidden_state.mean(dim=1) @ kernel + bias
    logits[:, j].sum().backward()
    return (x * x.grad).detach().numpy(), logits.detach().numpy()


COMPARED = (("kp32", "lxt", "keras-patterns float32 vs lxt"),
            ("kp64", "lxt", "keras-patterns float64 vs lxt"),
            ("kp64", "lxt_eps0", "keras-patterns float64 vs lxt with the identity rule's eps = 0"),
            ("numpy", "lxt", "numpy oracle vs lxt"),
            ("numpy", "lxt_eps0", "numpy oracle vs lxt with the identity rule's eps = 0"))


def lxt_side(directory):
    """lxt's relevance per size and logit, and its agreement with keras-patterns' and numpy's
    (max relative difference and lowest correlation over the logits)."""
    import transformers.models.bert.modeling_bert as modeling_bert
    from lxt.efficient import monkey_patch

    monkey_patch(modeling_bert)  # before building: the patch replaces the module's classes
    for size in SIZES:
        w = dict(np.load(os.path.join(directory, f"keras_{size}.npz")))
        encoder, kernel, bias = lxt_encoder(w, int(w["heads"]))
        r = {}
        for j in LOGITS:
            r[f"lxt:{j}"], logits = lxt_relevance(encoder, kernel, bias, w["x"], j)
            with identity_rule_epsilon(0.0):
                r[f"lxt_eps0:{j}"], _ = lxt_relevance(encoder, kernel, bias, w["x"], j)
        tokens, width = w["x"].shape[1:]
        print(f"{size}: {len(w['x'])} inputs of {tokens} tokens x {width}, logits {LOGITS}; "
              f"max |logit float32 - float64| {np.abs(logits - w['logits']).max():.1e}")
        for ours, theirs, label in COMPARED:
            pairs = [agreement(w[f"{ours}:{j}"], r[f"{theirs}:{j}"]) for j in LOGITS]
            print(f"  {label}: max rel diff {max(p[0] for p in pairs):.1e}, "
                  f"correlation {min(p[1] for p in pairs):.12f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("side", choices=("keras", "lxt", "all"))
    parser.add_argument("directory")
    parser.add_argument("--lxt-python", default="python",
                        help="the interpreter of the environment with lxt (for 'all')")
    args = parser.parse_args()
    os.makedirs(args.directory, exist_ok=True)
    if args.side in ("keras", "all"):
        keras_side(args.directory)
    if args.side == "lxt":
        lxt_side(args.directory)
    if args.side == "all":
        subprocess.run([args.lxt_python, __file__, "lxt", args.directory], check=True)


if __name__ == "__main__":
    main()
