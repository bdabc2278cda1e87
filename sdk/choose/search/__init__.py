"""Latency-constrained search over spec spaces: engine, strategies, Optuna storage, report."""
