"""Real clients on bundles: MediaPipe Tasks and the TFLite Task Library load a classifier, a
detector and a segmenter and return what the TFLite interpreter returns; metadata with a wrong
normalisation, or without labels, is caught (``edgetailor.bundle.clients``, ``inspect --clients``).

The clients run in the side environments of ``tools/client-venvs.sh`` (``make test`` makes them);
without them these tests are skipped, saying how to make them. The bundles are tiny random-weight
models at 96 px (one five-block backbone, hard-swish and squeeze-excite included) with real TFLite
files (the converters' and the task exporters' own flatbuffers and metadata writers) and
manifests, written without the Core ML package: the check reads only model.tflite and
manifest.json, and a Core ML conversion costs 25-90 s per model on this machine.
"""
import json

import pytest
from click.testing import CliRunner

from edgetailor.arch import zoo
from edgetailor.bundle import clients
from edgetailor.bundle.manifest import LatencyReport, Manifest, file_entry, tool_versions
from edgetailor.choose.candidate import Accuracy
from edgetailor.cli.main import main
from edgetailor.converters.base import MOBILENET, ModelInfo, Normalization
from edgetailor.latency import profiles

pytestmark = pytest.mark.slow  # converts models

RESOLUTION = 96
# strides 2-32 (SSDLite reads 16 and 32, LR-ASPP 8 and 16); detection export costs ~30 s of CPU
# whatever the backbone (its SavedModel round trip), MobileNetV3-Small 0.35 adds ~15 s more
TINY = (f"res{RESOLUTION} | conv_k3_s2_c8_hs | ir_k3_s2_e3_c8_re | ir_k3_s2_e3_c16_re | "
        "ir_k3_s2_e3_c16_hse0.25_hs | ir_k3_s2_e3_c24_hs | head:conv_k1_c32_hs,pool")
LABELS = ["cat", "dog", "bird"]
SEGMENT_LABELS = ["background", "cat", "dog"]
ZERO_TO_ONE = Normalization((0.0, 0.0, 0.0), (255.0, 255.0, 255.0))  # the usual slip: [0, 1] for a [-1, 1] model


@pytest.fixture(scope="module")
def clients_ready():
    absent = clients.missing()
    if absent:
        pytest.skip(clients.how_to_create(absent))


def write_bundle(folder, task: str, tflite: bytes, labels: list[str], postprocess: dict | None = None):
    """A bundle folder with ``tflite`` as model.tflite, labels.txt and its manifest (no Core ML)."""
    manifest = Manifest(
        task=task, model_name=f"tiny_{task}", arch=None, weights="random", profile=profiles.load("pixel1"),
        latency=LatencyReport(None, None, None), accuracy=Accuracy(None, None, None), labels=labels,
        input={"name": "image", "shape": [1, RESOLUTION, RESOLUTION, 3], "layout": "NHWC", "color": "RGB",
               "normalization": MOBILENET.to_dict()}, postprocess=postprocess)
    folder.mkdir()
    (folder / "model.tflite").write_bytes(tflite)
    (folder / "labels.txt").write_text("".join(f"{label}\n" for label in labels))
    manifest.files = {name: file_entry(folder / name) for name in ("model.tflite", "labels.txt")}
    manifest.tools = tool_versions()
    (folder / "manifest.json").write_text(json.dumps(manifest.to_dict(), indent=1))
    return folder


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory):
    """Four classification bundles of one sharpened random classifier (its scores depend on the
    image, as a trained model's do): metadata as the converter writes it, metadata normalising to
    [0, 1], metadata without labels, and no metadata at all."""
    import tensorflow as tf

    from edgetailor.builder import network as builder
    from edgetailor.converters.metadata import add_metadata
    from edgetailor.converters.parity import calibrate_batchnorm, parity_pixels, sharpen_classifier
    from edgetailor.converters.tflite import to_tflite

    tf.keras.utils.set_random_seed(0)
    model = builder.build(zoo.resolve(TINY).spec, num_classes=len(LABELS))
    images = MOBILENET.apply(parity_pixels((RESOLUTION, RESOLUTION), 16, seed=1))
    sharpen_classifier(calibrate_batchnorm(model, images), images)
    raw = to_tflite(model)
    folder = tmp_path_factory.mktemp("classifiers")
    variants = {"good": (MOBILENET, tuple(LABELS)), "zero_to_one": (ZERO_TO_ONE, tuple(LABELS)),
                "no_labels": (MOBILENET, None)}
    bundles = {name: write_bundle(folder / name, "classification",
                                  add_metadata(raw, "classification", norm, labels, ModelInfo()), LABELS)
               for name, (norm, labels) in variants.items()}
    return {**bundles, "bare": write_bundle(folder / "bare", "classification", raw, LABELS)}


