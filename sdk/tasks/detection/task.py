"""Detection for the specializer: SSDLite on a picked backbone, trained on a COCO or VOC folder."""
from __future__ import annotations

from edgetailor.arch.spec import ArchSpec
from edgetailor.choose.candidate import Accuracy
from edgetailor.latency.profiles import DeviceProfile
from edgetailor.tasks.base import Request
from edgetailor.tasks.dense import DenseTask
from edgetailor.tasks.detection import ssdlite
from edgetailor.tasks.detection.postprocess import PostprocessConfig

COCO_CLASSES = 90


class Detection(DenseTask):
    name = "detection"
    head = ssdlite
    default_resolution = ssdlite.DEFAULT_RESOLUTION
    placeholder_labels = tuple(f"class_{i:02d}" for i in range(COCO_CLASSES))
    metric = "COCO mAP@[.5:.95] (%) on the dataset's held-out split"
    package, reader, score, result = "edgetailor.tasks.detection", "load_detection_folder", "AP", "Detector"
    qat_fine_tune = "fine_tune_detector"
    # Adam with cosine decay, from scratch: held-out AP on 800 shapes images x 10 epochs at 160 px,
    # SSDLite-MobileNetV3-Small 0.5 / 1.0: 0.179 / 0.170 at 0.005, 0.208 / 0.158 at 0.01,
    # 0.198 / 0.083 at 0.02 (wider backbones want lower rates).
    learning_rate = 0.01
    priced = ("backbone + SSDLite head; TFLite_Detection_PostProcess (box decoding + NMS) is "
              "not priced: no profile holds a measurement of it")
    coreml_note = " (decoder + NMS pipeline)"

    def config(self, num_labels: int) -> ssdlite.SSDLiteConfig:
        return ssdlite.SSDLiteConfig(num_classes=num_labels)

    def backbone(self, family: str, width: float, resolution: int) -> ArchSpec:
        return ssdlite.detection_backbone(family, width, resolution)

    def adapt(self, spec: ArchSpec, family: str | None) -> ArchSpec:
        """MobileNetV3 backbones get SSDLite's reduced tail, as ``backbone`` does."""
        return ssdlite.reduce_tail(spec) if family in ssdlite.REDUCED_TAIL else spec

    def references(self, profile: DeviceProfile, num_labels: int) -> list[dict]:
        """Published detectors (Pixel 1) with our prediction of each on ``profile``, at COCO's 90
        classes and with ``num_labels`` classes (the bundle's)."""
        out = []
        for ref in ssdlite.PUBLISHED:
            spec = ref.spec()
            ours = {n: ssdlite.predict_latency(spec, self.config(n), profile).total_ms
                    for n in {COCO_CLASSES, num_labels}}
            out.append({"name": ref.name, "spec": spec.encode(), "published_pixel1_ms": ref.pixel1_ms,
                        "published_coco_map": ref.coco_map, "source": ref.source,
                        "predicted_ms_90_classes": round(ours[COCO_CLASSES], 1),
                        "predicted_ms": round(ours[num_labels], 1), "device": profile.name})
        return out

    def published_accuracy(self, spec: ArchSpec, num_labels: int) -> Accuracy | None:
        """The published detector's COCO mAP where ``spec`` is one (with COCO's 90 classes)."""
        reference = published_reference(spec) if num_labels == COCO_CLASSES else None
        if reference is None:
            return None
        return Accuracy(reference.coco_map, "published", reference.source, metric="COCO mAP (%)")

    def dataset_labels(self, data) -> list[str]:
        return list(data.classes)

    def export_options(self, request: Request) -> dict:
        return {"postprocess": request.postprocess or PostprocessConfig()}

    def measure_options(self, request: Request) -> dict:
        """The bundle's NMS with COCO evaluation's score floor and detection count (those of
        ``train.evaluate``): mAP ranks every box, and a 0.25 floor hides a weak model's boxes."""
        from dataclasses import replace

        return {"postprocess": replace(self.export_options(request)["postprocess"], max_detections=100,
                                       score_threshold=0.01)}

    def read_back(self, folder, options: dict) -> tuple[dict, dict]:
        """The post-processing each model applies, read back from the files; both must be the
        requested one (TFLite stores its thresholds as float32)."""
        import coremltools as ct

        export = self.exporter()
        wanted = options["postprocess"]
        applied = {"TFLite": export.postprocess_of_tflite((folder / "model.tflite").read_bytes()),
                   "Core ML": export.postprocess_of_coreml(ct.utils.load_spec(str(folder / "model.mlpackage")))}
        expected = {"TFLite": wanted.as_float32(), "Core ML": wanted}
        for platform, config in applied.items():
            if config != expected[platform]:
                raise RuntimeError(f"the {platform} model applies {config}, not the requested {expected[platform]}")
        return {"postprocess": applied["TFLite"].to_dict()}, {"postprocess": applied["Core ML"].to_dict()}


def published_reference(spec: ArchSpec) -> ssdlite.Reference | None:
    """The published detector whose architecture ``spec`` is, if any."""
    return next((ref for ref in ssdlite.PUBLISHED if ref.spec() == spec), None)
