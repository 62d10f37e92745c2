"""Embedding: the signal for a token is the signal at its vector, summed over its features."""

import tensorflow as tf

from .layers import ReverseLayer


class EmbeddingReverse(ReverseLayer):
    """r_token = sum_d r[token, d]: one explanation value per token."""

    label = "embedding"

    def reverse(self, xs, ys, rs):
        return [tf.reduce_sum(rs[0], axis=-1)]


class EmbeddingTimesInputReverse(ReverseLayer):
    """r_token = sum_d e[token, d] r[token, d]: input times signal in embedding space."""

    label = "embedding_x_input"

    def reverse(self, xs, ys, rs):
        return [tf.reduce_sum(ys[0] * rs[0], axis=-1)]