@pytest.fixture(scope="module")
def detector_bundle(tmp_path_factory):
    """A random SSDLite that returns its 10 best boxes (score floor 0)."""
    import tensorflow as tf

    from edgetailor.tasks.detection import export, ssdlite
    from edgetailor.tasks.detection.postprocess import PostprocessConfig
    from edgetailor.tasks.detection.train import Detector

    tf.keras.utils.set_random_seed(0)
    spec = zoo.resolve(TINY).spec
    config = ssdlite.SSDLiteConfig(num_classes=len(LABELS), extra_depths=(16, 16, 16, 16))
    postprocess = PostprocessConfig(max_detections=10, score_threshold=0.0)
    detector = Detector(ssdlite.build(spec, config), spec, config, tuple(LABELS))
    tflite = export.with_metadata(export.to_tflite(detector, postprocess), LABELS)
    return write_bundle(tmp_path_factory.mktemp("det") / "bundle", "detection", tflite, LABELS, postprocess.to_dict())


@pytest.fixture(scope="module")
def segmenter_bundle(tmp_path_factory):
    import tensorflow as tf

    from edgetailor.tasks.segmentation import export, lraspp
    from edgetailor.tasks.segmentation.train import Segmenter

    tf.keras.utils.set_random_seed(0)
    spec = zoo.resolve(TINY).spec
    config = lraspp.LRASPPConfig(num_classes=len(SEGMENT_LABELS))
    segmenter = Segmenter(lraspp.build(spec, config), spec, config, tuple(SEGMENT_LABELS))
    tflite = export.with_metadata(export.to_tflite(segmenter), SEGMENT_LABELS)
    return write_bundle(tmp_path_factory.mktemp("seg") / "bundle", "segmentation", tflite, SEGMENT_LABELS)


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def test_classifier_runs_the_same_in_both_clients(clients_ready, classifiers):
    result = invoke("inspect", classifiers["good"], "--clients", "--json")
    assert result.exit_code == 0, result.output
    checks = json.loads(result.stdout)["clients"]
    assert [c["client"] for c in checks] == ["MediaPipe Tasks", "TFLite Task Library"]
    for check in checks:
        assert check["ok"] and check["differences"] == [], check
        assert check["notes"] == []  # the scores depend on the image: a wrong normalisation would show
        assert check["compared"] == "2 images: 3 class scores each, the top class, labels"


def test_detector_returns_the_same_boxes_classes_and_scores(clients_ready, detector_bundle):
    for check in clients.check_bundle(detector_bundle):
        assert check.ok, (check.client, check.differences)
        assert check.compared.startswith("2 images: 20 detections (class, score, box in pixels)"), check.compared
        assert check.notes == []


def test_segmenter_returns_the_same_mask_and_labels(clients_ready, segmenter_bundle):
    for check in clients.check_bundle(segmenter_bundle):
        assert check.ok, (check.client, check.differences)
        assert check.compared == f"2 images: the class of {2 * RESOLUTION * RESOLUTION} pixels, labels"


def test_metadata_with_a_wrong_normalisation_is_caught(clients_ready, classifiers):
    checks = clients.check_bundle(classifiers["zero_to_one"])
    assert [c.client for c in checks] == ["MediaPipe Tasks", "TFLite Task Library"]
    for check in checks:
        assert not check.ok
        scores = next(d for d in check.differences if d.startswith("scores differ"))
        assert "the model's metadata normalises (pixel - [0.0]) / [255.0], the manifest (pixel - " \
               "[127.5, 127.5, 127.5]) / [127.5, 127.5, 127.5]" in scores, scores
        assert not any("labels" in d for d in check.differences)


def test_a_model_without_metadata_is_refused_by_both_clients(clients_ready, classifiers):
    for check in clients.check_bundle(classifiers["bare"]):
        assert not check.ok and len(check.differences) == 1, check
        assert check.differences[0].startswith("refuses the model: Input tensor has type")
        assert "it requires specifying NormalizationOptions metadata" in check.differences[0]


def test_a_classifier_without_packed_labels_is_caught_by_inspect(clients_ready, classifiers):
    result = invoke("inspect", classifiers["no_labels"], "--clients")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    error = result.stderr.strip()
    assert error.splitlines() == [error] and error.startswith("Error: bundle ")
    assert "MediaPipe Tasks: reads no labels from the model" in error
    assert "TFLite Task Library: reads no labels from the model" in error
    assert "scores differ" not in error  # same normalisation: only the labels are missing


def test_inspect_says_how_to_make_the_client_environments(classifiers, tmp_path):
    result = invoke("inspect", classifiers["good"], "--clients", env={clients.VENVS_VARIABLE: str(tmp_path / "none")})
    assert result.exit_code == 1 and "Traceback" not in result.output
    error = result.stderr.strip()
    assert error.splitlines() == [error]
    assert "no client environment for MediaPipe Tasks, TFLite Task Library" in error
    assert f"create them with `{clients.CREATE_COMMAND}`" in error
    tflite = invoke("inspect", classifiers["good"] / "model.tflite", "--clients")
    assert tflite.exit_code == 1 and tflite.stderr.startswith("Error: --clients checks a bundle folder")

