"""What every command-line test asks of a command: run it, and see a user mistake end in one line.

Importable from any test file (pytest puts ``tests/`` on the path for its ``conftest.py``)."""
from click.testing import CliRunner

from edgetailor.cli.main import main


def invoke(*args, command=main):
    """Run ``command`` (the ``edgetailor`` group by default) with ``args`` turned to strings."""
    return CliRunner().invoke(command, [str(a) for a in args])


def assert_one_line_error(result, *needles):
    """Exit 1, no traceback, and stderr is one ``Error: `` line holding every needle."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert result.stderr.splitlines() == [result.stderr.strip()] and result.stderr.startswith("Error: "), \
        result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr
