"""Errors the harness raises: one clear line each, for the CLI to print as is."""
from __future__ import annotations

from edgetailor.errors import HarnessError  # noqa: F401  the harness errors' base, importable here as before


class CaptureError(HarnessError):
    """benchmark_model output that cannot be read; names the line that failed."""

    def __init__(self, message: str, line_no: int | None = None, line: str | None = None,
                 source: str = "benchmark output"):
        self.message, self.line_no, self.line, self.source = message, line_no, line, source
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.source if self.line_no is None else f"{self.source}, line {self.line_no}"
        text = f"{where}: {self.message}"
        if self.line is not None:
            shown = self.line if len(self.line) <= 160 else self.line[:157] + "..."
            text += f": {shown!r}"
        return text


class AdbError(HarnessError):
    """adb is missing, no usable phone is attached, or an adb step failed."""
