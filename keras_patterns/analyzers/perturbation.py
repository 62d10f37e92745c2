"""Explanations from the model's output on masked copies of the input: Occlusion and RISE.

A mask m holds one value per position of the input's spatial axes (pixels of an image
(batch, H, W, C), steps of a sequence (batch, L, C)), shared by the channels: the copy is
x ⊙ m + v (1 − m), m = 1 keeping the input and m = 0 replacing it by the fill value v. A
method evaluates the explained output f (the model's, a final softmax stripped, as every
method explains it) on its masked copies of each sample and combines the scores with the
masks. The copies of a chunk of samples go through the model in groups of about
`batch_size` copies (memory bounded for any number of masks), all through one compiled
function. Score-CAM (`cam.py`) is such a method too, with masks made of a layer's
activations.
"""

import itertools
import numbers

import numpy as np
import tensorflow as tf

from .. import replicas
from ..compiled import compiled
from ..errors import NotAnalyzableModelError
from ..inputs import positive_int
from .base import Analyzer
from .catalog import register_analyzer


def selected_output(y, index, mode):
    """The explained score per sample of the output `y` and the index used: the unit
    `index` ("index"), the largest unit ("max_activation") or the sum of all units
    ("all", the output every unit of which starts at 1 in the gradient family)."""
    flat = tf.reshape(tf.cast(y, tf.float32), (tf.shape(y)[0], -1))
    if mode == "all":
        return tf.reduce_sum(flat, axis=1), tf.cast(index, tf.int32)
    if mode == "max_activation":
        index = tf.argmax(flat, axis=1, output_type=tf.int32)
    index = tf.cast(index, tf.int32)
    return tf.gather(flat, index, batch_dims=1), index


def check_spatial_input(graph, method):
    """Refuse a model without exactly one floating input of rank 3 (batch, steps,
    channels) or 4 (batch, height, width, channels), naming `method`."""
    if len(graph.inputs) != 1:
        raise NotAnalyzableModelError(
            f"'{method}' explains models with one input; this one has {len(graph.inputs)} "
            f"({', '.join(t.name for t in graph.inputs)}).")
    t = graph.inputs[0]
    if not t.is_floating:
        raise NotAnalyzableModelError(
            f"'{method}' masks the input values, which is undefined for the integer input "
            f"'{t.name}' (dtype {t.dtype}).")
    if len(t.shape) not in (3, 4):
        raise NotAnalyzableModelError(
            f"'{method}' needs an input with spatial axes and channels last: (batch, steps, "
            f"channels) or (batch, height, width, channels); input '{t.name}' has shape "
            f"{t.shape}.")


def upsample(maps, size):
    """Bilinear resampling (half-pixel centres, as `tf.image.resize`) of maps (n, *spatial)
    with one or two spatial axes to (n, *size)."""
    if len(size) == 1:
        out = tf.image.resize(maps[:, :, None, None], (size[0], 1), method="bilinear")
        return out[:, :, 0, 0]
    return tf.image.resize(maps[..., None], size, method="bilinear")[..., 0]


def over_channels(maps, x):
    """Maps (n, *spatial) repeated over the channel axis of `x`: shaped like x."""
    return tf.broadcast_to(tf.cast(maps, tf.float32)[..., None], tf.shape(x))


