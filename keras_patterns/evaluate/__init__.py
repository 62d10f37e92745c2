"""Evaluating explanations: signal quality rho(S), image degradation, a benchmark with a
known signal, and sanity checks."""
