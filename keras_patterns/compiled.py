"""Compiled functions, one per analyzer or fit.

TensorFlow's retracing detector counts the traces of every `tf.function` whose Python
function shares a code object, and warns after five: a script comparing many methods
(each analyzer traces its own function once) would see retracing warnings although nothing
retraces. Each compiled function here wraps its own `functools.partial`, which the detector
keys by identity.
"""

import functools

import tensorflow as tf


def compiled(fn, jit_compile=False):
    """`tf.function` of `fn` (no autograph, shapes relaxed), tracked on its own."""
    return tf.function(functools.partial(fn), jit_compile=jit_compile, autograph=False,
                       reduce_retracing=True)
