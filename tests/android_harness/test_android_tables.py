"""Op-profiling tables: the CSV file, CSV inline, the TF <= 2.8 [start] column, bad rows."""
from pathlib import Path

import pytest

from edgetailor.android_harness.errors import CaptureError
from edgetailor.android_harness.parser import parse, parse_profile
from edgetailor.android_harness.results import RunStats

FIXTURES = Path(__file__).parents[1] / "fixtures" / "android"

# TF <= 2.8 CSV: [start] column, and a name with ", " left as is (older formatter).
OLD_CSV = """Operator-wise Profiling Info for Regular Benchmark Runs:
============================== Run Order ==============================
node type, start, first, avg_ms, %, cdf%, mem KB, times called, name
CONV_2D, 0, 1.2, 1.1505, 60.4%, 60.4%, 0, 1, [conv;conv/BiasAdd]:0
Convolution (NHWC, F32) GEMM, 1.151, 0.75, 0.754, 39.6%, 100%, 0, 1, [out_a, out_b]:1

Number of nodes executed: 2
============================== Summary by node type ==============================
node type, count, avg_ms, avg %, cdf %, mem KB, times called
CONV_2D, 1, 1.15, 60.4%, 60.4%, 0, 1
Convolution (NHWC, F32) GEMM, 1, 0.754, 39.6%, 100%, 0, 1

Timings (microseconds): count=20 first=1950 curr=1904 min=1890 max=1950 avg=1904.5 std=12
Memory (bytes): count=0
2 nodes observed
"""


def test_csv_profile_file():
    profiles = parse_profile((FIXTURES / "profile.csv").read_text(), "profile.csv")
    run, init = profiles["run"], profiles["init"]
    assert run.csv and init.csv and run.stage == "run"
    rows = run.primary.run_order
    assert [(r.node_type, r.first_ms, r.avg_ms, r.percent, r.cdf_percent, r.calls)
            for r in rows[:2]] == [("CONV_2D", 1.824, 1.8339, 35.1423, 35.1423, 1),
                                   ("DEPTHWISE_CONV_2D", 0.922, 0.9439, 18.0876, 53.2299, 1)]
    assert rows[0].name == "[conv1;conv1/BiasAdd]:0"
    assert rows[5].name == "[logits, logits_aux]:5"  # newer builds print the comma as a tab
    assert run.primary.table("Top by Computation Time")[0].name == "[block1/pw]:2"
    by_type = run.primary.by_type
    assert [(t.node_type, t.count, t.avg_ms, t.percent, t.cdf_percent, t.calls)
            for t in by_type[:2]] == [("CONV_2D", 2, 4.042, 77.5221, 77.5221, 2),
                                      ("DEPTHWISE_CONV_2D", 1, 0.943, 18.0859, 95.608, 1)]
    assert run.primary.nodes_executed == 6
    assert run.primary.timings == RunStats(20, 5223, 5242, 5088, 5300, 5218.5, 61)
    (alloc,) = init.primary.run_order
    assert (alloc.name, alloc.avg_ms, alloc.mem_kb) == ("AllocateTensors/0", 0.412, 1340.0)


def test_old_csv_with_start_column_and_commas_in_types_and_names():
    run = parse_profile(OLD_CSV)["run"]
    rows = run.primary.run_order
    assert [(r.node_type, r.start_ms, r.first_ms, r.avg_ms, r.percent, r.name) for r in rows] == [
        ("CONV_2D", 0.0, 1.2, 1.1505, 60.4, "[conv;conv/BiasAdd]:0"),
        ("Convolution (NHWC, F32) GEMM", 1.151, 0.75, 0.754, 39.6, "[out_a, out_b]:1")]
    assert run.primary.by_type[1].node_type == "Convolution (NHWC, F32) GEMM"


def test_csv_tables_inline_in_stdout():
    # --profiling_output_csv_file pointing at an unwritable path: the CSV goes to the log
    capture = (FIXTURES / "tf215_cpu_op_profiling.txt").read_text()
    capture = capture[:capture.index("INFO: Profiling Info")] + "INFO: " + OLD_CSV
    r = parse(capture)
    assert r.run_profile.csv and [op.name for op in r.ops] == [
        "[conv;conv/BiasAdd]:0", "[out_a, out_b]:1"]
    assert r.inference_avg_us == 6159.43


def test_malformed_csv_row_names_the_line():
    bad = OLD_CSV.replace("0.754, 39.6%", "0.754, 39.6")
    with pytest.raises(CaptureError, match="malformed CSV profiling row") as info:
        parse_profile(bad, "prof.csv")
    assert info.value.line_no == 5 and "Convolution (NHWC, F32) GEMM" in str(info.value)
    bad = OLD_CSV.replace("CONV_2D, 1, 1.15", "CONV_2D, one, 1.15")
    with pytest.raises(CaptureError, match="malformed CSV node-type row") as info:
        parse_profile(bad)
    assert info.value.line_no == 10


def test_table_cut_off_before_its_header():
    with pytest.raises(CaptureError, match="ends before its column header"):
        parse_profile("Operator-wise Profiling Info for Regular Benchmark Runs:\n"
                      "============================== Run Order ==============================")


def test_text_without_tables():
    with pytest.raises(CaptureError, match="no op-profiling tables"):
        parse_profile("INFO: Num threads: [1]\n", "x.csv")


def test_malformed_timings_line_in_profile():
    bad = OLD_CSV.replace("Timings (microseconds): count=20 first=1950",
                          "Timings (microseconds): count=20 first=")
    with pytest.raises(CaptureError, match="malformed statistics line") as info:
        parse_profile(bad)
    assert info.value.line_no == 13
