"""G-Ghost stages and NASNet-A cells convert to TFLite (builtin ops, same numbers) and Core ML."""
import numpy as np
import pytest
import tensorflow as tf

from edgetailor.arch.spec import decode
from edgetailor.builder import network as builder
from edgetailor.converters.tflite import op_counts, to_tflite

pytestmark = pytest.mark.slow  # converts models

# A G-Ghost stage (X blocks in 2 groups, projection shortcut, mix and cheap parts), a reduction cell
# after a non-cell (no second input) and a normal cell whose second input is a 7x7 map factorized to
# 4x4 (odd: the shifted path pads a zero row). Small, as Core ML's converter takes ~0.3 s per layer.
TINY = decode("res56_div1 | conv_k3_s2_c8_re | gghost_r3_s2_c24_gw12 | nasreduce_s2_c8,nasnormal_c8"
              " | head:act_re,pool")


@pytest.fixture(scope="module")
def model():
    tf.keras.utils.set_random_seed(0)
    return builder.build(TINY, num_classes=5, classifier_activation=None)


def test_tflite_builtins_only_and_same_numbers(model):
    flatbuffer = to_tflite(model)
    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    image = np.random.default_rng(0).uniform(-1, 1, (1, 56, 56, 3)).astype("float32")
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, model(image).numpy(), atol=1e-4)
    ops = op_counts(flatbuffer)
    assert not any(name.startswith(("CUSTOM", "FLEX")) for name in ops), ops
    assert {"AVERAGE_POOL_2D", "MAX_POOL_2D", "DEPTHWISE_CONV_2D", "PAD"} <= set(ops), ops


def test_core_ml_converts(model, tmp_path):
    import coremltools as ct

    path = tmp_path / "gghost_nasnet.mlpackage"  # written by the conversion (saving again serializes it again)
    mlmodel = ct.convert(model, convert_to="mlprogram", inputs=[ct.TensorType(shape=(1, 56, 56, 3))],
                         skip_model_load=True, package_dir=str(path))  # Core ML cannot load models on Linux
    spec = mlmodel.get_spec()
    assert spec.WhichOneof("Type") == "mlProgram"
    assert [list(o.type.multiArrayType.shape) for o in spec.description.output] == [[1, 5]]
    assert path.is_dir()
