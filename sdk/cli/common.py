"""What every command shares: one-line failures, the error policy, profiles, specs, JSON out.

The error policy, in one place (``Command`` and ``Group``): an ``EdgetailorError`` is the
user's to fix and becomes click's one ``Error: ...`` line with exit code 1; click's own
exceptions (usage errors, ``--help``, Ctrl-C's ``Aborted!``) keep click's behaviour; anything
else is a bug in edgetailor, shown with its full traceback on stderr, one line asking for a
bug report, and exit code 70 (``EX_SOFTWARE`` in sysexits.h: internal software error).
"""
from __future__ import annotations

import errno
import io
import json
import math
import os
import sys
import traceback
from typing import Callable, NoReturn

import click

from edgetailor.errors import EdgetailorError

INTERNAL_ERROR = 70  # EX_SOFTWARE; distinct from 1 (user error) and 2 (usage error)
BUG_REPORT = "edgetailor: internal error (a bug): please report it with the traceback above"


def fail(message: str) -> NoReturn:
    """End the command with ``Error: message`` and exit code 1."""
    raise click.ClickException(message)


def say(message: str) -> None:
    """A progress line on stderr, so that stdout stays the result."""
    click.echo(f"edgetailor: {message}", err=True)


def lasting_progress(prefix: str = "") -> Callable[[str], None]:
    """Progress lines for a command whose bundle writer runs the converters under
    ``native_output_captured`` (file descriptor 2 sent to a temp file, for TensorFlow's C++ log):
    they go to a copy of stderr's descriptor taken now, so they still show while it is captured."""
    try:
        stream = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):  # a test runner's stream
        return lambda message: click.echo(f"{prefix}{message}", err=True)
    return lambda message: click.echo(f"{prefix}{message}", file=stream)


def emit_json(data) -> None:
    """``data`` as indented JSON on stdout; numpy values as numbers, paths as strings."""
    click.echo(json.dumps(data, indent=1, default=_plain))


def _plain(value):
    if hasattr(value, "tolist") and not isinstance(value, type):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable: {value!r}")


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses nan and inf: nan passes every range comparison, and
    inf passes an open upper end (``--budget-ms inf``), so either would reach a manifest."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number

    def _describe_range(self) -> str:
        # click writes an unbounded range as "[x<=None]" in --help; say nothing instead
        if self.min is None and self.max is None:
            return ""
        return super()._describe_range()


def load_profile(device: str):
    """The device profile named ``device`` (a shipped name or alias, or a JSON file)."""
    from edgetailor.latency import profiles

    return profiles.load(device)


def resolve_arch(arch: str, width: float | None = None, resolution: int | None = None):
    """``arch`` (a zoo name, family or inline spec) at ``width`` and ``resolution`` [px]."""
    from edgetailor.arch import zoo

    return zoo.resolve(arch, width=width, resolution=resolution)


class _ErrorPolicy:
    """Applies the module docstring's policy around a command's (or a group's) ``invoke``."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EdgetailorError as exc:
            raise click.ClickException(str(exc)) from exc
        except (click.ClickException, click.exceptions.Exit, click.Abort, EOFError):
            raise  # click's own: usage errors, ctx.exit, Ctrl-C / end of input
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # stdout closed early (`edgetailor zoo | head`): click exits quietly
            _report_bug(ctx)
        except Exception:
            _report_bug(ctx)


class PretrainedSource(click.ParamType):
    """``--pretrained``: ``imagenet`` (Keras' download-and-cache) or an existing Keras ``.h5`` file."""

    name = "imagenet|FILE"

    def convert(self, value, param, ctx):
        if value == "imagenet":
            return value
        if not os.path.isfile(value):
            self.fail(f"{value!r} is neither 'imagenet' nor an existing Keras .h5 weights file", param, ctx)
        return value


PRETRAINED = PretrainedSource()


def _report_bug(ctx: click.Context) -> NoReturn:
    click.echo(traceback.format_exc(), err=True, nl=False)
    click.echo(BUG_REPORT, err=True)
    ctx.exit(INTERNAL_ERROR)


class Command(_ErrorPolicy, click.Command):
    """A command that applies the error policy also when run on its own (as tests do)."""


class Group(_ErrorPolicy, click.Group):
    """A group whose commands and sub-groups all apply the error policy."""

    command_class = Command
    group_class = type  # sub-groups are ``Group`` too
