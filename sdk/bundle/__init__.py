"""App bundles: the typed manifest, the one writer for every task, inspection.

    from edgetailor import bundle
    bundle.package(keras_classifier, "out/app", labels=labels, profile=profiles.load("pixel1"))
    bundle.inspect_bundle("out/app")["ok"]
"""
from edgetailor.bundle.inspect import inspect_bundle
from edgetailor.bundle.manifest import FILES, SCHEMA, LatencyReport, Manifest, read_labels
from edgetailor.bundle.writer import identify_arch, package, published_accuracy, write_bundle

__all__ = ["FILES", "SCHEMA", "LatencyReport", "Manifest", "identify_arch", "inspect_bundle", "package",
           "published_accuracy", "read_labels", "write_bundle"]
