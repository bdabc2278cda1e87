"""Choosing an architecture without TensorFlow: candidates, accuracy, pick mode, search.

May import ``arch`` and ``latency``; never TensorFlow (proxy training is handed in from ``tasks``).
"""
