"""Android measurement harness: adb + TFLite benchmark_model, output parser."""
