"""One table of perturbation metrics for several explanations of one model:

    table = compare(model, x, {"gradient": g, "pattern.attribution": pa},
                    metrics=("deletion", "insertion", "mu_fidelity"))
    print(table.markdown()); path.write_text(table.csv())

Each metric gives one or two columns, each with the direction that is better:

| column | function | better |
|---|---|---|
| degradation AOPC | `degradation` (pixel flipping / region perturbation, MoRF) | higher |
| deletion AUC | `deletion` | lower |
| deletion AOPC | `deletion` (Samek's AOPC of the same curve) | higher |
| insertion AUC | `insertion` | higher |
| mu-fidelity | `mu_fidelity` | higher |
| ROAD MoRF | `road` (mean over the fractions) | lower |
| ROAD LeRF | `road` | higher |

A row "random" (an attribution of seeded Gaussian noise) is the chance level. The mean
curves are kept too (`MetricTable.curves`), for plots.
"""

import csv
import dataclasses
import io
from typing import Dict, Optional, Sequence

import keras
import numpy as np

from .degradation import degradation
from .deletion import deletion, insertion
from .mu_fidelity import mu_fidelity
from .road import road

METRICS = ("degradation", "deletion", "insertion", "mu_fidelity", "road")
# column -> (metric, how it is read from the result, whether higher is better)
COLUMNS = {
    "degradation AOPC": ("degradation", lambda r: r.aopc, True),
    "deletion AUC": ("deletion", lambda r: r.auc, False),
    "deletion AOPC": ("deletion", lambda r: r.aopc, True),
    "insertion AUC": ("insertion", lambda r: r.auc, True),
    "mu-fidelity": ("mu_fidelity", lambda r: r.mu_fidelity, True),
    "ROAD MoRF": ("road", lambda r: r.morf_mean, False),
    "ROAD LeRF": ("road", lambda r: r.lerf_mean, True),
}
# curve -> (metric, its (x, mean curve) read from the result)
CURVES = {
    "degradation": ("degradation", lambda r: (np.arange(len(r.curve)), r.curve)),
    "deletion": ("deletion", lambda r: (r.fractions, r.curve)),
    "insertion": ("insertion", lambda r: (r.fractions, r.curve)),
    "ROAD MoRF": ("road", lambda r: (r.percentages, r.morf_curve)),
    "ROAD LeRF": ("road", lambda r: (r.percentages, r.lerf_curve)),
}


@dataclasses.dataclass
class MetricTable:
    """Metric values per explanation (rows) and column (see the module docstring).

    Attributes:
        columns: the column names, in order.
        rows: explanation name -> {column: value}.
        higher_is_better: column -> whether a larger value is better.
        curves: curve name ("deletion", "ROAD MoRF", ...) -> explanation name -> (x, the
            mean curve), x the patches replaced (degradation) or the fraction of the
            features removed or inserted (the others).
    """

    columns: list
    rows: Dict[str, Dict[str, float]]
    higher_is_better: Dict[str, bool]
    curves: Dict[str, Dict[str, tuple]] = dataclasses.field(default_factory=dict)

    def markdown(self) -> str:
        """The table in Markdown, each column headed by its better direction."""
        head = [f"{c} ({'↑' if self.higher_is_better[c] else '↓'})" for c in self.columns]
        lines = ["| explanation | " + " | ".join(head) + " |",
                 "|---" * (len(head) + 1) + "|"]
        for name, values in self.rows.items():
            lines.append(f"| {name} | " + " | ".join(f"{values[c]:.4f}" for c in self.columns)
                         + " |")
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        """The table as CSV (a header row, then one row per explanation)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["explanation"] + self.columns)
        for name, values in self.rows.items():
            writer.writerow([name] + [repr(float(values[c])) for c in self.columns])
        return out.getvalue()


def compare(model: keras.Model, x: np.ndarray, explanations: Dict[str, np.ndarray],
            metrics: Sequence[str] = METRICS, random_row: bool = True,
            settings: Optional[Dict[str, dict]] = None, seed: int = 0) -> MetricTable:
    """Every metric of `metrics` for every explanation of `x`.

    Args:
        model: the model explained.
        x: the inputs explained (images, vectors or tokens, as each metric takes).
        explanations: name -> attributions of `x`.
        metrics: names from `METRICS`.
        random_row: add the row "random", an attribution of seeded Gaussian noise.
        settings: metric name -> keyword arguments of its function (steps, granularity,
            batch_size, ...).
        seed: seeds the random row.

    Returns:
        MetricTable: the values.

    Raises:
        ValueError: an unknown metric, or what a metric refuses.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(f"metrics must be names from {METRICS}, got {list(metrics)!r}.")
    settings = settings or {}
    functions = {"degradation": degradation, "deletion": deletion, "insertion": insertion,
                 "mu_fidelity": mu_fidelity, "road": road}
    rows = dict(explanations)
    if random_row:
        rows["random"] = np.random.default_rng(seed).normal(size=np.shape(x))
    columns = [c for c, (m, _, _) in COLUMNS.items() if m in metrics]
    table = {name: {} for name in rows}
    curves = {c: {} for c, (m, _) in CURVES.items() if m in metrics}
    for metric in [m for m in METRICS if m in metrics]:
        for name, attributions in rows.items():
            result = functions[metric](model, x, attributions, **settings.get(metric, {}))
            for column in columns:
                if COLUMNS[column][0] == metric:
                    table[name][column] = float(COLUMNS[column][1](result))
            for curve in curves:
                if CURVES[curve][0] == metric:
                    curves[curve][name] = tuple(map(np.asarray, CURVES[curve][1](result)))
    return MetricTable(columns, table, {c: COLUMNS[c][2] for c in columns}, curves)


__all__ = ["METRICS", "COLUMNS", "CURVES", "MetricTable", "compare"]
