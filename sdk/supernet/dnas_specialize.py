"""``specialize --search SPACE --strategy NAME`` for the weight-sharing searches (``supernet.searches``).

``FromSearch`` answers the specializer's steps for classification: ``choose`` runs (or resumes,
or reads when finished) the registered strategy on the user's dataset and re-prices the found
spec with the class count that ships; ``train`` builds that spec, loads the weights it inherited
from the search supernet (batch norm recalibrated by the search), optionally fine-tunes it and
measures its top-1 on the held-out split the search never trained on. The bundle is the
classification task's. The search lives in ``--supernet DIR`` when given (the folder
``edgetailor search --strategy NAME --out DIR`` wrote: a finished search is reused, an unfinished
one continues), else in a temporary folder removed afterwards.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from edgetailor.arch.layers import totals, walk
from edgetailor.choose.candidate import Accuracy, Candidate, check_budget
from edgetailor.errors import DatasetError, SearchError, SpecError
from edgetailor.supernet import searches
from edgetailor.tasks.base import Choice, Progress, Request
from edgetailor.tasks.classification.task import MEASURED, Classification

DEFAULT_RESOLUTION = 32   # px: the proxy scale these searches finish at on two CPU cores
FINETUNE_LR = 0.01        # as ``supernet.specialize``: SGD per 64 images, cosine to 0


class FromSearch(Classification):
    """Classification whose candidate is what a weight-sharing search finds."""

    def __init__(self, folder: Path | None, finetune_epochs: int = 0):
        self.folder, self.finetune_epochs = folder, finetune_epochs
        self.result: searches.Result | None = None
        self._temporary: Path | None = None

    def check(self, request: Request) -> None:
        if request.task != "classification":
            raise SpecError("--strategy " + request.search.strategy + " searches classifiers")
        searches.get(request.search.strategy, request.search.space)
        if request.dataset is None:
            raise DatasetError(f"--strategy {request.search.strategy} trains its search supernet on --dataset "
                               "(a folder with one sub-folder per class)")
        if request.labels is not None:
            raise SpecError("--labels does not apply: the dataset's classes are the labels")

    def load(self, request: Request):
        from edgetailor.tasks.classification.train import folder_classes

        return tuple(folder_classes(request.dataset))

    def weights(self, request: Request) -> str:
        tuned = f", fine-tuned {self.finetune_epochs} epoch(s)" if self.finetune_epochs else ""
        return (f"inherited from the {request.search.strategy} search supernet over {request.search.space} "
                f"(batch norm recalibrated{tuned})")

    def _run(self, request: Request, progress: Progress) -> searches.Result:
        finished = searches.read_result(self.folder) if self.folder is not None else None
        if finished is not None:
            if (finished.strategy, finished.space) != (request.search.strategy, request.search.space):
                raise SearchError(f"{self.folder} holds a {finished.strategy} search of {finished.space!r}, not "
                                  f"{request.search.strategy} of {request.search.space!r}")
            if finished.dataset["dataset"] != str(Path(request.dataset).resolve()):
                raise SearchError(f"{self.folder} searched on {finished.dataset['dataset']}, not on {request.dataset}")
            progress(f"using the finished {finished.strategy} search in {self.folder}")
            return finished
        out = self.folder
        if out is None:
            self._temporary = Path(tempfile.mkdtemp(prefix="edgetailor_search_"))
            out = self._temporary / "search"
        return searches.run(searches.Request(
            request.search.strategy, request.search.space, request.profile, request.budget_ms,
            request.dataset, out, epochs=request.epochs, resolution=request.resolution or DEFAULT_RESOLUTION,
            progress=lambda report: progress(report.line())))

    def _clean(self) -> None:
        """Remove the temporary search folder (its weights are loaded, or the run failed)."""
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None

    def choose(self, request: Request, num_labels: int, progress: Progress) -> Choice:
        check_budget(request.budget_ms)
        try:
            result = self.result = self._run(request, progress)
        except BaseException:
            self._clean()
            raise
        spec = result.spec
        layers = walk(spec, num_labels)
        params, macs = totals(layers)
        latency = request.profile.predict_layers(layers).total_ms
        if latency > request.budget_ms:
            self._clean()
            raise SearchError(f"the {result.strategy} search found {spec.encode()} at {latency:.2f} ms on "
                              f"{request.profile.name}, over the {request.budget_ms:g} ms budget"
                              + (f" ({result.notes[-1]})" if result.notes else ""))
        best = Candidate(spec, latency, Accuracy(None, None, None), macs,
                         label=f"{result.strategy} search of {result.space}", params=params)
        progress(f"{result.strategy} search of {result.space}: {spec.encode()}, {latency:.2f} ms predicted")
        return Choice(best, f"{result.strategy}_{result.space}_r{spec.resolution}", summary={
            "mode": "search", "search": {"strategy": result.strategy, "space": result.space,
                                         "folder": str(self.folder) if self.folder else None,
                                         "seconds": result.seconds, "epochs": len(result.history),
                                         "history": list(result.history), "notes": list(result.notes)}})

    def train(self, choice: Choice, data, labels: list[str], request: Request, progress: Progress):
        from edgetailor import builder
        from edgetailor.supernet import data as supernet_data
        from edgetailor.supernet.evaluate import top1

        result = self.result
        source = supernet_data.open_source(**result.dataset)
        model = builder.build(result.spec, num_classes=len(result.classes), classifier_activation="softmax",
                              name=choice.name)
        searches.load_weights(model, result.weights)
        self._clean()
        score, scored = top1(model, source, result.spec.resolution)
        description = f"held-out split of {source.name}: {scored} images; weights inherited from the search"
        if self.finetune_epochs:
            from edgetailor.supernet.finetune import finetune

            progress(f"fine-tuning for {self.finetune_epochs} epoch(s) (inherited: top-1 {score:.1f} %)")
            inherited = score
            finetune(model, source, result.spec.resolution, self.finetune_epochs, FINETUNE_LR, progress)
            score, scored = top1(model, source, result.spec.resolution)
            description += f"; fine-tuned {self.finetune_epochs} epoch(s) (inherited top-1 {inherited} %)"
        return model, Accuracy(score, "measured", description, metric=MEASURED)

