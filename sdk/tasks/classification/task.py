"""Classification for the specializer: pick a published family (or search a space), train on a
classes folder, bundle with the image-classifier metadata."""
from __future__ import annotations

from pathlib import Path

from edgetailor._io import make_folders
from edgetailor.arch import zoo
from edgetailor.choose import pick
from edgetailor.choose.candidate import IMAGENET_TOP1, Accuracy
from edgetailor.errors import SpecError
from edgetailor.tasks import pretrained
from edgetailor.tasks.base import Choice, Progress, Request

DEFAULT_CLASSES = 1000
MEASURED = "validation top-1 (%) on the dataset's held-out split"
FINE_TUNED = "top-1 (%) on the half of the held-out split that fine-tuning never saw"


class Classification:
    name = "classification"
    metric = IMAGENET_TOP1

    def check(self, request: Request) -> None:
        if request.resolution is not None:
            raise SpecError("--resolution applies to detection and segmentation; classification "
                            "picks the resolution itself")

    def load(self, request: Request) -> tuple[str, ...] | None:
        """The class names of a folder with one sub-folder per class (images are read when training);
        None without a dataset."""
        from edgetailor.tasks.classification.train import folder_classes

        if request.dataset is None:
            return None
        return tuple(folder_classes(request.dataset))

    def labels(self, data: tuple[str, ...] | None, given: tuple[str, ...] | None) -> list[str]:
        if data is not None:
            if given is not None and list(given) != list(data):
                raise SpecError(f"--labels does not match the dataset's classes {list(data)}")
            return list(data)
        return list(given or (f"class_{i:04d}" for i in range(DEFAULT_CLASSES)))

    def choose(self, request: Request, num_labels: int, progress: Progress) -> Choice:
        if request.search is not None:
            return self._search(request, num_labels, progress)
        families, max_width = pretrained.scope(request, request.families or pick.FAMILIES, progress)
        result = pick.pick(request.profile, request.budget_ms, families=families, num_classes=num_labels,
                           pretrained_only=request.pretrained is not None, max_width=max_width)
        best = result.best
        progress(f"picked {best.label}: {best.latency_ms:.1f} ms predicted, top-1 {best.top1} "
                 f"({best.accuracy.kind}) from {result.candidates} candidates")
        return Choice(best, f"{best.family}_{round(best.width * 100):03d}_{best.resolution}",
                      result.runners_up, result.pareto, result.fastest, result.candidates)

    def _search(self, request: Request, num_labels: int, progress: Progress) -> Choice:
        from edgetailor.choose.accuracy import generic_estimator
        from edgetailor.choose.search.engine import SearchConfig, run_search

        search = request.search
        make_folders(Path(request.out_dir).parent)  # the study sits beside the bundle, kept for resuming
        storage = f"sqlite:///{Path(request.out_dir).resolve()}.study.db"
        progress(f"searching the {search.space} space: {search.trials} trials, {search.strategy}, "
                 f"study in {storage}")
        if request.dataset is not None:
            from edgetailor.tasks.classification.train import ProxyTrainer, Recipe

            evaluator = ProxyTrainer(Recipe(dataset=str(request.dataset)))
        else:
            evaluator = generic_estimator()
        config = SearchConfig(space=search.space, device=request.profile.name, budget_ms=request.budget_ms,
                              objective="hard", strategy=search.strategy, trials=search.trials,
                              storage=storage, study=f"specialize-{search.space}-{request.budget_ms:g}ms",
                              num_classes=num_labels)
        result = run_search(config, evaluator, profile=request.profile)
        if result.best is None:
            raise SpecError(f"the search found nothing under {request.budget_ms:g} ms: {result.best_note}")
        best = result.best
        return Choice(best.candidate, f"searched_{search.space}_{best.trial}", candidates=len(result.trials),
                      summary={"mode": "search", "search": result.to_dict()})

    def train(self, choice: Choice, data: tuple[str, ...], labels: list[str], request: Request,
              progress: Progress):
        from edgetailor.tasks.classification.train import train_classifier

        if request.pretrained is not None:
            from edgetailor.tasks.classification.finetune import train_pretrained

            model, top1, description, report = train_pretrained(
                choice.best.spec, choice.best.family, request.pretrained, request.dataset, request.epochs,
                name=choice.name, progress=progress)
            choice.summary["fine_tuning"] = report  # both phases, in the --json summary
            return model, Accuracy(top1, "measured", description, metric=FINE_TUNED)
        progress(f"training {choice.name} on {request.dataset} for {request.epochs} epoch(s)")
        model, top1, description = train_classifier(choice.best.spec, request.dataset, request.epochs,
                                                    name=choice.name)
        return model, Accuracy(top1, "measured", description, metric=MEASURED)

    def weights(self, request: Request) -> str:
        if request.pretrained is None:
            return f"trained on {request.dataset}"
        start = "ImageNet (Keras Applications)" if request.pretrained == "imagenet" else request.pretrained
        return f"pretrained on {start}, fine-tuned on {request.dataset}"

    def untrained(self, choice: Choice, labels: list[str]):
        from edgetailor import builder

        model = builder.build(choice.best.spec, num_classes=len(labels), name=choice.name)
        note = ("the architecture's ImageNet top-1 with trained weights; this bundle's weights are random"
                if choice.best.family else "this bundle's weights are random")
        return model, choice.best.accuracy.noted(note)

    def quantize(self, model, data: tuple[str, ...], request: Request, progress: Progress):
        """Int8 TFLite calibrated on the training images, measured on the held-out split (``tasks.quantize``)."""
        from edgetailor.tasks import quantize
        from edgetailor.tasks.classification.train import Recipe

        subject = quantize.classifier(model, request.dataset, Recipe().learning_rate,
                                      unseen_half=request.pretrained is not None)
        return quantize.quantize(subject, request.quantize, progress)

    def bundle(self, model, labels: list[str], choice: Choice, accuracy: Accuracy, weights: str,
               request: Request, progress: Progress, quiet: bool, quantized=None) -> dict:
        from edgetailor.bundle.writer import package

        best = choice.best
        family = zoo.FAMILIES.get(best.family) if best.family else None
        arch = zoo.Resolved(best.spec, choice.name, None, family)
        int8 = {} if quantized is None else dict(
            quantize="int8", calibration=quantized.calibration, tflite_model=quantized.model,
            quantization=quantized.report)
        return package(model, request.out_dir, labels=labels, profile=request.profile,
                       arch=arch, weights=weights, budget_ms=request.budget_ms,
                       predicted_ms=best.latency_ms, accuracy=accuracy, progress=progress, quiet=quiet,
                       **int8)
