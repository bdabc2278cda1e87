"""A pretrained start against training from scratch, on few photos.

ImageNet weights cannot be downloaded on the machines this was written on, so the "published"
weights are made the way Keras Applications' are: Keras' own MobileNetV2 (alpha 0.5) trained on a
source task (``shapes``, many images) and saved with ``save_weights``, the file format of the
ImageNet download. The target task is the same classes from other images, with few of them. Then:
- from scratch: ``train_classifier`` (what ``specialize --dataset`` does without ``--pretrained``),
  for as many epochs as both fine-tuning phases together;
- pretrained: ``train_pretrained`` (``specialize --dataset --pretrained FILE``), at the source width
  and at a narrower width whose channels are chosen by importance.
Prints one table: width, start, test top-1 (held-out images no run trained on), seconds.

    python benchmarks/pretrained.py            # ~10 minutes on two cores
    python benchmarks/pretrained.py --quick    # smoke run
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def write_folder(root: Path, images, labels, classes) -> Path:
    import tensorflow as tf

    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:04d}.png").write_bytes(tf.io.encode_png(image).numpy())
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--resolution", type=int, default=64)
    args = parser.parse_args()
    import numpy as np
    import tensorflow as tf

    from edgetailor.arch import zoo
    from edgetailor.data import shapes
    from edgetailor.tasks.classification.finetune import train_pretrained
    from edgetailor.tasks.classification.train import train_classifier

    source_images, source_epochs = (600, 2) if args.quick else (3000, 8)
    target_images, epochs = (60, 1) if args.quick else (150, 4)
    size = args.resolution
    work = Path(tempfile.mkdtemp(prefix="pretrained-bench-"))
    started = time.perf_counter()
    source = shapes.classification(source_images, size, seed=11)
    keras_model = tf.keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=0.5, weights=None,
                                                    classes=len(source.classes))
    keras_model.compile(tf.keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    keras_model.fit(source.images.astype(np.float32) / 127.5 - 1, source.labels, batch_size=64,
                    epochs=source_epochs, verbose=0)
    weights_file = work / "mobilenet_v2_0.5_source.h5"
    keras_model.save_weights(weights_file)
    print(f"source task: Keras MobileNetV2(alpha=0.5) on {source_images} shapes images, {source_epochs} epochs, "
          f"{time.perf_counter() - started:.0f} s")

    target = shapes.classification(target_images, size, seed=12)
    folder = write_folder(work / "target", target.images, target.labels, target.classes)
    rows = []
    for width in (0.5, 0.35):
        spec = zoo.FAMILIES["mobilenet_v2"].spec(width, 1.0, size)
        tick = time.perf_counter()
        _, top1_scratch, _ = train_classifier(spec, folder, 2 * epochs)
        rows.append((width, f"scratch, {2 * epochs} epochs", top1_scratch, time.perf_counter() - tick))
        tick = time.perf_counter()
        _, top1, _, report = train_pretrained(spec, "mobilenet_v2", str(weights_file), folder, epochs)
        phases = " + ".join(f"{p['phase']} {p['epochs_run']}" for p in report["phases"])
        rows.append((width, f"pretrained ({phases})", top1, time.perf_counter() - tick))
    print(f"\ntarget task: {target_images} images ({folder}), {size} px; top-1 on held-out images")
    print("| width | start | top-1 % | seconds |")
    print("|---|---|---|---|")
    for width, start, top1, seconds in rows:
        print(f"| {width:g} | {start} | {top1:.1f} | {seconds:.0f} |")
    print("\nnote: scratch is measured on the whole held-out split, pretrained on the half that did not "
          "choose its epoch")


if __name__ == "__main__":
    main()
