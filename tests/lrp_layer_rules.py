"""Closed-form float64 numpy reference for the LRP and Deep Taylor rules of one layer.

Written from the rule formulas alone (no code shared with the package):

- `DenseOp` / `ConvOp`: the linear map f(v; K) of a kernel layer without bias and its
  transpose f^T(K; s). Convolutions use explicit patch extraction (strides, ``same`` /
  ``valid`` padding, dilation); Conv1D is Conv2D with a height of 1.
- `rule_*`: one function per rule, ``rule(op, x, R) -> R_in`` (parameters bound with
  `functools.partial`, see `RULES`).
- the pooling and merge relevance (max / average pooling, sums, global average pooling).

`lrp_reference` walks whole models with these and re-exports them.
"""

import functools

import numpy as np

EPS = 1e-7
# the smallest normal float32: the package computes in float32, where smaller magnitudes are
# subnormal (TensorFlow's CPU kernels flush them to zero)
TINY = float(np.finfo(np.float32).tiny)


def stab(z, eps=EPS):
    """The epsilon rule's denominator: z + eps * sign(z), with sign(0) = +1, everywhere."""
    return z + eps * np.where(z >= 0, 1.0, -1.0)


def safe(z):
    """The stabiliser of the other rules: z where |z| >= TINY (exact division), else
    z + EPS * sign(z) with sign(0) = +1 (z counts as zero)."""
    return np.where(np.abs(z) < TINY, stab(z), z)


def pos(a):
    return np.maximum(a, 0.0)


def neg(a):
    return np.minimum(a, 0.0)


# -- linear maps --------------------------------------------------------------------------


class DenseOp:
    """y = v @ K (+ b) on the last axis."""

    def __init__(self, kernel, bias):
        self.W = np.asarray(kernel, np.float64)
        self.b = np.zeros(self.W.shape[-1]) if bias is None else np.asarray(bias, np.float64)

    def f(self, v, K):
        return np.einsum("...i,io->...o", v, K)

    def fT(self, K, s):
        return np.einsum("...o,io->...i", s, K)


def _out_and_pads(size, k, stride, dil, padding):
    eff = (k - 1) * dil + 1
    if padding == "valid":
        return (size - eff) // stride + 1, 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return out, total // 2, total - total // 2


class Patches:
    """Index arrays of the windows of a 2-D (channels_last) sliding operation."""

    def __init__(self, in_hw, ksize, strides, dilation, padding):
        (H, W), (kh, kw) = in_hw, ksize
        oh, pt, pb = _out_and_pads(H, kh, strides[0], dilation[0], padding)
        ow, pl, pr = _out_and_pads(W, kw, strides[1], dilation[1], padding)
        self.in_hw, self.out_hw = (H, W), (oh, ow)
        self.pads = ((pt, pb), (pl, pr))
        rows = np.arange(oh)[:, None] * strides[0] + np.arange(kh)[None, :] * dilation[0]
        cols = np.arange(ow)[:, None] * strides[1] + np.arange(kw)[None, :] * dilation[1]
        # broadcast to (oh, ow, kh, kw)
        self.rows = np.broadcast_to(rows[:, None, :, None], (oh, ow, kh, kw))
        self.cols = np.broadcast_to(cols[None, :, None, :], (oh, ow, kh, kw))

    def extract(self, x, fill=0.0):
        """(N, H, W, C) -> (N, oh, ow, kh, kw, C)."""
        xp = np.pad(x, ((0, 0),) + self.pads + ((0, 0),), constant_values=fill)
        return xp[:, self.rows, self.cols, :]

    def scatter(self, g):
        """Adjoint of `extract`: (N, oh, ow, kh, kw, C) -> (N, H, W, C)."""
        (pt, _), (pl, _) = self.pads
        H, W = self.in_hw
        Hp = H + sum(self.pads[0])
        Wp = W + sum(self.pads[1])
        out = np.zeros((g.shape[0], Hp, Wp, g.shape[-1]))
        np.add.at(out, (slice(None), self.rows, self.cols, slice(None)), g)
        return out[:, pt : pt + H, pl : pl + W, :]


