"""Making device profiles: calibration from published figures, host measurement (TFLite,
TensorFlow allowed here), one-op TFLite models and their timing, harness-result import.
"""
