"""Latency prediction, pure numpy: the op-cost model, device profiles, the space predictor.

May import ``arch`` only; never TensorFlow.
"""
