"""benchmark_model output parser: every fixture to exact numbers, every logging generation,
and errors that name the line that failed."""
from pathlib import Path

import pytest

from edgetailor.android_harness.errors import CaptureError
from edgetailor.android_harness.lines import clean
from edgetailor.android_harness.parser import parse, parse_file
from edgetailor.android_harness.results import RunStats

FIXTURES = Path(__file__).parents[1] / "fixtures" / "android"


def text(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_tf215_prefixed_stdout_with_op_profiling():
    r = parse_file(FIXTURES / "tf215_cpu_op_profiling.txt")
    assert (r.log_format, r.summary_format) == ("prefixed", "current")
    assert (r.init_us, r.first_us, r.warmup_avg_us, r.inference_avg_us) == (
        9817, 11462, 6245.1, 6159.43)
    assert r.warmup == RunStats(77, 11462, 6248, 5960, 11462, 6245.1, 613)
    assert r.inference == RunStats(60, 8101, 6176, 6018, 8101, 6159.43, 257)
    assert (r.memory_init_mb, r.memory_overall_mb, r.peak_memory_mb) == (7.58594, 13.5078, None)
    assert r.model_size_mb == 4.52162
    assert r.graph == "/data/local/tmp/ssdlite_mobilenet_v2_tiny.tflite"
    assert r.num_threads == 4 and r.param("use XNNPACK") == "0" and r.delegate == "cpu"
    assert r.latency_ms == pytest.approx(6.15943)
    assert r.errors == () and r.warnings == ()

    ops = r.ops
    assert len(ops) == 16 and [op.name[-3:] for op in ops[:2]] == ["]:0", "]:1"]
    first = ops[0]
    assert first.node_type == "CONV_2D"
    assert first.name == ("[MobilenetV2/Conv/Relu6;MobilenetV2/Conv/BatchNorm/FusedBatchNormV3;"
                          "MobilenetV2/Conv/Conv2D]:0")
    assert (first.first_ms, first.avg_ms, first.percent, first.cdf_percent, first.mem_kb,
            first.calls, first.start_ms) == (0.807, 0.614, 10.274, 10.274, 0.0, 1, None)
    post = ops[15]
    assert post.node_type == "TFLite_Detection_PostProcess"
    assert post.name == ("[TFLite_Detection_PostProcess, TFLite_Detection_PostProcess:1, "
                         "TFLite_Detection_PostProcess:2, TFLite_Detection_PostProcess:3]:15")
    assert (post.avg_ms, post.percent, post.cdf_percent) == (1.519, 25.404, 100.0)

    primary = r.run_profile.primary
    top = primary.table("Top by Computation Time")
    assert len(top) == 10 and top[0] == post.__class__(**{**post.__dict__, "cdf_percent": 25.404})
    assert primary.nodes_executed == 16
    assert [(t.node_type, t.count, t.avg_ms, t.percent, t.calls) for t in primary.by_type[:2]] == [
        ("CONV_2D", 8, 3.131, 52.428, 8), ("TFLite_Detection_PostProcess", 1, 1.519, 25.435, 1)]
    assert primary.timings == RunStats(60, 7921, 5996, 5838, 7921, 5979.43, 257)
    assert not r.run_profile.csv

    init = r.init_profile.primary.run_order
    assert [(op.node_type, op.name, op.avg_ms, op.mem_kb) for op in init] == [
        ("AllocateTensors", "AllocateTensors/0", 0.437, 1392.64)]


def test_2020_unprefixed_with_start_column_and_exponent_numbers():
    r = parse_file(FIXTURES / "tf23_unprefixed_2020.txt")
    assert (r.log_format, r.summary_format, r.delegate) == ("unprefixed", "current", "cpu")
    assert r.inference_avg_us == 2.56986e+06 == 2569860.0
    assert r.warmup_avg_us == 3018720.0 and r.first_us == 3018720
    assert r.warmup == RunStats(1, 3018720, 3018720, 3018720, 3018720, 3018720, 0.0)
    assert r.inference == RunStats(50, 2593856, 2556487, 2529569, 2598668, 2569860.0, 17248)
    assert (r.memory_init_mb, r.memory_overall_mb) == (2.71484, 1176.28)  # "Peak memory ..."
    assert r.num_threads == 1 and r.init_profile is None
    ops = r.ops
    assert [(op.node_type, op.start_ms, op.first_ms, op.avg_ms, op.percent) for op in ops[:2]] == [
        ("CONV_2D", 0.0, 401.138, 401.74, 15.633),
        ("DEPTHWISE_CONV_2D", 401.0, 325.18, 322.796, 12.561)]
    assert ops[-1].name == "[probs]:6" and ops[-1].cdf_percent == 100.0
    assert r.run_profile.primary.timings.avg_us == 2569860.0


def test_2018_contrib_stderr_legacy_summary():
    r = parse_file(FIXTURES / "contrib_2018_stderr.txt")
    assert (r.log_format, r.summary_format) == ("unprefixed", "legacy")
    assert (r.warmup_avg_us, r.init_us, r.inference_avg_us) == (154325, 45556, 15082)
    assert r.first_us == 154325  # the first warm-up run is the first inference
    assert r.inference == RunStats(50, 15012, 14994, 14599, 15549, 15082, 215)
    assert r.param("Use nnapi") == "0" and r.param("Num runs") == "50"
    assert r.param("Benchmark name") == "" and r.num_threads == 4
    assert r.memory_overall_mb is None and r.model_size_mb is None and r.delegate == "cpu"
    primary = r.run_profile.primary
    assert [t.title for t in primary.tables] == [
        "Run Order", "Top by Computation Time", "Top by Memory Use"]
    assert primary.run_order[2].name == "[MobilenetV1/MobilenetV1/Conv2d_1_pointwise/Relu6]"
    assert (primary.run_order[2].start_ms, primary.run_order[2].avg_ms) == (4.204, 3.893)
    assert primary.timings == RunStats(50, 14917, 14899, 14504, 15454, 14987, 215)


def test_logcat_capture_with_other_tags_and_terminal_junk():
    r = parse_file(FIXTURES / "logcat_apk.txt")
    assert r.log_format == "logcat" and r.delegate == "xnnpack"
    assert r.warmup.count == 21  # that line starts with a literal ^[[A
    assert (r.init_us, r.first_us, r.warmup_avg_us, r.inference_avg_us) == (
        61204, 39057, 25618.4, 23369.1)
    assert r.memory_overall_mb == 39.0234 and r.num_threads == 4
    assert [k for k, _ in r.params if k.startswith("Start proc")] == []
    assert r.warnings == ()  # the W line belongs to ActivityTaskManager, not tflite
    (op,) = r.ops
    assert (op.node_type, op.name, op.avg_ms, op.calls) == (
        "TfLiteXNNPackDelegate", "[MobilenetV2/Predictions/Reshape_1]:65", 23.039, 1)


def test_multi_subgraph_xnnpack_and_delegate_internal_blocks():
    r = parse_file(FIXTURES / "multi_subgraph_xnnpack.txt")
    assert r.delegate == "xnnpack" and r.num_threads == 2
    assert r.warmup.count == 88 and r.inference_avg_us == 5177.04  # ESC junk before INFO:
    assert r.peak_memory_mb == 36.7188 and r.memory_overall_mb == 31.0547
    assert [(w.line_no, w.level) for w in r.warnings] == [(12, "WARN")]
    assert r.warnings[0].text.startswith("Attempting to use a delegate")

    blocks = r.run_profile.blocks
    assert [(b.kind, b.subgraph_index, len(b.run_order)) for b in blocks] == [
        ("subgraph", 0, 3), ("subgraph", 1, 1), ("subgraph", 2, 2), ("delegate", None, 6)]
    assert blocks[1].timings == RunStats(40, 24, 24, 24, 24, 24, 0.0)  # "curr=24(all same)"
    assert blocks[2].run_order[0].calls == 8 and blocks[2].timings.avg_us == 665.2
    internal = r.run_profile.delegate_internal
    assert internal.run_order[0].node_type == "Convolution (NHWC, F32) IGEMM"
    assert internal.run_order[0].name == "Delegate/Convolution (NHWC, F32) IGEMM:0"
    assert internal.by_type[-1].node_type == "Global Average Pooling (NWC, F32)"
    # measurements use the primary graph only: the rest is inside WHILE / the delegate
    assert [op.node_type for op in r.ops] == ["TfLiteXNNPackDelegate", "WHILE",
                                              "TfLiteXNNPackDelegate"]
    assert r.ops[1].name == "[while_loop:0, while_loop:1, while_loop:2]:25"
    init = r.init_profile.primary.run_order
    assert [(op.name, op.mem_kb, op.calls) for op in init] == [
        ("ModifyGraphWithDelegate/0", 27264.0, 1), ("AllocateTensors/0", 0.0, 2)]


@pytest.mark.parametrize("mangle", [
    lambda s: s.replace("\n", "\r\n"),  # old adb shell pty
    lambda s: s.replace("INFO: ", "^[[A^[[AINFO: "),
    lambda s: s.replace("INFO: ", "\x1b[2K\rINFO: "),
    lambda s: "\n".join(f"I/tflite  ( 4321): {line}" for line in s.split("\n")),  # logcat -v brief
], ids=["crlf", "caret-junk", "ansi-cr", "logcat-brief"])
def test_prefix_and_junk_variants_parse_the_same(mangle):
    plain = parse(text("tf215_cpu_op_profiling.txt"))
    mangled = parse(mangle(text("tf215_cpu_op_profiling.txt")))
    assert mangled.inference == plain.inference and mangled.ops == plain.ops
    assert mangled.memory_overall_mb == plain.memory_overall_mb
    assert mangled.init_profile == plain.init_profile


def test_prefixes_are_searched_not_anchored_but_table_rows_are_left_alone():
    lines = clean("junk>INFO: Num threads: [2]\n\t CONV_2D\tINFO: x\nERROR: boom")
    assert [(ln.text, ln.level, ln.prefixed) for ln in lines] == [
        ("Num threads: [2]", "INFO", True), ("\t CONV_2D\tINFO: x", None, False),
        ("boom", "ERROR", True)]


@pytest.mark.parametrize("line, expected", [
    ("count=0", RunStats(0)),
    ("count=1 curr=3512391", RunStats(1, 3512391, 3512391, 3512391, 3512391, 3512391, 0.0)),
    ("count=50 curr=12(all same)", RunStats(50, 12, 12, 12, 12, 12, 0.0)),
    ("count=50 curr=12 (all same)", RunStats(50, 12, 12, 12, 12, 12, 0.0)),
    ("count=50 first=2989660 curr=2912978 min=2727203 max=3189476 avg=2.9499e+06 std=109770",
     RunStats(50, 2989660, 2912978, 2727203, 3189476, 2949900.0, 109770)),
])
def test_stat_line_variants(line, expected):
    assert RunStats.parse(line) == expected


def test_nan_warmup_average_becomes_none():
    capture = ("count=0\ncount=3 first=10 curr=11 min=10 max=12 avg=11 std=0\n"
               "Inference timings in us: Init: 500, First inference: 0, Warmup (avg): -nan, "
               "Inference (avg): 11\n")
    r = parse(capture)
    assert r.warmup == RunStats(0) and r.warmup_avg_us is None and r.inference_avg_us == 11
    assert r.delegate is None  # nothing about the start-up was captured


def test_summary_without_stat_lines_still_gives_latency():
    r = parse("INFO: Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 3, "
              "Inference (avg): 4\n")
    assert (r.inference_avg_us, r.warmup, r.inference) == (4, None, None)


def test_newer_named_subgraph_headers():
    capture = text("multi_subgraph_xnnpack.txt")
    capture = capture.replace("Primary graph profile:", "Primary graph (name: main) profile:")
    capture = capture.replace("Subgraph (index: 1)", "Subgraph (index: 1, name: while_cond)")
    r = parse(capture)
    blocks = r.run_profile.blocks
    assert [(b.subgraph_index, b.subgraph_name) for b in blocks[:2]] == [
        (0, "main"), (1, "while_cond")]
    assert blocks[1].timings.count == 40


# ---------------------------------------------------------------- errors name the line


def first_line(capture: str, needle: str) -> int:
    return next(i for i, line in enumerate(capture.split("\n"), 1) if needle in line)


def test_failed_run_names_the_first_error_line():
    with pytest.raises(CaptureError) as info:
        parse_file(FIXTURES / "failed_run.txt")
    err = info.value
    assert err.line_no == 7 and err.source == "failed_run.txt"
    assert "reported an error" in str(err) and "FULLY_CONNECTED' version '12'" in str(err)
    assert str(err).startswith("failed_run.txt, line 7: ")


def test_no_summary_names_the_last_line():
    capture = text("tf215_cpu_op_profiling.txt")
    capture = capture[:capture.index("INFO: Inference timings")]
    with pytest.raises(CaptureError, match="no timing summary") as info:
        parse(capture)
    assert info.value.line_no == first_line(capture, "count=60")
    assert "count=60" in str(info.value)


def test_empty_capture():
    with pytest.raises(CaptureError, match="empty capture"):
        parse("\n\n")


@pytest.mark.parametrize("old, new, message", [
    ("\t    0.807\t    0.614\t 10.274%", "\t    0.807\t 10.274%", "expected 8 tab-separated"),
    ("\t    0.807\t    0.614\t", "\t    0.8x7\t    0.614\t", "malformed first '0.8x7'"),
    ("\t        8\t     3.131", "\t      8.5\t     3.131", "malformed count '8.5'"),
], ids=["missing-field", "bad-number", "bad-count"])
def test_malformed_table_row_names_the_line(old, new, message):
    capture = text("tf215_cpu_op_profiling.txt").replace(old, new, 1)
    with pytest.raises(CaptureError, match=message) as info:
        parse(capture, source="capture.txt")
    assert info.value.line_no == first_line(capture, new)
    assert str(info.value).startswith(f"capture.txt, line {info.value.line_no}: ")


def test_missing_column_header():
    capture = text("tf215_cpu_op_profiling.txt")
    header = "\t             [node type]\t  [first]"
    at = capture.index(header)
    capture = capture[:at] + "garbage\n" + capture[capture.index("\n", at) + 1:]
    with pytest.raises(CaptureError, match="expected the column header of table 'Run Order'"):
        parse(capture)


@pytest.mark.parametrize("old, new, message", [
    ("count=60 first=8101", "count=60 first=81x01", "malformed statistics line"),
    ("Warmup (avg): 6245.1", "Warmup (avg): fast", "malformed timing summary item"),
    ("init=7.58594 overall=13.5078", "init=7.58594", "malformed memory line"),
])
def test_malformed_structured_lines(old, new, message):
    capture = text("tf215_cpu_op_profiling.txt").replace(old, new)
    with pytest.raises(CaptureError, match=message) as info:
        parse(capture)
    assert info.value.line_no == first_line(capture, new)


def test_two_runs_in_one_capture_is_an_error():
    capture = text("logcat_apk.txt") + text("tf215_cpu_op_profiling.txt")
    with pytest.raises(CaptureError, match="several runs") as info:
        parse(capture)
    assert info.value.line_no == first_line(capture, "Inference timings in us: Init: 9817")


def test_truncated_logcat_row_gets_a_hint():
    capture = text("logcat_apk.txt").replace("\t   23.039\t100.000%\t100.000%", "\t   23.0", 1)
    with pytest.raises(CaptureError, match="logcat cuts long messages"):
        parse(capture)


def test_three_stat_lines_before_one_summary_is_an_error():
    capture = ("count=3 curr=5(all same)\ncount=4 curr=6(all same)\ncount=5 curr=7(all same)\n"
               "Inference timings in us: Init: 1, First inference: 5, Warmup (avg): 6, "
               "Inference (avg): 7\n")
    with pytest.raises(CaptureError, match="more than two 'count=' lines") as info:
        parse(capture)
    assert info.value.line_no == 3


def test_legacy_no_stats_label():
    r = parse("Average inference timings in us: Warmup: 20, Init: 300, no stats: 12.5\n")
    assert (r.summary_format, r.inference_avg_us, r.warmup_avg_us, r.init_us) == (
        "legacy", 12.5, 20, 300)


def test_utf16_capture_from_powershell(tmp_path):
    path = tmp_path / "capture.txt"
    path.write_bytes(text("tf215_cpu_op_profiling.txt").encode("utf-16"))
    assert parse_file(path).inference_avg_us == 6159.43


def test_unrelated_banner_lines_are_just_text():
    capture = "==== Printing ====\n=== Hello world ===\n" + text("tf23_unprefixed_2020.txt")
    assert parse(capture).inference.count == 50
