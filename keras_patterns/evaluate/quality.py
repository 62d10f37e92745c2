"""`SignalQuality`: the result of `signal_quality`."""

from collections.abc import Mapping


class SignalQuality(Mapping):
    """The outcome of `signal_quality`: a mapping estimator -> {layer: rho}, rho the mean
    over the layer's neurons (the same as `mean`).

    Attributes:
        mean: {estimator: {layer: rho}}, the mean over the neurons whose rho is defined.
        per_neuron: {estimator: {layer: (F,) float64 array}} (NaN where undefined) with
            `per_neuron=True`, else None.
        estimators: the estimator names, in order.
        layers: the evaluated layers (pattern keys: the layer names), in model order.
        observations: {layer: (n1, n2, n3)} observations per split.
        samples: (s1, s2, s3) samples per split.
        skipped: {layer: why} the layers left out (too large, see `max_dim`).
    """

    def __init__(self, mean, per_neuron, observations, samples, skipped):
        self.mean = mean
        self.per_neuron = per_neuron
        self.estimators = tuple(mean)
        self.layers = tuple(observations)
        self.observations = observations
        self.samples = samples
        self.skipped = skipped

    def __getitem__(self, name):
        return self.mean[name]

    def __iter__(self):
        return iter(self.mean)

    def __len__(self):
        return len(self.mean)

    def table(self, digits=3):
        """The mean rho as text: one row per layer, one column per estimator.

        Args:
            digits: decimals shown.

        Returns:
            str, the skipped layers listed below the table.
        """
        width = max([5] + [len(k) for k in self.layers])
        cols = [max(digits + 3, len(e)) for e in self.estimators]
        lines = [" ".join([f"{'layer':<{width}}"] + [f"{e:>{c}}" for e, c in
                                                      zip(self.estimators, cols)])]
        for layer in self.layers:
            cells = [f"{self.mean[e][layer]:>{c}.{digits}f}"
                     for e, c in zip(self.estimators, cols)]
            lines.append(" ".join([f"{layer:<{width}}"] + cells))
        lines += [f"{layer:<{width}} skipped: {why}" for layer, why in self.skipped.items()]
        return "\n".join(lines)

    def __repr__(self):
        return (f"SignalQuality(estimators={list(self.estimators)}, layers={len(self.layers)},"
                f" samples={self.samples})")
