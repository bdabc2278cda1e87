"""edgetailor: tailor a mobile vision model to one phone and one latency budget.

Importing this package (and ``spec``, ``scaling``, ``layers``, ``zoo``) never imports
TensorFlow; only ``edgetailor.builder``, ``edgetailor.weights`` and the converters do.
"""
__version__ = "0.1.0"
