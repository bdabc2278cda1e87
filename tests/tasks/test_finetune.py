"""Model Maker fine-tuning from a pretrained start (a weights file made here): two phases, the best
epoch kept, and the reported top-1 measured on held-out images no phase trained or stopped on."""
import numpy as np
import pytest
import tensorflow as tf

from edgetailor.arch import zoo
from edgetailor.data import shapes
from edgetailor.tasks.classification import finetune

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def classes_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    data = shapes.classification(90, 48, seed=5)
    for i, (image, label) in enumerate(zip(data.images, data.labels)):
        folder = root / data.classes[label]
        folder.mkdir(exist_ok=True)
        (folder / f"{i:03d}.png").write_bytes(tf.io.encode_png(image).numpy())
    return root


def test_fine_tuning_reports_both_phases_and_measures_unseen_images(classes_folder, tmp_path):
    keras_model = tf.keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=0.35, weights=None)
    keras_model.save_weights(tmp_path / "v2_035.h5")
    spec = zoo.FAMILIES["mobilenet_v2"].spec(0.35, 1.0, 48)
    lines = []
    model, top1, description, report = finetune.train_pretrained(
        spec, "mobilenet_v2", str(tmp_path / "v2_035.h5"), classes_folder, epochs=1, progress=lines.append)
    assert [p["phase"] for p in report["phases"]] == ["head", "fine-tune"]
    assert any(line.startswith("head epoch 1/1") for line in lines)
    assert any(line.startswith("fine-tune epoch 1/1") for line in lines)
    assert "MobileNetV2(alpha=0.35)" in report["start"] and "measured on" in description

    data = finetune.load_dataset(finetune.Recipe(dataset=str(classes_folder), resolution=48,
                                                 train_images=10**9, val_images=10**9))
    _, (x_test, y_test) = finetune.split_held_out(data)
    assert report["test_images"] == len(y_test) > 0
    predicted = np.argmax(model.predict(x_test.astype(np.float32) / 127.5 - 1, verbose=0), axis=-1)
    assert top1 == round(100 * float(np.mean(predicted == y_test)), 2)
    assert all(layer.trainable for layer in model.layers)  # the bundle's model is whole again


def test_the_best_epoch_is_restored_even_without_an_early_stop():
    model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1)])
    callback = finetune._BestEpoch(patience=5)
    callback.set_model(model)
    best = [w.copy() for w in model.get_weights()]
    callback.on_epoch_end(0, {"val_accuracy": 0.9})
    model.set_weights([w + 1 for w in best])
    callback.on_epoch_end(1, {"val_accuracy": 0.5})
    callback.on_train_end()
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), best))
    assert not model.stop_training
