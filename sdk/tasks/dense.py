"""Dense-prediction tasks (a head on a picked backbone): what detection and segmentation share.

Candidates are the pick-mode families at a grid of widths, each with the task's head at the
task's resolution, priced whole (backbone + head, with the bundle's class count) by the device
profile. Task accuracy is published for a handful of these combinations only, so candidates are
ranked by their backbone's ImageNet top-1 at 224 px (published or estimated, as in pick mode):
the transfer MobileNetV3 and MnasNet report for SSDLite. Every result names that ranking metric.
"""
from __future__ import annotations

import importlib
import json
import time
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any, Callable

from edgetailor.arch import pretrained as published, zoo
from edgetailor.arch.layers import totals
from edgetailor.arch.spec import ArchSpec
from edgetailor.choose import accuracy, pick
from edgetailor.choose.candidate import Accuracy, Candidate, check_budget, pareto, ranked_within
from edgetailor.errors import SpecError
from edgetailor.latency.profiles import DeviceProfile
from edgetailor.tasks import pretrained
from edgetailor.tasks.base import Choice, Progress, Request

RANKING_METRIC = "backbone ImageNet top-1 (%)"
_IMAGENET_RESOLUTION = 224


@dataclass(frozen=True)
class DenseChoice:
    """Every candidate of a task pick, ranked (``Choice`` is made from it)."""

    best: Candidate
    runners_up: tuple[Candidate, ...]
    pareto: tuple[Candidate, ...]
    fastest: Candidate
    candidates: int
    references: tuple[dict, ...]
    seconds: float


