"""Detection for the specializer: SSDLite on a picked backbone, or a published EfficientDet-Lite /
NAS-FPN-lite detector where one fits the budget and beats SSDLite; trained on a COCO or VOC folder.

The head choice (``pick``): SSDLite candidates are ranked by backbone ImageNet top-1 as before. An
EfficientDet-Lite0-4 or the NAS-FPN-lite detector (``efficientdet``), priced whole with the
bundle's class count, replaces that pick when it fits the budget and its published COCO mAP is
higher than that of every published SSDLite detector that fits too; otherwise SSDLite stays
(tight budgets, other resolutions, families that exclude their backbones).
"""
from __future__ import annotations

from dataclasses import replace

from edgetailor.arch.layers import totals
from edgetailor.arch.spec import ArchSpec
from edgetailor.choose import pick as pick_mode
from edgetailor.choose.candidate import Accuracy, Candidate, check_budget, pareto, within_budget
from edgetailor.latency.profiles import DeviceProfile
from edgetailor.tasks.base import Request
from edgetailor.tasks.dense import DenseChoice, DenseTask
from edgetailor.tasks.detection import efficientdet, heads, ssdlite
from edgetailor.tasks.detection.postprocess import PostprocessConfig

COCO_CLASSES = 90
COCO_MAP = "published COCO mAP (%)"
ALTERNATIVE_HEADS = ("efficientdet", "nasfpn")
# NAS-FPN-lite's COCO AP: 24.2 as a survey table lists it for NAS-FPNLite + MobileNetV2 (2.16 M
# parameters; our walk of NASFPN_LITE gives 2.17 M); the paper's abstract: +2 AP over SSDLite
# MobileNetV2 (22.1). Not read from the paper's table itself.
NASFPN_LITE_MAP = (24.2, "Ghiasi et al. 2019, NAS-FPN (NAS-FPNLite, MobileNetV2, 320 px), as listed "
                         "with 2.16 M parameters in a survey table; abstract: +2 AP over SSDLite-MobileNetV2")


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
    priced = ("backbone + head (SSDLite, or BiFPN / NAS-FPN neck with the class and box nets) + "
              "TFLite_Detection_PostProcess (box decoding + NMS, every anchor a candidate): measured on "
              "the host as a one-op model, carried to the device by its factor on MobileNetV2")
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

    def read_back(self, folder, options: dict, package: dict) -> tuple[dict, dict]:
        """The post-processing each model applies, read back from the files; both must be the
        requested one (TFLite stores its thresholds as float32)."""
        from edgetailor.tasks.detection.coreml_pipeline import postprocess_of_settings

        export = self.exporter()
        wanted = options["postprocess"]
        applied = {"TFLite": export.postprocess_of_tflite((folder / "model.tflite").read_bytes()),
                   "Core ML": postprocess_of_settings(package.get("nms"))}
        expected = {"TFLite": wanted.as_float32(), "Core ML": wanted}
        for platform, config in applied.items():
            if config != expected[platform]:
                raise RuntimeError(f"the {platform} model applies {config}, not the requested {expected[platform]}")
        return {"postprocess": applied["TFLite"].to_dict()}, {"postprocess": applied["Core ML"].to_dict()}


    # -- the other heads ----------------------------------------------------------------------
    def alternatives(self, profile: DeviceProfile, num_labels: int, resolution: int | None = None,
                     families=pick_mode.FAMILIES) -> list[Candidate]:
        """EfficientDet-Lite0-4 and NAS-FPN-lite, priced whole with ``num_labels`` classes, their
        accuracy the published COCO mAP; only those at ``resolution`` (if given) whose backbone
        family is among ``families``."""
        out = []
        for ref in efficientdet.PUBLISHED:
            out.append(self._alternative(ref.spec(), ref.config(num_labels), profile, "efficientdet",
                                         ref.backbone, Accuracy(ref.coco_map, "published", ref.source, metric=COCO_MAP),
                                         ref.name))
        spec, config = efficientdet.nasfpn_lite(num_labels)
        out.append(self._alternative(spec, config, profile, "nasfpn", efficientdet.NASFPN_LITE[0],
                                     Accuracy(NASFPN_LITE_MAP[0], "published", NASFPN_LITE_MAP[1], metric=COCO_MAP),
                                     "NAS-FPN-lite MobileNetV2"))
        return [c for c in out if c.family in families and (resolution is None or c.resolution == resolution)]

    @staticmethod
    def _alternative(spec, config, profile, head, entry, accuracy, name) -> Candidate:
        from edgetailor.arch import zoo

        walked = efficientdet.layers(spec, config)
        params, macs = totals(walked)
        zoo_entry = zoo.ZOO[entry]
        return Candidate(spec, efficientdet.predict_latency(spec, config, profile, walked=walked).total_ms,
                         accuracy, macs,
                         f"{name} at {spec.resolution} px", zoo_entry.family, zoo_entry.width,
                         params=params, head=head)

    def published_ssdlite(self, profile: DeviceProfile, num_labels: int) -> list[Candidate]:
        """The published SSDLite detectors, priced with ``num_labels`` classes, accuracy COCO mAP."""
        return [Candidate(ref.spec(), ssdlite.predict_latency(ref.spec(), self.config(num_labels), profile).total_ms,
                          Accuracy(ref.coco_map, "published", ref.source, metric=COCO_MAP), 0, ref.name,
                          ref.family, ref.width, head="ssdlite")
                for ref in ssdlite.PUBLISHED]

    def pick(self, profile: DeviceProfile, budget_ms: float, num_labels: int, resolution: int | None = None,
             families=pick_mode.FAMILIES, widths=pick_mode.WIDTHS, runners_up: int = 4, keep=None) -> DenseChoice:
        """SSDLite's pick (``DenseTask.pick``), replaced by the EfficientDet-Lite / NAS-FPN-lite
        detector with the highest published COCO mAP that fits ``budget_ms`` where that mAP beats
        every published SSDLite detector that fits."""
        check_budget(budget_ms)
        chosen = super().pick(profile, budget_ms, num_labels, resolution, families, widths, runners_up, keep)
        pool = [c for c in self.alternatives(profile, num_labels, resolution, families) if not keep or keep(c)]
        fits = sorted((c for c in pool if within_budget(c.latency_ms, budget_ms)),
                      key=lambda c: (-c.accuracy.value, c.latency_ms))
        ssd_best = max((c.accuracy.value for c in self.published_ssdlite(profile, num_labels)
                        if within_budget(c.latency_ms, budget_ms)), default=None)
        if not fits or (ssd_best is not None and fits[0].accuracy.value <= ssd_best):
            return chosen
        ssd = replace(chosen.best, head="ssdlite")
        return replace(chosen, best=fits[0], runners_up=tuple(fits[1:runners_up]) + (ssd,),
                       pareto=tuple(pareto(pool)), candidates=chosen.candidates + len(pool))

    def config_for(self, candidate: Candidate, num_labels: int):
        """SSDLite's config, or the published detector's whose backbone and head ``candidate`` has."""
        if candidate.head == "nasfpn":
            return efficientdet.nasfpn_lite(num_labels)[1]
        if candidate.head == "efficientdet":
            ref = next(r for r in efficientdet.PUBLISHED if r.spec() == candidate.spec)
            return ref.config(num_labels)
        return self.config(num_labels)

    def build_head(self, spec: ArchSpec, config):
        return heads.module_for(config).build(spec, config)

    def head_label(self, config) -> str:
        return heads.name_of(config)

    def untrained(self, choice, labels: list[str]):
        """As ``DenseTask.untrained``; a published EfficientDet-Lite / NAS-FPN-lite keeps the COCO mAP
        it was chosen by, noted as the architecture's figure."""
        best = choice.best
        if best.head not in ALTERNATIVE_HEADS:
            return super().untrained(choice, labels)
        config = self.config_for(best, len(labels))
        accuracy = best.accuracy.noted("the architecture's published COCO figure (90 classes, its reference "
                                       "weights); this bundle's weights are random")
        return self.wrap(self.build_head(best.spec, config), best.spec, config, labels), accuracy


def published_reference(spec: ArchSpec) -> ssdlite.Reference | None:
    """The published detector whose architecture ``spec`` is, if any."""
    return next((ref for ref in ssdlite.PUBLISHED if ref.spec() == spec), None)
