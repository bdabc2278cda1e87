"""What every task gives the specializer: labels, a choice under the budget, training, a bundle.

A task (classification, detection, segmentation) answers each step of ``specialize`` the same
way, so the orchestration never asks which task it holds. Nothing here imports TensorFlow; a
task's ``train``, ``untrained`` and ``bundle`` import it when called.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from edgetailor.choose.candidate import Accuracy, Candidate
from edgetailor.errors import SpecError
from edgetailor.latency.profiles import DeviceProfile

if TYPE_CHECKING:
    from edgetailor.tasks.detection.postprocess import PostprocessConfig

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SearchRequest:
    """``--search``: re-search a space instead of picking a published family."""

    space: str
    trials: int = 20
    strategy: str = "nsga2"


# Post-training int8 may lose this many percentage points of the task's held-out figure (top-1,
# COCO mAP, mIoU) before quantization-aware training is tried: about the noise of the few-hundred-
# image held-out splits users bring (one image of 200 is 0.5 pp), so a smaller loss cannot be told
# from chance and QAT's extra epochs would buy nothing measurable.
DEFAULT_QAT_THRESHOLD_PP = 1.0
QAT_THRESHOLD_RANGE_PP = (-100.0, 100.0)  # the figures are percentages: a drop lies in [-100, 100]


@dataclass(frozen=True)
class QuantizeRequest:
    """``--quantize int8``: post-training int8 calibrated on the training images, measured on the
    held-out split; quantization-aware training for ``qat_epochs`` when it loses more than
    ``qat_threshold_pp`` percentage points (-100: always, 100: never)."""

    mode: str = "int8"
    qat_threshold_pp: float = DEFAULT_QAT_THRESHOLD_PP
    qat_epochs: int = 2

    def __post_init__(self) -> None:
        low, high = QAT_THRESHOLD_RANGE_PP
        if self.mode != "int8":
            raise SpecError(f"specialize quantizes to int8 only (got --quantize {self.mode})")
        if isinstance(self.qat_threshold_pp, bool) or not isinstance(self.qat_threshold_pp, (int, float)) \
                or not low <= self.qat_threshold_pp <= high:
            raise SpecError(f"--qat-threshold must be percentage points from {low:g} to {high:g} "
                            f"(got {self.qat_threshold_pp!r})")
        if isinstance(self.qat_epochs, bool) or not isinstance(self.qat_epochs, int) or not 1 <= self.qat_epochs <= 100:
            raise SpecError(f"--qat-epochs must be a whole number from 1 to 100 (got {self.qat_epochs!r})")


@dataclass(frozen=True)
class Request:
    """One specialization: a device profile, a latency budget (ms) and where the bundle goes."""

    profile: DeviceProfile
    budget_ms: float
    out_dir: Path
    task: str = "classification"
    dataset: Path | None = None
    epochs: int = 3
    labels: tuple[str, ...] | None = None
    families: tuple[str, ...] | None = None   # None: every published family the task takes
    search: SearchRequest | None = None
    resolution: int | None = None             # detection/segmentation input (px)
    supernet: Path | None = None              # a trained supernet checkpoint: search it, inherit weights
    finetune: int = 0                         # with ``supernet``: fine-tuning epochs after extraction
    postprocess: PostprocessConfig | None = None  # detection: what the bundle returns (None: defaults)
    quantize: QuantizeRequest | None = None   # int8 TFLite, measured (needs ``dataset``)
    pretrained: str | None = None             # "imagenet" or a Keras .h5: a pretrained start, fine-tuned

    def __post_init__(self) -> None:
        if self.pretrained is not None:
            given = [name for name, value in (("--supernet", self.supernet), ("--search", self.search)) if value]
            if given:
                raise SpecError(f"--pretrained starts a published family from its weights; {given[0]} "
                                "does not take it")
            if self.dataset is None:
                raise SpecError("--pretrained needs --dataset: a new head is trained on your classes "
                                "(fine-tuning as Model Maker does)")
        if self.quantize is not None and self.supernet is not None:
            raise SpecError("--quantize applies to a picked or searched model; a supernet bundle ships float")
        if self.quantize is not None and self.dataset is None:
            raise SpecError("--quantize int8 needs --dataset: the int8 model is calibrated on its training "
                            "images and its accuracy measured on its held-out split (for a model without "
                            "data: edgetailor package --quantize int8 --calibration DIR)")
        if self.postprocess is not None and self.task != "detection":
            raise SpecError("--max-detections, --score-threshold, --iou-threshold and --class-aware-nms "
                            f"apply to --task detection (this is {self.task})")


@dataclass(frozen=True)
class Choice:
    """A task's pick under the budget: the best candidate, the others worth showing, and the
    bundle's model name. ``summary`` holds what only this task reports (search results,
    published references, the ranking metric)."""

    best: Candidate
    name: str
    runners_up: tuple[Candidate, ...] = ()
    pareto: tuple[Candidate, ...] = ()
    fastest: Candidate | None = None
    candidates: int = 1
    summary: dict[str, Any] = field(default_factory=dict)


class Task(Protocol):
    """The steps ``specialize`` runs, in order."""

    name: str

    def check(self, request: Request) -> None:
        """Refuse options this task does not take (one-line ``SpecError``)."""

    def load(self, request: Request) -> Any:
        """The data this task trains on (``request.dataset`` read as it trains on it); None when there
        is none, and the model ships with random weights."""

    def labels(self, data: Any, given: tuple[str, ...] | None) -> list[str]:
        """The bundle's labels: the dataset's, else ``given``, else placeholders."""

    def choose(self, request: Request, num_labels: int, progress: Progress) -> Choice:
        """The most accurate candidate within the budget, priced with ``num_labels`` classes."""

    def train(self, choice: Choice, data: Any, labels: list[str], request: Request,
              progress: Progress) -> tuple[Any, Accuracy]:
        """Train the chosen model on ``data``; (trained model, accuracy measured on held-out data)."""

    def weights(self, request: Request) -> str:
        """Where a trained model's weights come from, for the manifest."""

    def untrained(self, choice: Choice, labels: list[str]) -> tuple[Any, Accuracy]:
        """The chosen model with random weights, and the accuracy its architecture is known for."""

    def quantize(self, model: Any, data: Any, request: Request, progress: Progress) -> Any:
        """With ``request.quantize``: the int8 TFLite to ship, measured against the float one on the
        held-out split (a ``tasks.quantize.Quantized``, passed to ``bundle`` as ``quantized``)."""

    def bundle(self, model: Any, labels: list[str], choice: Choice, accuracy: Accuracy, weights: str,
               request: Request, progress: Progress, quiet: bool) -> dict:
        """Export for both platforms into ``request.out_dir``; returns the manifest. A task that
        quantizes also takes ``quantized`` (keyword) and ships its int8 TFLite."""
