"""Float32, full int8 and the searched int8/float32 mix of one small classifier: held-out top-1,
predicted and host-measured latency (TFLite interpreter, XNNPACK, 1 thread).

    python benchmarks/mixed_precision.py [--arch SPEC] [--size PX] [--images N] [--epochs E] [--budget-x X]

The classifier is trained briefly on generated shapes; the budget is X times the predicted full
int8 latency on the host. The host is shared, so every latency is a median of medians and the
spread across rounds is printed beside it.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="mobilenet_v2_050")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--images", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--budget-x", type=float, default=1.3)
    args = parser.parse_args()

    import tensorflow as tf

    from edgetailor import builder
    from edgetailor.arch import zoo
    from edgetailor.data import shapes
    from edgetailor.profiling.precision_timing import measure_model
    from edgetailor.tasks import mixed_precision as mp
    from edgetailor.tasks import mixed_precision_latency as pricing
    from edgetailor.tasks import quantize

    classes = ("circle", "square", "triangle")
    work = Path(tempfile.mkdtemp(prefix="mixbench-"))
    folder = shapes.write_folder(work / "data", args.images, size=args.size, classes=classes)
    tf.keras.utils.set_random_seed(0)
    model = builder.build(zoo.resolve(args.arch, resolution=args.size).spec, num_classes=3, name="bench")
    data = shapes.classification(args.images, args.size, 0, classes=classes)
    model.compile(tf.keras.optimizers.Adam(0.003), "sparse_categorical_crossentropy")
    model.fit(data.images / 127.5 - 1, data.labels, epochs=args.epochs, verbose=0)
    subject = quantize.classifier(model, folder, 1e-3)
    state = {}

    def price(float_fb, int8_fb):
        costs, state["noise"] = pricing.host_costs(float_fb, int8_fb)
        state["budget"] = costs.predict(pricing.graph_of(int8_fb), frozenset()) * args.budget_x
        return costs

    # the budget is known only once int8 is priced: price first, then search with it
    probe = mp.search(subject, mp.MixRequest(budget_ms=1e9, max_trials=0), price, print)
    costs = probe.costs
    result = mp.search(subject, mp.MixRequest(budget_ms=state["budget"], max_trials=8),
                       lambda f, q: costs, print)
    print(f"\n{args.arch} at {args.size} px, {len(classes)} shapes classes, {subject.measured_on}; "
          f"budget {state['budget']:.3f} ms ({args.budget_x:g} x predicted int8); layer timing noise "
          f"{state['noise']:g} % (median spread across 3 rounds)")
    print(f"{'model':10} {'top-1 %':>8} {'predicted ms':>13} {'measured ms':>12} {'error %':>8} {'spread %':>9}")
    for kind in ("float32", "int8", "mixed"):
        ms, spread = measure_model(result.flatbuffers[kind])
        predicted = result.predicted_ms[kind]
        print(f"{kind:10} {result.accuracy[kind]:>8.2f} {predicted:>13.3f} {ms:>12.3f} "
              f"{(predicted - ms) / ms * 100:>8.1f} {spread:>9.1f}")
    print(f"float32 layers in the mix: {len(result.floats)} of {len(result.precisions)}")
    for name in result.floats:
        error = next(e for e in result.errors if e.name == name)
        print(f"  {error.op:18} rmse/scale {error.rmse_over_scale:<7g} {name[:70]}")


if __name__ == "__main__":
    main()
