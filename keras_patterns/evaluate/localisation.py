"""Localisation metrics: does the relevance lie where the evidence is? Each compares
explanations with a ground-truth mask (the known-signal benchmark, `ground_truth`, gives
one; so does the planted-token text task).

- `relevance_mass` (Arras, Osman and Samek, "CLEVR-XAI: a benchmark dataset for the ground
  truth evaluation of neural network explanations", Information Fusion 2022): the share of
  the positive relevance inside the mask.
- `relevance_rank_accuracy` (the same paper): of the K most relevant features, K the mask's
  size, the share inside the mask.
- `pointing_game` (Zhang, Bargal, Lin, Brandt, Shen and Sclaroff, "Top-down neural
  attention by excitation backprop", IJCV 2018): whether the most relevant feature lies in
  the mask.

A feature is one entry of the explanation after `reduce_channels` (images: the channels
of a pixel summed, so a pixel is one feature); the mask is given per feature, or per entry
of the explanation (then reduced by "any").
"""

import numpy as np

from .ground_truth import relevance_mass

__all__ = ["pointing_game", "relevance_mass", "relevance_rank_accuracy"]


def _features(relevance, mask, reduce_channels):
    r = np.asarray(relevance, np.float64)
    m = np.asarray(mask, bool)
    if reduce_channels and r.ndim == 4:
        r = r.sum(axis=-1)
        if m.ndim == 4:
            m = m.any(axis=-1)
    if r.shape != m.shape:
        raise ValueError(f"The mask's shape {m.shape} does not match the explanation's "
                         f"{r.shape} (after summing the channels of images).")
    return r.reshape(len(r), -1), m.reshape(len(m), -1)


def relevance_rank_accuracy(relevance: np.ndarray, mask: np.ndarray,
                            reduce_channels: bool = True) -> np.ndarray:
    """Per sample, the share of the K most relevant features that lie in the mask, K the
    number of features in the mask (ties at the K-th value broken by position).

    Args:
        relevance: (N, ...) explanations.
        mask: (N, ...) bool, the ground truth (per feature or per explanation entry).
        reduce_channels: sum an image explanation's channels into one value per pixel.

    Returns:
        (N,) in [0, 1]; 0 for a sample whose mask is empty.
    """
    r, m = _features(relevance, mask, reduce_channels)
    out = np.zeros(len(r))
    for i, (row, inside) in enumerate(zip(r, m)):
        k = int(inside.sum())
        if k:
            top = np.argsort(-row, kind="stable")[:k]
            out[i] = inside[top].mean()
    return out


def pointing_game(relevance: np.ndarray, mask: np.ndarray,
                  reduce_channels: bool = True) -> np.ndarray:
    """Per sample, whether the most relevant feature (the first, where several tie) lies in
    the mask.

    Args:
        relevance: (N, ...) explanations.
        mask: (N, ...) bool, the ground truth.
        reduce_channels: sum an image explanation's channels into one value per pixel.

    Returns:
        (N,) bool hits.
    """
    r, m = _features(relevance, mask, reduce_channels)
    return m[np.arange(len(r)), np.argmax(r, axis=1)]