class MaskedCopies(Analyzer):
    """The explained output on masked copies of each sample (see the module).

    A subclass draws the masks' parameters (`_layout`: arrays whose first axis counts the
    masks), makes the masks of a group from them (`_masks`), reduces a group's scores
    (`_collect`: summed over the groups, or concatenated where `_concatenate`) and turns the
    totals into the explanation (`_from_scores`, which gets the layout too). `_explain`
    explains a set of samples from their reference pass (a subclass may cut a chunk into
    such sets and give each its own state).
    """

    explains_any_layer = True
    fill = 0.0
    # whether `_collect`'s results are concatenated over the groups (else summed)
    _concatenate = False
    # the compiled functions, built on first use
    _group_function = None
    _reference_function = None

    def _check_model(self, graph):
        super()._check_model(graph)
        check_spatial_input(graph, self.name)

    def _reference(self, x, index):
        """[index, score of the unmodified input, per-sample state] (compiled)."""
        score, index = selected_output(self.graph.evaluate([x])[0], index,
                                       self.neuron_selection_mode)
        return [index, score, tf.zeros_like(score)]

    def _layout(self, x, state):
        """The masks' parameters: a list of arrays, the first axis counting the masks."""
        raise NotImplementedError

    def _masks(self, layout, x, state):
        """The masks of one group: (group, batch or 1, *spatial), 1 keeping the input."""
        raise NotImplementedError

    def _collect(self, scores, masks, base):
        """A group's contribution from its scores (group, batch): sample-first tensors."""
        raise NotImplementedError

    def _from_scores(self, x, totals, base, state, layout):
        """The explanation of the chunk `x` from the totals over all groups (and the
        masks' parameters)."""
        raise NotImplementedError

    def _group(self, per_sample, layout):
        x, index, base, state = per_sample
        masks = tf.cast(self._masks(layout, x, state), x.dtype)
        m = masks[..., None]
        copies = x[None] * m + tf.cast(self.fill, x.dtype) * (1.0 - m)
        group, n = tf.shape(copies)[0], tf.shape(x)[0]
        rows = tf.reshape(copies, tf.concat([[group * n], tf.shape(x)[1:]], 0))
        # the unit chosen on the unmodified input, in every copy
        mode = "all" if self.neuron_selection_mode == "all" else "index"
        scores, _ = selected_output(self.graph.evaluate([rows])[0], tf.tile(index, [group]),
                                    mode)
        return self._collect(tf.reshape(scores, (group, n)), masks, base)

    def _analyze_batch(self, xs, index, strategy):
        if self._group_function is None:
            self._group_function = replicas.Split(compiled(self._group, self.jit_compile))
            self._reference_function = compiled(self._reference)
        x = tf.convert_to_tensor(xs[0])
        n = int(x.shape[0])
        index = tf.zeros((n,), tf.int32) if index is None else tf.constant(index, tf.int32)
        index, base, state = self._reference_function(x, index)
        return [np.asarray(self._explain(x, index, base, state, strategy))]

    def _explain(self, x, index, base, state, strategy):
        """The explanation of the samples `x` from their reference pass: the masks drawn,
        evaluated in groups and combined."""
        n = int(x.shape[0])
        layout = self._layout(x, state)
        count = len(layout[0])
        group = max(1, self.batch_size // n)
        totals = None  # summed as the groups come (memory flat in their number)
        for first in range(0, count, group):
            chunk = [tf.constant(a[first : first + group]) for a in layout]
            part = self._group_function(strategy, [x, index, base, state], chunk)
            if totals is None:
                totals = [[p] if self._concatenate else p for p in part]
            elif self._concatenate:
                totals = [t + [p] for t, p in zip(totals, part)]
            else:
                totals = [t + p for t, p in zip(totals, part)]
        if self._concatenate:
            totals = [tf.concat(t, axis=1) for t in totals]
        return self._from_scores(x, totals, base, state, layout)


def _sizes(value, name, rank):
    """One positive int per spatial axis from an int or a sequence of `rank` ints."""
    values = [value] * rank if np.ndim(value) == 0 else list(value)
    if len(values) != rank:
        raise ValueError(f"{name} must be an int or {rank} ints (one per spatial axis), got "
                         f"{value!r}.")
    return tuple(positive_int(v, name) for v in values)


def patch_starts(size, patch, stride):
    """The first positions of the patches along an axis of `size`: 0, stride, 2 stride, ...
    while a patch fits, then one patch ending at the last position if the others leave it
    uncovered, so that every position is covered; a patch longer than the axis covers it."""
    patch = min(patch, size)
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] + patch < size:
        starts.append(size - patch)
    return starts, patch


@register_analyzer("occlusion")
class Occlusion(MaskedCopies):
    """Output drop when a patch of the input is replaced by a fill value, per position the
    mean over the patches covering it.

    Patch p (all channels of `patch_size` positions) gives the drop
    d_p = f(x) − f(x with the patch set to `fill`); position u gets
    sum_{p ∋ u} d_p / |{p ∋ u}|, repeated over the channels. The patches start at 0,
    `stride`, 2 `stride`, ... along each spatial axis, plus one that ends at the last
    position where the others leave it uncovered (`patch_starts`).

    Args:
        patch_size: the patch's length along each spatial axis (an int for all).
        stride: the step between patches along each spatial axis (an int for all).
        fill: the value the patch is set to.
    """

    description = "mean output drop of the patches covering each position when set to fill"
    citation = ("Zeiler and Fergus, Visualizing and understanding convolutional networks, "
                "ECCV 2014")
    example = {"patch_size": 3, "stride": 2}

    def __init__(self, model, patch_size=8, stride=4, fill=0.0, **kwargs):
        for value, name in ((patch_size, "patch_size"), (stride, "stride")):
            _sizes(value, name, 1 if np.ndim(value) == 0 else len(value))
        if not (isinstance(fill, numbers.Real) and np.isfinite(fill)):
            raise ValueError(f"fill must be a finite number, got {fill!r}.")
        self.patch_size = patch_size
        self.stride = stride
        self.fill = float(fill)
        super().__init__(model, **kwargs)

    def _check_model(self, graph):
        super()._check_model(graph)
        rank = len(graph.inputs[0].shape) - 2
        _sizes(self.patch_size, "patch_size", rank)
        _sizes(self.stride, "stride", rank)

    def _patches(self, spatial):
        """(P, 2 d) int32: the start and the stop of every patch along each axis."""
        rank = len(spatial)
        axes = [patch_starts(size, p, s) for size, p, s in zip(
            spatial, _sizes(self.patch_size, "patch_size", rank),
            _sizes(self.stride, "stride", rank))]
        rows = [[s for s in starts] + [s + p for s, (_, p) in zip(starts, axes)]
                for starts in itertools.product(*(a[0] for a in axes))]
        return np.asarray(rows, np.int32)

    def _layout(self, x, state):
        return [self._patches(tuple(x.shape[1:-1]))]

    def _masks(self, layout, x, state):
        bounds = layout[0]
        rank = len(x.shape) - 2
        inside = None
        for a in range(rank):
            r = tf.range(tf.shape(x)[1 + a])[None, :]
            axis = (r >= bounds[:, a : a + 1]) & (r < bounds[:, rank + a : rank + a + 1])
            shape = [-1] + [1] * rank
            shape[1 + a] = tf.shape(x)[1 + a]
            axis = tf.reshape(axis, shape)
            inside = axis if inside is None else inside & axis
        return 1.0 - tf.cast(inside, tf.float32)[:, None]

    def _collect(self, scores, masks, base):
        drop = base[None] - scores
        drop = tf.reshape(drop, tf.concat([tf.shape(drop), tf.ones([tf.rank(masks) - 2],
                                                                     tf.int32)], 0))
        return [tf.reduce_sum(drop * tf.cast(1.0 - masks, tf.float32), axis=0)]

    def _from_scores(self, x, totals, base, state, layout):
        bounds = layout[0]
        rank = len(x.shape) - 2
        count = np.zeros(tuple(x.shape[1:-1]), np.float32)
        for row in bounds:
            count[tuple(slice(row[a], row[rank + a]) for a in range(rank))] += 1.0
        return over_channels(totals[0] / count, x)