def _as_2d(x):
    """Conv1D / pooling-1D tensors (N, L, C) as (N, 1, L, C)."""
    return x[:, None] if x.ndim == 3 else x


def _pair(v, one_d):
    v = tuple(v) if isinstance(v, (tuple, list)) else (v,)
    return (1,) + v if one_d else (v * 2 if len(v) == 1 else v)


class ConvOp:
    """Conv1D / Conv2D (channels_last, groups=1) with explicit patches."""

    def __init__(self, kernel, bias, in_shape, strides, padding, dilation):
        kernel = np.asarray(kernel, np.float64)
        self.one_d = kernel.ndim == 3
        self.W = kernel
        self.b = np.zeros(kernel.shape[-1]) if bias is None else np.asarray(bias, np.float64)
        in_hw = (1,) + tuple(in_shape[:1]) if self.one_d else tuple(in_shape[:2])
        ksize = (1,) + kernel.shape[:1] if self.one_d else kernel.shape[:2]
        self.patches = Patches(
            in_hw, ksize, _pair(strides, self.one_d), _pair(dilation, self.one_d), padding
        )

    def _k2(self, K):
        return K[None] if self.one_d else K

    def f(self, v, K):
        P = self.patches.extract(_as_2d(v))
        y = np.einsum("nhwijc,ijco->nhwo", P, self._k2(K))
        return y[:, 0] if self.one_d else y

    def fT(self, K, s):
        G = np.einsum("nhwo,ijco->nhwijc", _as_2d(s), self._k2(K))
        g = self.patches.scatter(G)
        return g[:, 0] if self.one_d else g


# -- kernel rules: rule(op, x, R) -> relevance at the layer input ---------------------------


def rule_z(op, x, R, bias=True):
    """Z rule: R_in = x * f^T(W; R / safe(f(x;W) + b))."""
    z = op.f(x, op.W) + (op.b if bias else 0.0)
    return x * op.fT(op.W, R / safe(z))


def rule_epsilon(op, x, R, epsilon=EPS, bias=True):
    """Epsilon rule: R_in = x * f^T(W; R / stab(f(x;W) + b, epsilon))."""
    z = op.f(x, op.W) + (op.b if bias else 0.0)
    return x * op.fT(op.W, R / stab(z, epsilon))


def rule_w_square(op, x, R):
    """R_in = f^T(W*W; R / safe(f(1; W*W))): ignores x and the bias."""
    W2 = op.W * op.W
    z = op.f(np.ones_like(x), W2)
    return op.fT(W2, R / safe(z))


def rule_flat(op, x, R):
    """WSquare with every kernel entry 1."""
    ones = np.ones_like(op.W)
    z = op.f(np.ones_like(x), ones)
    return op.fT(ones, R / safe(z))


def rule_alpha_beta(op, x, R, alpha, beta, bias=True):
    """The standard alpha-beta rule (positive / negative contributions, bias split by sign)."""
    xp, xn = pos(x), neg(x)
    Wp, Wn = pos(op.W), neg(op.W)
    zp = op.f(xp, Wp) + op.f(xn, Wn) + (pos(op.b) if bias else 0.0)
    zn = op.f(xp, Wn) + op.f(xn, Wp) + (neg(op.b) if bias else 0.0)
    sp = R / safe(zp)
    sn = R / safe(zn)
    activator = xp * op.fT(Wp, sp) + xn * op.fT(Wn, sp)
    inhibitor = xp * op.fT(Wn, sn) + xn * op.fT(Wp, sn)
    return alpha * activator - beta * inhibitor


def rule_z_plus(op, x, R):
    return rule_alpha_beta(op, x, R, alpha=1.0, beta=0.0, bias=False)


def rule_z_plus_fast(op, x, R):
    """R_in = x * f^T(W+; R / safe(f(x; W+))), no sign split of x, no bias."""
    Wp = pos(op.W)
    return x * op.fT(Wp, R / safe(op.f(x, Wp)))


def rule_gamma(op, x, R, gamma=0.25, bias=True):
    Wg = op.W + gamma * pos(op.W)
    bg = op.b + gamma * pos(op.b)
    z = op.f(x, Wg) + (bg if bias else 0.0)
    return x * op.fT(Wg, R / safe(z))