class DenseTask:
    """A head (``ssdlite`` or ``lraspp``) on a picked backbone; subclasses fill in the task."""

    name: str
    head: ModuleType
    default_resolution: int
    placeholder_labels: tuple[str, ...]   # a bundle built without a dataset (COCO / Pascal VOC sized)
    metric: str                           # what a measured accuracy is
    learning_rate: float                  # Adam, from scratch (why: see the subclass)
    priced: str                           # what the predicted latency covers
    package: str                          # holds the task's train and export modules
    reader: str                           # the edgetailor.data.folders function that reads its datasets
    score: str                            # the key of the held-out figure its trainer's evaluate returns
    result: str                           # the trainer's model type (Detector / Segmenter)
    qat_fine_tune: str                    # the edgetailor.tasks.qat function that fine-tunes it for int8

    @property
    def head_name(self) -> str:
        return self.head.__name__.rsplit(".", 1)[-1]

    # -- what a subclass says -------------------------------------------------------------
    def config(self, num_labels: int) -> Any:
        raise NotImplementedError

    def backbone(self, family: str, width: float, resolution: int) -> ArchSpec:
        """The backbone the head sits on for ``family`` at ``width`` (its published variant)."""
        return zoo.FAMILIES[family].spec(width, 1.0, resolution)

    def adapt(self, spec: ArchSpec, family: str | None) -> ArchSpec:
        """``spec`` (of zoo ``family``, if known) as the head uses it."""
        return spec

    def references(self, profile: DeviceProfile, num_labels: int) -> list[dict]:
        """Published models of this task with our prediction of each on ``profile``."""
        return []

    def published_accuracy(self, spec: ArchSpec, num_labels: int) -> Accuracy | None:
        """The published task accuracy of ``spec`` with this head, if it is a published model."""
        return None

    def dataset_labels(self, data) -> list[str]:
        raise NotImplementedError

    def config_for(self, candidate: Candidate, num_labels: int) -> Any:
        """The head config of a chosen candidate (a task with several heads reads ``candidate.head``)."""
        return self.config(num_labels)

    def build_head(self, spec: ArchSpec, config):
        """The untrained Keras model of ``spec`` with the head ``config`` describes."""
        return self.head.build(spec, config)

    def head_label(self, config) -> str:
        """The head's name in the manifest."""
        return self.head_name

    # -- where the task's TensorFlow parts live (imported when called) ---------------------
    def trainer(self) -> ModuleType:
        return importlib.import_module(f"{self.package}.train")

    def exporter(self) -> ModuleType:
        return importlib.import_module(f"{self.package}.export")

    def read_dataset(self, folder, resolution: int):
        from edgetailor.data import folders

        return getattr(folders, self.reader)(folder, size=resolution)

    def held_out_score(self, trained, held_out) -> float:
        return self.trainer().evaluate(trained, held_out)[self.score]

    def wrap(self, model, spec: ArchSpec, config, labels: list[str]):
        """The untrained Keras model as the trainer's result (``Detector`` / ``Segmenter``)."""
        return getattr(self.trainer(), self.result)(model, spec, config, tuple(labels))

    # -- pricing and choosing -------------------------------------------------------------
    def price(self, spec: ArchSpec, profile: DeviceProfile, num_labels: int | None = None):
        """Latency Breakdown (ms) of backbone ``spec`` with this head (and a detector's
        post-processing op) on ``profile``."""
        config = self.config(num_labels or len(self.placeholder_labels))
        return self.head.predict_latency(spec, config, profile)

    def candidates(self, profile: DeviceProfile, resolution: int, num_labels: int,
                   families=pick.FAMILIES, widths=pick.WIDTHS) -> list[Candidate]:
        """Every family x width with this head, priced whole on ``profile``."""
        config = self.config(num_labels)
        out = []
        for family in families:
            for width in widths:
                spec = self.backbone(family, width, resolution)
                try:
                    walked = self.head.layers(spec, config)
                except SpecError:  # a backbone without the strides the head reads
                    continue
                params, macs = totals(walked)
                imagenet = zoo.FAMILIES[family].spec(width, 1.0, _IMAGENET_RESOLUTION)
                top1 = accuracy.estimate(imagenet, family, width)
                out.append(Candidate(spec, self.head.predict_latency(spec, config, profile, walked=walked).total_ms,
                                     replace(top1, metric=RANKING_METRIC), macs,
                                     f"{family} width {width:g} at {resolution} px", family, width,
                                     params=params))
        return out

    def pick(self, profile: DeviceProfile, budget_ms: float, num_labels: int,
             resolution: int | None = None, families=pick.FAMILIES, widths=pick.WIDTHS,
             runners_up: int = 4, keep: Callable[[Candidate], bool] | None = None) -> DenseChoice:
        """The candidate with the best backbone top-1 whose predicted latency is within ``budget_ms``
        (among those ``keep`` accepts)."""
        check_budget(budget_ms)
        started = time.perf_counter()
        resolution = resolution or self.default_resolution
        pool = [c for c in self.candidates(profile, resolution, num_labels, families, widths) if not keep or keep(c)]
        if not pool:
            raise SpecError(f"no backbone among {', '.join(families)} takes a {self.name} head")
        fastest = min(pool, key=lambda c: c.latency_ms)
        under = ranked_within(pool, budget_ms)
        if not under:
            raise SpecError(f"no {self.name} candidate meets {budget_ms:g} ms on {profile.name} at "
                            f"{resolution} px: the fastest is {fastest.label} at {fastest.latency_ms:.1f} ms")
        return DenseChoice(under[0], tuple(under[1:runners_up + 1]), tuple(pareto(pool)), fastest,
                           len(pool), tuple(self.references(profile, num_labels)),
                           time.perf_counter() - started)

    # -- the specializer's steps (tasks.base.Task) ------------------------------------------
    def check(self, request: Request) -> None:
        if request.search is not None:
            raise SpecError("--search re-searches classification backbones only; detection and "
                            "segmentation pick a published backbone for their head")

    def load(self, request: Request):
        if request.dataset is None:
            return None
        data = self.read_dataset(request.dataset, request.resolution or self.default_resolution)
        if len(data.images) < 2:
            raise SpecError(f"{request.dataset}: {len(data.images)} image(s); training needs at least 2 "
                            "(one is held out for validation)")
        return data

    def labels(self, data, given: tuple[str, ...] | None) -> list[str]:
        if data is not None:
            found = self.dataset_labels(data)
            if given is not None and list(given) != found:
                raise SpecError(f"--labels does not match the dataset's classes {found}")
            return found
        labels = list(given or self.placeholder_labels)
        self.config(len(labels))  # checks the label count for the head
        return labels

    def choose(self, request: Request, num_labels: int, progress: Progress) -> Choice:
        resolution = request.resolution or self.default_resolution
        families, max_width = pretrained.scope(request, request.families or pick.FAMILIES, progress)
        keep = None if request.pretrained is None else (
            lambda c: published.has_start(c.family, c.width, max_width=max_width))  # noqa: E731
        result = self.pick(request.profile, request.budget_ms, num_labels, resolution, families, keep=keep)
        best = result.best
        progress(f"picked {best.label} with {best.head or self.head_name}: {best.latency_ms:.1f} ms "
                 f"predicted, backbone top-1 {best.top1} ({best.accuracy.kind}) from "
                 f"{result.candidates} candidates")
        name = f"{best.head or self.head_name}_{best.family}_{round(best.width * 100):03d}_{best.resolution}"
        return Choice(best, name, result.runners_up, result.pareto, result.fastest, result.candidates,
                      summary={"ranking": RANKING_METRIC, "published_references": list(result.references)})

    def train(self, choice: Choice, data, labels: list[str], request: Request, progress: Progress):
        """Train on 80 % of ``data`` and measure on the rest; (trained model, measured Accuracy)."""
        from edgetailor.tasks.detection.train import epoch_line

        spec, epochs = choice.best.spec, request.epochs
        train, held_out = self.split(data)
        progress(f"training {self.name} on {len(train.images)} images of {request.dataset} for "
                 f"{epochs} epoch(s); {len(held_out.images)} held out")

        def epoch_done(record: dict) -> None:
            progress(epoch_line(record, epochs))

        backbone, start = None, "trained here"
        if request.pretrained is not None:
            from edgetailor.builder.pretrained import build_pretrained

            backbone, origin = build_pretrained(spec, choice.best.family, request.pretrained, include_top=False)
            progress(f"backbone from {origin.describe()}")
            start = f"backbone from {origin.describe()}, under a new {self.head_name} trained here"
        trained = self.trainer().train(train, spec, self.config_for(choice.best, len(labels)), epochs=epochs,
                                       learning_rate=self.learning_rate, progress=epoch_done, backbone=backbone)
        description = (f"{start} on {request.dataset}: {len(train.images)} images, {epochs} epoch(s) "
                       f"at {spec.resolution} px; measured on {len(held_out.images)} held-out images")
        value = round(100 * float(self.held_out_score(trained, held_out)), 2)
        return trained, Accuracy(value, "measured", description, metric=self.metric)

    def split(self, data):
        """(training, held-out): 80 % / 20 % in the folder's order, at least one image held out."""
        n = len(data.images)
        return data.split(min(0.8, (n - 1) / n))

    def quantize(self, trained, data, request: Request, progress: Progress):
        """Int8 TFLite calibrated on the training split, measured on the held-out split through the
        task's own exporter (``measure_options``); see ``tasks.quantize``."""
        import dataclasses

        from edgetailor.tasks import qat, quantize
        from edgetailor.tasks.detection.train import resize_uint8

        train, held_out = self.split(data)
        exporter, options = self.exporter(), self.measure_options(request)
        fine_tune = getattr(qat, self.qat_fine_tune)
        measured_on = f"the held-out split of {request.dataset} ({len(held_out.images)} images)" + (
            f", evaluation post-processing {options['postprocess'].to_dict()} (model.tflite: the "
            "bundle's own; the network and its int8 ranges are the same)" if "postprocess" in options else "")
        subject = quantize.Subject(
            trained, lambda model, pixels: exporter.to_tflite(model, calibration=pixels, **options),
            lambda flatbuffer: 100.0 * exporter.evaluate_tflite(flatbuffer, held_out)[self.score],
            lambda model: dataclasses.replace(model, model=qat.quantize_aware(model.model)),
            lambda aware, epochs, rate: fine_tune(aware, train, epochs, rate),
            resize_uint8(train.images, trained.resolution), self.metric, measured_on, self.learning_rate)
        return quantize.quantize(subject, request.quantize, progress)

    def weights(self, request: Request) -> str:
        return f"trained on {request.dataset}"

    def untrained(self, choice: Choice, labels: list[str]):
        spec, config = choice.best.spec, self.config_for(choice.best, len(labels))
        published = self.published_accuracy(spec, len(labels))
        if published is not None:
            accuracy = published.noted("the architecture's published figure with its reference COCO "
                                       "weights; this bundle's weights are random")
        else:
            accuracy = choice.best.accuracy.noted(
                f"no published {self.name} accuracy for this backbone and head: the backbone's "
                "ImageNet top-1 is what the candidates were ranked by; this bundle's weights are random")
        return self.wrap(self.build_head(spec, config), spec, config, labels), accuracy

    def export_options(self, request: Request) -> dict:
        """Keyword arguments both of the task's exporters take (detection: its post-processing)."""
        return {}

    def measure_options(self, request: Request) -> dict:
        """``export_options`` for the TFLite models whose held-out figure quantization measures."""
        return self.export_options(request)

    def read_back(self, folder, options: dict, package: dict) -> tuple[dict, dict]:
        """What only this task's exported files hold, read back from them (``package``: the Core ML
        package as ``converters.coreml.describe_package`` read it, parsed once) and checked against
        ``options``: extra (TFLite, Core ML) manifest parts."""
        return {}, {}

    def bundle(self, trained, labels: list[str], choice: Choice, accuracy: Accuracy, weights: str,
               request: Request, progress: Progress, quiet: bool, quantized=None) -> dict:
        from edgetailor.bundle.manifest import LatencyReport, Manifest
        from edgetailor.bundle.writer import write_bundle

        spec, profile = trained.spec, request.profile
        options = self.export_options(request)
        manifest = Manifest(
            task=self.name, model_name=choice.name, weights=weights, profile=profile,
            arch={"name": choice.name, "spec": spec.encode(), "resolution": spec.resolution,
                  "width": spec.width, "head": self.head_label(trained.config), "head_config": _plain(trained.config)},
            latency=LatencyReport(choice.best.latency_ms, profile.expected_error_pct, request.budget_ms,
                                  self.priced, tuple(choice.summary.get("published_references", ()))),
            accuracy=accuracy, labels=list(labels),
            input={"name": "image", "shape": [1, spec.resolution, spec.resolution, 3], "layout": "NHWC",
                   "color": "RGB", "normalization": {"mean": [self.head.NORM_MEAN] * 3,
                                                     "std": [self.head.NORM_STD] * 3}},
            postprocess=options["postprocess"].to_dict() if "postprocess" in options else None,
            quantization=None if quantized is None else quantized.report)
        return write_bundle(request.out_dir, manifest,
                            lambda folder: self._write_models(trained, folder, options, progress, quantized),
                            progress=progress, quiet=quiet)

    def _write_models(self, trained, folder, options: dict, progress: Progress,
                      quantized=None) -> tuple[dict, dict]:
        from edgetailor.converters import coreml, tflite

        exporter = self.exporter()
        if quantized is None:
            progress(f"converting the {self.name} model to TFLite (float32, with metadata)")
            exporter.export_tflite(trained, folder / "model.tflite", **options)
        else:
            progress(f"converting the {self.name} model to TFLite (int8, {quantized.report.shipped}, with metadata)")
            exporter.export_tflite(quantized.model, folder / "model.tflite", calibration=quantized.calibration,
                                   **options)
        progress("converting to Core ML" + self.coreml_note)
        exporter.export_coreml(trained, folder / "model.mlpackage", **options)
        described = tflite.describe((folder / "model.tflite").read_bytes())
        package = coreml.describe_package(folder / "model.mlpackage")
        tflite_part = {"inputs": described["inputs"], "outputs": _described(described["outputs"], exporter.OUTPUTS),
                       "ops": described["ops"], "metadata_labels": (described["metadata"] or {}).get("labels")}
        coreml_part = {k: package[k] for k in ("type", "specification_version", "inputs", "outputs")}
        coreml_part["labels"] = package.get("classes") or json.loads(package["metadata"]["user_defined"]["labels"])
        coreml_part["predict"] = "not run: Core ML prediction needs macOS (see ios_harness)"
        tflite_extra, coreml_extra = self.read_back(folder, options, package)
        return {**tflite_part, **tflite_extra}, {**coreml_part, **coreml_extra}

    coreml_note = ""


def _described(outputs: list[dict], meanings: dict[str, str]) -> list[dict]:
    """TFLite ``outputs`` with what each one holds: the exporter's table, in output order (its keys
    are the names the metadata gives them; the segmenter's tensor keeps the converter's name)."""
    if len(outputs) != len(meanings):
        raise RuntimeError(f"the exporter describes {len(meanings)} output(s), the model has {len(outputs)}")
    return [{**o, "description": meaning} for o, meaning in zip(outputs, meanings.values())]


def _plain(config) -> dict:
    """A head config as JSON reads it back (tuples as lists)."""
    import dataclasses
    import json

    return json.loads(json.dumps(dataclasses.asdict(config)))
