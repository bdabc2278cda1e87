"""int8 one-op models (full-integer, int8 in and out) and the int8 host profile built from them."""
import json

import numpy as np
import tensorflow as tf
from click.testing import CliRunner

from edgetailor.arch.layers import walk
from edgetailor.arch.spec import decode
from edgetailor.cli.main import main
from edgetailor.latency import profiles
from edgetailor.profiling import host
from edgetailor.profiling.int8_tflite_ops import int8_op_model

EVERY_OP = decode(
    "res32 | conv_k3_s2_c16_hs,maxpool_k3_s2 | ir_k3_e1_c16_g2_xe_re,ir_k5_s2_e3_c24_hse0.25_hs"
    " | ir_k3_e6_c24_se0.25_sw,fused_k3_e4_c24_re | ghost_k3_e2.3_c24,shuffle_s2_c48_re,shuffle_c48_re"
    " | head:conv_k1_c96_hs,pool,fc_c128_hs")


def test_every_op_kind_quantizes_to_a_runnable_int8_model():
    ops = {(op.kind, op.groups > 1, op.act): op for layer in walk(EVERY_OP) for op in layer.ops}
    for op in ops.values():
        interpreter = tf.lite.Interpreter(model_content=int8_op_model(op))
        interpreter.allocate_tensors()
        sources, (result,) = interpreter.get_input_details(), interpreter.get_output_details()
        assert len(sources) == (2 if op.kind == "add" else 1), op  # a residual add reads its skip
        assert all(source["dtype"] == np.int8 for source in sources) and result["dtype"] == np.int8, op
        tensors = interpreter.get_tensor_details()
        assert not [t["name"] for t in tensors if t["dtype"] == np.float32], op  # nothing left in float
        for source in sources:
            interpreter.set_tensor(source["index"], np.ones((1, *op.in_shape), np.int8))
        interpreter.invoke()
        assert tuple(result["shape"]) == (1, *op.out_shape), op
    conv = walk(EVERY_OP)[0].ops[0]  # the 3x3 stem
    details = tf.lite.Interpreter(model_content=int8_op_model(conv)).get_tensor_details()
    filters = next(t for t in details if len(t["shape"]) == 4 and t["shape"][0] == conv.out_shape[2])
    assert len(filters["quantization_parameters"]["scales"]) == conv.out_shape[2]  # per output channel


def test_the_journal_keeps_float_and_int8_timings_apart(tmp_path):
    journal = tmp_path / "j.jsonl"
    journal.write_text(json.dumps({"key": "a", "ms": 1.0, "threads": 1}) + "\n"
                       + json.dumps({"key": "a", "ms": 0.5, "threads": 1, "precision": "int8"}) + "\n")
    assert host.read_journal(journal, 1) == {"a": 1.0}
    assert host.read_journal(journal, 1, precision="int8") == {"a": 0.5}


def test_profile_measure_int8_writes_an_int8_host_profile(tmp_path):
    out = tmp_path / "host-int8.json"
    result = CliRunner().invoke(main, ["profile", "measure", "--space", "mnasnet", "--archs", "1",
                                       "--end-to-end", "0", "--precision", "int8", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    profile = profiles.load(str(out))
    assert profile.name.endswith("-int8") and "int8" in profile.setting and profile.aliases == ("host-int8",)
    lines = [json.loads(line) for line in (tmp_path / "host-int8.json.measurements.jsonl").read_text().splitlines()]
    assert lines and all(line["precision"] == "int8" for line in lines)
    spec = decode("res96 | conv_k3_s2_c16_re6 | ir_k3_s2_e3_c24_re6 | head:conv_k1_c64_re6,pool")
    assert profile.predict(spec).total_ms > 0
