"""Float32, full int8 and the searched int8/float32 mix of one small classifier: held-out top-1,
predicted and host-measured latency (TFLite interpreter, XNNPACK, 1 thread).

    python benchmarks/mixed_precision.py [--arch SPEC] [--size PX] [--images N] [--epochs E] [--budget-x X]

The classifier is trained on the training split of a generated shapes folder (the seeded 80/20
split that ``quantize-mix`` scores on, so the accuracies are on images it never trained on; batch
norm recalibrated) and must be clearly above chance for the comparison to mean anything: the
script prints its Keras top-1 beside chance. The budget is X times the predicted full int8 latency
on the host. The host is shared, so every latency is a median of medians and the spread across
rounds is printed beside it. Every layer the search tried is listed with its quantization error
and what happened to it.
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
    parser.add_argument("--images", type=int, default=1500, help="shapes images, a fifth held out")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--budget-x", type=float, default=1.3)
    args = parser.parse_args()

    from edgetailor.arch import zoo
    from edgetailor.data import shapes
    from edgetailor.profiling.precision_timing import measure_model
    from edgetailor.tasks import mixed_precision as mp
    from edgetailor.tasks import mixed_precision_latency as pricing
    from edgetailor.tasks import quantize
    from edgetailor.tasks.classification.train import train_classifier

    classes = ("circle", "square", "triangle")
    work = Path(tempfile.mkdtemp(prefix="mixbench-"))
    folder = shapes.write_folder(work / "data", args.images, size=args.size, classes=classes)
    model, keras_top1, how = train_classifier(zoo.resolve(args.arch, resolution=args.size).spec, folder,
                                              args.epochs, name="bench")
    print(f"classifier: held-out top-1 {keras_top1:g} % in Keras (chance {100 / len(classes):.1f} %); {how}")
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
    print("layers the search tried, largest quantization error first (each on top of the float ones kept):")
    errors, kept = {e.name: e for e in result.errors}, set()
    for trial in result.trials:
        for name in sorted(set(trial.floats) - kept):
            e = errors[name]
            score = "not scored" if trial.accuracy is None else f"top-1 {trial.accuracy:g} %"
            print(f"  {e.op:18} rmse/scale {e.rmse_over_scale:<7g} {score}, predicted {trial.predicted_ms:.3f} ms: "
                  f"{trial.note}{' -> stays float32' if trial.kept else ' -> back to int8'}  {name[:50]}")
        if trial.kept:
            kept = set(trial.floats)
    if not result.trials:
        print(f"  none: the int8 start (float input/output) scores {result.accuracy['int8_float_io']:g} %, already "
              f">= float32's {result.accuracy['float32']:g} % on the held-out split, so no layer can raise it")
    worst = sorted(result.errors, key=lambda e: -e.rmse_over_scale)[:5]
    print("largest quantization errors (rmse/scale, int8 steps): " +
          ", ".join(f"{e.op} {e.rmse_over_scale:g}" for e in worst))


if __name__ == "__main__":
    main()
