"""Registry-wide fidelity: our parameter and MAC counts against the published figures.

    python benchmarks/zoo_fidelity.py [--keras]

Prints a Markdown table (pasted into the README). With ``--keras`` each model is also built in
tf.keras and its ``count_params()`` and conv/dense MACs are checked against the layer walk.
"""
from __future__ import annotations

import argparse
import time

from edgetailor.arch import layers, zoo


def _delta(ours: float, published: float | None) -> str:
    return "n/a" if published is None else f"{100 * (ours / published - 1):+.1f}%"


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras", action="store_true", help="also build every model in tf.keras")
    args = parser.parse_args()
    if args.keras:
        from edgetailor.builder import network as builder
    print("| model | res | params ours (M) | published | Δ | MACs ours (M) | published | Δ |"
          + (" Keras build |" if args.keras else ""))
    print("|---|---|---|---|---|---|---|---|" + ("---|" if args.keras else ""))
    started = time.perf_counter()
    for entry in zoo.entries():
        walked = layers.walk(entry.spec)
        params = sum(layer.params for layer in walked) / 1e6
        macs = sum(layer.macs for layer in walked) / 1e6
        pub = entry.published
        row = (f"| {entry.name} | {entry.resolution} | {params:.3f} | {_fmt(pub.params_m, 2)} | "
               f"{_delta(params, pub.params_m)} | {macs:.1f} | {_fmt(pub.macs_m, 1)} | "
               f"{_delta(macs, pub.macs_m)} |")
        if args.keras:
            model = builder.build(entry.spec)
            same = (model.count_params() == sum(layer.keras_params for layer in walked)
                    and builder.keras_macs(model) == sum(layer.macs for layer in walked))
            row += " exact |" if same else " MISMATCH |"
        print(row)
    notes = [(e.name, e.published.note) for e in zoo.entries() if e.published.note]
    print("\nWhere a published figure is missing or counted differently:")
    for name, note in notes:
        print(f"- {name}: {note}")
    print(f"\n{len(zoo.entries())} models in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
