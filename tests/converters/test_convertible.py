"""Every block kind builds a graph TFLite (builtin ops only) and Core ML convert."""
import numpy as np
import pytest
import tensorflow as tf

from edgetailor.builder import network as builder
from edgetailor.arch.spec import decode

pytestmark = pytest.mark.slow  # trains or converts models

# One tiny network holding every block kind and option the grammar has.
ALL_KINDS = decode(
    "res64 | conv_k3_s2_c16_hs,maxpool_k3_s2"
    " | ds_k3_c16_re6,ir_k3_e1_c16_g2_xe_re,ir_k5_s2_e3.66667_c24_hse0.25_hs,skip_c24"
    " | ir_k3_e6_c24_se0.25_sw,fused_k3_e4_c24_se0.25_sw,fused_k3_s2_e1_c32_re"
    " | ghost_k5_s2_e3_c40_hse0.25,ghost_k3_e2.3_c40,shuffle_s2_c48_re,shuffle_c48_re"
    " | head:conv_k1_c96_hs,pool,fc_c128_hs"
)


@pytest.fixture(scope="module")
def model():
    tf.keras.utils.set_random_seed(0)
    return builder.build(ALL_KINDS, num_classes=7)


def test_tflite_builtins_only_and_same_numbers(model):
    from edgetailor.converters.tflite import to_tflite

    # the product's converter: TFLITE_BUILTINS only, the concrete function frozen directly (Keras'
    # from_keras_model saves and reloads a SavedModel first: the same flatbuffer, ~10x the time)
    interpreter = tf.lite.Interpreter(model_content=to_tflite(model))
    interpreter.allocate_tensors()
    image = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype("float32")
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, model(image).numpy(), atol=1e-5)
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "HARD_SWISH" in ops  # x * relu6(x + 3) / 6 fused into one op
    assert not any(name.startswith("Flex") or name == "CUSTOM" for name in ops)


def test_core_ml_converts(model, tmp_path):
    import coremltools as ct

    path = tmp_path / "all_kinds.mlpackage"  # written by the conversion (saving again serializes it again)
    mlmodel = ct.convert(model, convert_to="mlprogram", inputs=[ct.TensorType(shape=(1, 64, 64, 3))],
                         skip_model_load=True, package_dir=str(path))  # Core ML cannot load models on Linux
    spec = mlmodel.get_spec()
    assert spec.WhichOneof("Type") == "mlProgram"
    assert [list(o.type.multiArrayType.shape) for o in spec.description.output] == [[1, 7]]
    assert path.is_dir()
