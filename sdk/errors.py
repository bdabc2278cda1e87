"""The project's errors: one root, one class per kind of user-facing failure.

Every message is one line that names the problem. The CLI turns an ``EdgetailorError`` into that
line and a non-zero exit; anything else is a bug and keeps its traceback. Each error is also a
``ValueError``, as every error was before the root existed, so scripts that catch ``ValueError``
keep working.
"""


class EdgetailorError(ValueError):
    """Root of the errors a user can cause or fix (bad input, missing file, unmet budget)."""


class SpecError(EdgetailorError):
    """An architecture spec, name or scaling request that is not valid."""


class ProfileError(EdgetailorError):
    """A device profile that cannot be found, read or applied."""


class DatasetError(EdgetailorError):
    """A dataset folder (classes, COCO, VOC, masks) that cannot be read as one."""


class SearchError(EdgetailorError):
    """A search that cannot run or finish (space, budget, storage, strategy)."""


class ConversionError(EdgetailorError):
    """A model that cannot be converted to TFLite or Core ML as asked."""


class BundleError(EdgetailorError):
    """A bundle that cannot be written or does not check out."""


class HarnessError(EdgetailorError):
    """A phone or timing tool that cannot be driven, or output that cannot be read."""


class OutputError(EdgetailorError):
    """An output path that cannot be written (exists and is not empty, missing parent)."""


class SupernetError(EdgetailorError):
    """A supernet that cannot be built, trained, resumed or set as asked (space, checkpoint, sub-network)."""


class WeightsError(EdgetailorError):
    """Pretrained weights that cannot be found, read, downloaded or mapped onto the model asked for."""
