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

    def __post_init__(self) -> None:
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

    def bundle(self, model: Any, labels: list[str], choice: Choice, accuracy: Accuracy, weights: str,
               request: Request, progress: Progress, quiet: bool) -> dict:
        """Export for both platforms into ``request.out_dir``; returns the manifest."""
