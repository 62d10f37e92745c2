"""How concentrated an explanation is: fewer, larger values are easier to read.

- `complexity` (Bhatt, Weller and Moura, "Evaluating and aggregating feature-based model
  explanations", IJCAI 2020): the entropy of the fractional contributions
  p_i = |a_i| / Σ_j |a_j|; low is concentrated (0 for one feature, log D for a uniform one).
- `sparseness` (Chalasani, Chen, Chowdhury, Wu and Jha, "Concise explanations of neural
  networks using adversarial training", ICML 2020): the Gini index of |a|; 1 for one
  feature, 0 for a uniform explanation.
"""

import numpy as np

__all__ = ["complexity", "sparseness"]


def _magnitudes(explanation):
    a = np.abs(np.asarray(explanation, np.float64))
    return a.reshape(len(a), -1)


def complexity(explanation: np.ndarray) -> np.ndarray:
    """Per sample, the entropy (natural log) of |a_i| / Σ|a|.

    Args:
        explanation: (N, ...) explanations.

    Returns:
        (N,) entropies in [0, log D]; 0 for an all-zero explanation.
    """
    a = _magnitudes(explanation)
    total = a.sum(axis=1, keepdims=True)
    p = np.divide(a, total, out=np.zeros_like(a), where=total > 0)
    logs = np.log(p, out=np.zeros_like(p), where=p > 0)
    return -(p * logs).sum(axis=1)


def sparseness(explanation: np.ndarray) -> np.ndarray:
    """Per sample, the Gini index of |a|: with the D magnitudes sorted ascending,
    Σ_k (2k - D - 1) a_(k) / (D Σ a), k = 1..D.

    Args:
        explanation: (N, ...) explanations.

    Returns:
        (N,) in [0, 1 - 1/D]; 0 for an all-zero explanation.
    """
    a = np.sort(_magnitudes(explanation), axis=1)
    d = a.shape[1]
    k = np.arange(1, d + 1)
    total = a.sum(axis=1)
    weighted = ((2 * k - d - 1) * a).sum(axis=1)
    return np.divide(weighted, d * total, out=np.zeros_like(total), where=total > 0)
