"""`edgetailor blocks benchmark`: one tiny real run that writes the table and resumes; bad input."""
import json

import pytest
from click.testing import CliRunner

from edgetailor.cli.blocks import blocks_group

TINY = ["--networks", 2, "--epochs", 1, "--resolution", 32, "--latency-resolution", 64,
        "--train-images", 16, "--val-images", 8, "--device", "pixel1", "--dataset", "shapes"]


def invoke(args):
    return CliRunner().invoke(blocks_group, ["benchmark", *[str(a) for a in args]])


def one_line_error(result, fragment):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and fragment in errors[0], result.output


@pytest.mark.slow
def test_benchmark_writes_the_table_and_resumes(tmp_path):
    out = tmp_path / "bench"
    first = invoke(["--blocks", "ds,xblock", *TINY, "--out", out, "--json"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert [row["block"] for row in summary["blocks"]] == ["ds", "xblock"]
    assert all(row["networks"] == 2 and 1 <= row["front_size"] <= 2 and row["hypervolume"] > 0
               for row in summary["blocks"])
    assert {"table.md", "summary.json", "results.json"} <= {p.name for p in out.iterdir()}
    assert (out / "table.md").read_text() == summary["table"]
    results = json.loads((out / "results.json").read_text())["networks"]
    assert [(r["block"], r["index"]) for r in results] == [("ds", 0), ("ds", 1), ("xblock", 0), ("xblock", 1)]
    assert all(r["latency_ms"] > 0 and 0 <= r["accuracy"] <= 100 for r in results)
    assert first.stderr.count("top-1") == 4

    again = invoke(["--blocks", "ds,xblock", *TINY, "--out", out])
    assert again.exit_code == 0, again.output
    assert again.stderr.count("done before, skipped") == 4 and "top-1" not in again.stderr
    assert summary["table"] in again.stdout
    assert json.loads((out / "results.json").read_text())["networks"] == results


def test_bad_input_is_one_line(tmp_path):
    out = tmp_path / "out"
    one_line_error(invoke(["--blocks", "ir,resnet", *TINY, "--out", out]), "unknown block type 'resnet'")
    one_line_error(invoke(["--blocks", "ir", *TINY[:-2], "--dataset", tmp_path / "none", "--out", out]),
                   "dataset folder not found")
    one_line_error(invoke(["--blocks", "ir", *TINY, "--resolution", 48, "--out", out]), "multiple of 32")
    one_line_error(invoke(["--blocks", "ir", *TINY[:-4], "--device", "nokia3310", "--dataset", "shapes",
                           "--out", out]), "unknown device 'nokia3310'")
    assert not out.exists()
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"settings": {"device": "other"}, "networks": []}))
    one_line_error(invoke(["--blocks", "ir", *TINY, "--out", out]), "holds a benchmark with other settings")
    (out / "results.json").write_text("{not json")
    one_line_error(invoke(["--blocks", "ir", *TINY, "--out", out]), "is not a block benchmark's results file")
