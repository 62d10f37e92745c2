"""One page that ranks explanation methods on every metric, so that a user can choose a
method for their model with evidence (`keras-patterns evaluate --report`).

    table = report(model, x, {"gradient": g, "pattern.attribution": pa})
    print(table.markdown())          # values, ranks per column and the mean rank

The columns: every perturbation metric of `compare` (deletion, insertion, degradation AOPC,
μ-fidelity, ROAD), the concentration of the explanation (`complexity`: lower is more
concentrated, `sparseness`: higher), and where the caller passes them (the command line
does, for method names) the max-sensitivity of each method (lower is more robust). In each
column the explanations are ranked 1 (best, in that column's better direction) to n, ties
sharing their mean rank; the rows are ordered by their mean rank over the columns. A row
"random" (Gaussian noise) marks chance.
"""

import dataclasses
from typing import Dict, Optional, Sequence

import numpy as np

from .compare import METRICS, MetricTable, compare
from .complexity import complexity, sparseness
from .correlation import ranks

__all__ = ["Report", "rank_columns", "report"]


def rank_columns(table: MetricTable) -> Dict[str, Dict[str, float]]:
    """Per column, the rank of each explanation: 1 the best in the column's direction, ties
    their mean rank (a NaN value ranks last).

    Args:
        table: the metric values.

    Returns:
        explanation -> {column: rank}.
    """
    names = list(table.rows)
    out = {name: {} for name in names}
    for column in table.columns:
        values = np.array([table.rows[n][column] for n in names], np.float64)
        sign = -1.0 if table.higher_is_better[column] else 1.0
        keyed = np.where(np.isnan(values), np.inf, sign * values)
        for name, rank in zip(names, ranks(keyed) + 1.0):
            out[name][column] = float(rank)
    return out


@dataclasses.dataclass
class Report:
    """The values, their ranks and the mean rank of each explanation (best first)."""

    table: MetricTable
    ranks: Dict[str, Dict[str, float]]

    @property
    def mean_rank(self) -> Dict[str, float]:
        """explanation -> its mean rank over the columns, best first."""
        means = {n: float(np.mean(list(r.values()))) for n, r in self.ranks.items()}
        return dict(sorted(means.items(), key=lambda item: item[1]))

    def markdown(self) -> str:
        """The ranking table (value and rank per column), rows by mean rank."""
        t = self.table
        head = [f"{c} ({'↑' if t.higher_is_better[c] else '↓'})" for c in t.columns]
        lines = ["| method | mean rank | " + " | ".join(head) + " |",
                 "|---" * (len(head) + 2) + "|"]
        for name, mean in self.mean_rank.items():
            cells = [f"{t.rows[name][c]:.4g} ({self.ranks[name][c]:g})" for c in t.columns]
            lines.append(f"| {name} | {mean:.2f} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        """Values and ranks as CSV: method, mean rank, then each column and its rank."""
        t = self.table
        rows = ["method,mean rank," + ",".join(f"{c},{c} rank" for c in t.columns)]
        for name, mean in self.mean_rank.items():
            cells = [f"{t.rows[name][c]!r},{self.ranks[name][c]!r}" for c in t.columns]
            rows.append(f"{name},{mean!r}," + ",".join(cells))
        return "\n".join(rows) + "\n"

    def plot(self, path):
        """The ranks as a picture (methods x columns, 1 dark); needs matplotlib."""
        from ..reproduce.figures import _pyplot

        plt = _pyplot()
        names, columns = list(self.mean_rank), self.table.columns
        grid = np.array([[self.ranks[n][c] for c in columns] for n in names])
        fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(columns), 0.9 + 0.4 * len(names)))
        ax.imshow(grid, cmap="viridis", vmin=1, vmax=len(names))
        ax.set_xticks(range(len(columns)), columns, rotation=35, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        for i in range(len(names)):
            for j in range(len(columns)):
                ax.text(j, i, f"{grid[i, j]:g}", ha="center", va="center", fontsize=7,
                        color="white" if grid[i, j] < len(names) / 2 else "black")
        ax.set_title("rank per metric (1: best)")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def report(model, x: np.ndarray, explanations: Dict[str, np.ndarray],
           metrics: Sequence[str] = METRICS, settings: Optional[Dict[str, dict]] = None,
           extra: Optional[Dict[str, Dict[str, tuple]]] = None, seed: int = 0) -> Report:
    """Rank explanations of `x` on the perturbation metrics, complexity and sparseness.

    Args:
        model: the model explained.
        x: the inputs explained.
        explanations: name -> attributions of `x`.
        metrics: the perturbation metrics (`compare.METRICS`).
        settings: metric name -> keyword arguments (as for `compare`).
        extra: more columns: column name -> {explanation: (value, higher is better)}, e.g.
            max-sensitivity per method; "random" may be left out (it then ranks last).
        seed: seeds the random row.

    Returns:
        Report: values, ranks, mean ranks, Markdown, CSV and a plot.
    """
    table = compare(model, x, explanations, metrics, settings=settings, seed=seed)
    rows = {n: explanations.get(n) for n in table.rows}
    rows["random"] = np.random.default_rng(seed).normal(size=np.shape(x))
    for column, function, higher in (("complexity", complexity, False),
                                     ("sparseness", sparseness, True)):
        table.columns.append(column)
        table.higher_is_better[column] = higher
        for name, e in rows.items():
            table.rows[name][column] = float(np.mean(function(e)))
    for column, values in (extra or {}).items():
        higher = next(iter(values.values()))[1]
        table.columns.append(column)
        table.higher_is_better[column] = higher
        for name in table.rows:
            value = values.get(name, (np.nan, higher))[0]
            table.rows[name][column] = float(value)
    return Report(table, rank_columns(table))
