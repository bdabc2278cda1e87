"""Specializing from a trained supernet: search, inherit, recalibrate, measure (a ``tasks.base.Task``).

``FromSupernet`` answers the specializer's steps for classification with a supernet checkpoint:
the labels are the checkpoint's classes; ``choose`` runs the evolutionary search under the
device budget with the checkpoint's accuracy predictor and the device's vectorised latency
(priced with the class count that ships, then re-priced exactly); ``train`` extracts the chosen
sub-network with its inherited weights, recalibrates its batch norm on training images, optionally
fine-tunes it, and measures its top-1 on the held-out split the supernet never trained on — the
accuracy the manifest reports. The bundle is the classification task's. The supernet is loaded
once and serves every target of a multi-target run.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from edgetailor.arch.layers import totals, walk
from edgetailor.choose.candidate import Accuracy, Candidate, check_budget
from edgetailor.errors import SpecError, SupernetError
from edgetailor.latency.profiles import DeviceProfile
from edgetailor.latency.space import SpacePredictor
from edgetailor.supernet import checkpoint, measured
from edgetailor.supernet.evolution import EvolutionOptions, evolve, fastest
from edgetailor.supernet.genome import Genomes, RowLatency
from edgetailor.supernet.subnet import ElasticSpace, Subnet
from edgetailor.tasks.base import Choice, Progress, Request
from edgetailor.tasks.classification.task import MEASURED, Classification

FINETUNE_LR = 0.01       # SGD per 64 images, cosine to 0: from trained weights, 1/40 of supernet training's 0.4
PREDICTED = "held-out top-1 (%) predicted by the supernet's accuracy predictor"


class FromSupernet(Classification):
    """Classification whose candidates are the sub-networks of the supernet in ``folder``."""

    def __init__(self, folder: str | Path, finetune_epochs: int = 0):
        self.folder, self.finetune_epochs = Path(folder), finetune_epochs
        self.state = checkpoint.read_state(self.folder)
        if self.state is None or not self.state.weights:
            raise SupernetError(f"{self.folder} holds no supernet checkpoint ({checkpoint.STATE} missing)")
        self._net, self._source, self.elastic = None, None, None
        self._latencies: dict[tuple[DeviceProfile, int], RowLatency] = {}
        self._trained: dict[Subnet, tuple] = {}  # (model, accuracy) per sub-network a target chose

    # --- pure steps -----------------------------------------------------------------------------

    def _elastic(self) -> ElasticSpace:
        if self.elastic is None:
            self.elastic = ElasticSpace.of(checkpoint.space_of(self.state))
        return self.elastic

    def check(self, request: Request) -> None:
        super().check(request)
        if request.task != "classification":
            raise SpecError("--supernet specializes classifiers (the supernet is a classification network)")
        if request.search is not None or request.families is not None:
            raise SpecError("--supernet searches the supernet's own sub-networks; drop --search / --families")
        checkpoint.check_fits(self.state, self._elastic(), None, self.folder)

    def load(self, request: Request):
        if self._source is None:
            self._source = checkpoint.open_data(self.state, self.folder, request.dataset)
        return self._source

    def labels(self, data, given: tuple[str, ...] | None) -> list[str]:
        return super().labels(tuple(self.state.classes), given)

    def weights(self, request: Request) -> str:
        tuned = f", fine-tuned {self.finetune_epochs} epoch(s)" if self.finetune_epochs else ""
        return f"inherited from supernet {self.folder} (batch norm recalibrated{tuned})"

    def layout(self) -> Genomes:
        """The supernet's sub-networks as genome rows, at its trained resolutions."""
        return measured.layout(self._elastic(), self.state)

    def latency(self, profile: DeviceProfile, num_labels: int) -> RowLatency:
        """Vectorised latency [ms] on ``profile`` with ``num_labels`` classes, priced once per pair
        (a multi-target run checks every budget first, then searches with the same tables)."""
        key = (profile, num_labels)
        if key not in self._latencies:
            layout = self.layout()
            self._latencies[key] = RowLatency(layout, SpacePredictor(layout.space(), profile, num_classes=num_labels))
        return self._latencies[key]

    def check_target(self, profile: DeviceProfile, budget_ms: float) -> None:
        """Refuse a budget no sub-network meets, naming the fastest one and its latency."""
        layout = self.layout()
        row, ms = fastest(layout, self.latency(profile, len(self.state.classes)))
        if ms > budget_ms:
            raise SupernetError(f"no sub-network of {self.folder} meets {budget_ms:g} ms on {profile.name}: "
                                f"the fastest, {layout.subnet(row).describe()}, is predicted at {ms:.1f} ms")

    def choose(self, request: Request, num_labels: int, progress: Progress) -> Choice:
        check_budget(request.budget_ms)
        self.check_target(request.profile, request.budget_ms)
        elastic, layout = self._elastic(), self.layout()
        predictor = measured.load_predictor(self.folder, elastic, self.state)
        latency = self.latency(request.profile, num_labels)
        result = evolve(layout, lambda rows: predictor.predict(layout.features(rows)), latency,
                        request.budget_ms, EvolutionOptions())
        subnet = layout.subnet(result.row)
        spec = elastic.spec(subnet)
        layers = walk(spec, num_labels)
        params, macs = totals(layers)
        exact_ms = request.profile.predict_layers(layers).total_ms
        if not math.isclose(exact_ms, result.latency_ms, rel_tol=1e-6):
            raise RuntimeError(f"vectorised latency {result.latency_ms} ms != exact {exact_ms} ms")
        held = predictor.held_out
        accuracy = Accuracy(round(result.accuracy, 2), "estimated",
                            f"accuracy predictor of supernet {self.folder}", metric=PREDICTED,
                            expected_error_pp=held.mae_pp if held else None)
        best = Candidate(spec, exact_ms, accuracy, macs, label=f"supernet {subnet.describe()}", params=params)
        progress(f"searched supernet {self.folder}: {result.evaluated} sub-networks in {result.seconds:.1f} s; "
                 f"chose {subnet.describe()}, {exact_ms:.1f} ms predicted, top-1 {result.accuracy:.1f} "
                 "(predicted)")
        return Choice(best, f"{self.state.space}_r{subnet.resolution}", candidates=result.evaluated,
                      summary={"mode": "supernet", "supernet": {
                          "checkpoint": str(self.folder), "space": self.state.space, "subnet": subnet.describe(),
                          "choices": dataclasses.asdict(subnet),
                          "predicted_top1": round(result.accuracy, 2), "search_seconds": round(result.seconds, 2),
                          "subnets_per_second": round(result.per_second),
                          "predictor_held_out": held.to_dict() if held else None}})

    # --- TensorFlow steps -----------------------------------------------------------------------

    def net(self):
        """The supernet, loaded once."""
        if self._net is None:
            self._net, _ = checkpoint.load(self.folder, space=self._elastic().space)
        return self._net

    def train(self, choice: Choice, data, labels: list[str], request: Request, progress: Progress):
        from edgetailor.supernet.evaluate import recalibrated, top1

        subnet = Subnet(**choice.summary["supernet"]["choices"])
        if subnet in self._trained:  # a multi-target run: another phone chose it (same data and epochs)
            progress(f"reusing {subnet.describe()}, extracted for an earlier target")
            return self._trained[subnet]
        progress(f"extracting {subnet.describe()} and recalibrating its batch norm")
        spec, model, calibrated = recalibrated(self.net(), subnet, data, classifier_activation="softmax")
        score, scored = top1(model, data, subnet.resolution)
        description = (f"held-out split of {data.name}: {scored} images; batch norm recalibrated on "
                       f"{calibrated} training images")
        if self.finetune_epochs:
            from edgetailor.supernet.finetune import finetune

            progress(f"fine-tuning for {self.finetune_epochs} epoch(s) (inherited: top-1 {score:.1f} %)")
            inherited = score
            finetune(model, data, subnet.resolution, self.finetune_epochs, FINETUNE_LR, progress)
            score, scored = top1(model, data, subnet.resolution)
            description += f"; fine-tuned {self.finetune_epochs} epoch(s) (inherited top-1 {inherited} %)"
        self._trained[subnet] = model, Accuracy(score, "measured", description, metric=MEASURED)
        return self._trained[subnet]