@register_analyzer("rise")
class RISE(MaskedCopies):
    """Randomized input sampling: the mean of the masks weighted by the output on the masked
    input, sum_m f(x ⊙ m) m / (n_masks · probability).

    Each mask (Petsiuk et al., section 3.2): a grid of `resolution` cells per spatial axis,
    each cell 1 with `probability` and else 0, resized bilinearly (half-pixel centres) to
    (resolution + 1) · c positions per axis, c = ceil(size / resolution), then cut to the
    input's size at an offset drawn uniformly from 0..c − 1 per axis. Every mask has mean
    `probability` at every position. The masks are the same for every sample.

    Args:
        n_masks: the number of masks.
        resolution: grid cells along each spatial axis (an int for all).
        probability: the probability that a cell keeps the input, in (0, 1].
        seed: seed of the masks: the same seed gives the same masks, so the same
            explanation, in every call and for any batch size; None: fresh masks for each
            chunk of `batch_size` samples.
    """

    description = "mean of random smooth masks weighted by the output on the masked input"
    citation = ("Petsiuk, Das and Saenko, RISE: randomized input sampling for explanation "
                "of black-box models, BMVC 2018")
    example = {"n_masks": 64, "resolution": 4, "seed": 0}

    def __init__(self, model, n_masks=2000, resolution=7, probability=0.5, seed=None,
                 **kwargs):
        self.n_masks = positive_int(n_masks, "n_masks")
        _sizes(resolution, "resolution", 1 if np.ndim(resolution) == 0 else len(resolution))
        if not (isinstance(probability, (int, float, np.number)) and 0 < probability <= 1):
            raise ValueError(f"probability must be in (0, 1], got {probability!r}.")
        self.resolution = resolution
        self.probability = float(probability)
        self.seed = seed
        super().__init__(model, **kwargs)

    def _check_model(self, graph):
        super()._check_model(graph)
        _sizes(self.resolution, "resolution", len(graph.inputs[0].shape) - 2)

    def _cells(self, spatial):
        grid = _sizes(self.resolution, "resolution", len(spatial))
        return grid, tuple(-(-size // g) for size, g in zip(spatial, grid))

    def _layout(self, x, state):
        grid, cells = self._cells(tuple(x.shape[1:-1]))
        rng = np.random.default_rng(self.seed)
        keep = (rng.random((self.n_masks, *grid)) < self.probability).astype(np.float32)
        shifts = np.stack([rng.integers(0, c, self.n_masks) for c in cells], axis=1)
        return [keep, shifts.astype(np.int32)]

    def _masks(self, layout, x, state):
        keep, shifts = layout
        spatial = [tf.shape(x)[1 + a] for a in range(len(x.shape) - 2)]
        grid = _sizes(self.resolution, "resolution", len(spatial))
        cells = [(size + g - 1) // g for size, g in zip(spatial, grid)]
        masks = upsample(keep, [(g + 1) * c for g, c in zip(grid, cells)])
        for a, size in enumerate(spatial):
            positions = shifts[:, a : a + 1] + tf.range(size)[None, :]
            masks = tf.gather(masks, positions, axis=1 + a, batch_dims=1)
        return masks[:, None]

    def _collect(self, scores, masks, base):
        weights = tf.reshape(scores, tf.concat([tf.shape(scores),
                                                tf.ones([tf.rank(masks) - 2], tf.int32)], 0))
        return [tf.reduce_sum(weights * tf.cast(masks, tf.float32), axis=0)]

    def _from_scores(self, x, totals, base, state, layout):
        return over_channels(totals[0] / (self.n_masks * self.probability), x)