def rule_bounded(op, x, R, low, high):
    """z^B: R_in = x f^T(W;s) - l f^T(W+;s) - h f^T(W-;s), s = R / safe(z)."""
    lo = np.full_like(x, low)
    hi = np.full_like(x, high)
    Wp, Wn = pos(op.W), neg(op.W)
    z = op.f(x, op.W) - op.f(lo, Wp) - op.f(hi, Wn)
    s = R / safe(z)
    return x * op.fT(op.W, s) - lo * op.fT(Wp, s) - hi * op.fT(Wn, s)


P = functools.partial
RULES = {
    "z": P(rule_z, bias=True),
    "z_IB": P(rule_z, bias=False),
    "epsilon": P(rule_epsilon, bias=True),
    "epsilon_IB": P(rule_epsilon, bias=False),
    "w_square": rule_w_square,
    "flat": rule_flat,
    "alpha_2_beta_1": P(rule_alpha_beta, alpha=2.0, beta=1.0, bias=True),
    "alpha_2_beta_1_IB": P(rule_alpha_beta, alpha=2.0, beta=1.0, bias=False),
    "alpha_1_beta_0": P(rule_alpha_beta, alpha=1.0, beta=0.0, bias=True),
    "alpha_1_beta_0_IB": P(rule_alpha_beta, alpha=1.0, beta=0.0, bias=False),
    "z_plus": rule_z_plus,
    "z_plus_fast": rule_z_plus_fast,
    "gamma": rule_gamma,
}


# -- pooling and merges ------------------------------------------------------------------------


def pool_patches(in_shape, pool, strides, padding):
    one_d = len(in_shape) == 2
    in_hw = (1, in_shape[0]) if one_d else tuple(in_shape[:2])
    return Patches(in_hw, _pair(pool, one_d), _pair(strides, one_d), (1, 1), padding), one_d


def max_pool(x, pool, strides, padding="valid"):
    pt, one_d = pool_patches(x.shape[1:], pool, strides, padding)
    P_ = pt.extract(_as_2d(x), fill=-np.inf)
    y = P_.max(axis=(3, 4))
    return y[:, 0] if one_d else y


def max_pool_relevance(x, R, pool, strides, padding="valid"):
    """Winner takes all: each window's relevance goes to its (first) largest input."""
    pt, one_d = pool_patches(x.shape[1:], pool, strides, padding)
    P_ = pt.extract(_as_2d(x), fill=-np.inf)
    n, oh, ow, kh, kw, c = P_.shape
    flat = P_.transpose(0, 1, 2, 5, 3, 4).reshape(n, oh, ow, c, kh * kw)
    win = np.argmax(flat, axis=-1)
    onehot = (np.arange(kh * kw) == win[..., None]).astype(np.float64)
    G = (onehot * _as_2d(R)[..., None]).reshape(n, oh, ow, c, kh, kw).transpose(0, 1, 2, 4, 5, 3)
    g = pt.scatter(G)
    return g[:, 0] if one_d else g


def avg_pool(x, pool, strides):
    pt, one_d = pool_patches(x.shape[1:], pool, strides, "valid")
    y = pt.extract(_as_2d(x)).mean(axis=(3, 4))
    return y[:, 0] if one_d else y


def avg_pool_relevance(x, R, pool, strides):
    """R_i = x_i * R / safe(sum of the window)."""
    pt, one_d = pool_patches(x.shape[1:], pool, strides, "valid")
    P_ = pt.extract(_as_2d(x))
    s = _as_2d(R) / safe(P_.sum(axis=(3, 4)))
    g = pt.scatter(P_ * s[:, :, :, None, None, :])
    return g[:, 0] if one_d else g


def sum_relevance(parts, R):
    """Add / Average / GlobalAveragePooling: R_i = x_i * R / safe(sum_i x_i)."""
    s = R / safe(sum(parts))
    return [p * s for p in parts]


def global_avg_pool_relevance(x, R):
    axes = tuple(range(1, x.ndim - 1))
    s = R / safe(x.sum(axis=axes))
    return x * np.expand_dims(s, axes)

