"""Vector-Jacobian products by tape: the one way every reverse layer and rule goes back
through a forward function."""

import tensorflow as tf


def vjp(forward, xs, rs, watch=None):
    """Vector-Jacobian product of `forward` at `xs` with cotangents `rs` (tape, no copies).

    Inputs that are not floating point (token ids) get no gradient (None). Forward operations
    whose value the gradient does not need (the convolution in a kernel map) are pruned from
    the compiled graph, so this costs what the backward operation costs.
    """
    watch = [x for x in xs if x.dtype.is_floating] if watch is None else watch
    with tf.GradientTape(watch_accessed_variables=False, persistent=False) as tape:
        for x in watch:
            tape.watch(x)
        ys = forward(xs)
    rs = [tf.cast(r, y.dtype) for r, y in zip(rs, ys)]
    grads = tape.gradient(
        ys, watch, output_gradients=rs, unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    by_id = {id(x): g for x, g in zip(watch, grads)}
    return [by_id.get(id(x)) for x in xs]
