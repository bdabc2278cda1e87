"""The layer walk on hand-checked blocks."""
import pytest

from edgetailor.arch import layers
from edgetailor.arch.spec import SpecError, decode


def _spec(stages: str, head: str = "pool", stem: str = "conv_k3_s2_c16_re", res: int = 32):
    return decode(f"res{res} | {stem} | {stages} | head:{head}")


def test_inverted_residual_counts_by_hand():
    spec = _spec("ir_k3_e6_c16_re6")  # 16x16x16 in, mid 96, residual
    walked = layers.walk(spec, None)
    stem, block, pool = walked
    assert stem.params == 3 * 3 * 3 * 16 + 2 * 16
    assert block.params == (16 * 96 + 2 * 96) + (9 * 96 + 2 * 96) + (96 * 16 + 2 * 16)
    assert block.macs == 16 * 16 * (16 * 96 + 9 * 96 + 96 * 16)
    assert block.ops[-1].kind == "add"
    assert block.keras_params == block.params + 2 * (96 + 96 + 16)


def test_se_widths_follow_each_convention():
    tpu = layers.walk(_spec("ir_k3_e6_c24_se0.25_sw"), None)[1]
    v3 = layers.walk(_spec("ir_k3_e6_c24_hse0.25_hs"), None)[1]
    squeeze = lambda layer: [op for op in layer.ops if op.kind == "conv" and op.bias][0]
    assert squeeze(tpu).out_shape[2] == 4            # int(16 input channels * 0.25)
    assert squeeze(v3).out_shape[2] == 24            # make_divisible(96 * 0.25)


def test_strides_shapes_and_classifier():
    spec = _spec("ir_r3_k5_s2_e3_c24_re", res=33)
    walked = layers.walk(spec, 10)
    assert [l.out_shape for l in walked[:4]] == [(17, 17, 16), (9, 9, 24), (9, 9, 24), (9, 9, 24)]
    assert walked[-1].name == "classifier" and walked[-1].params == 24 * 10 + 10


def test_skip_is_free_unless_shapes_change():
    same, change = layers.walk(_spec("skip_c16,skip_s2_c24_re"), None)[1:3]
    assert same.params == 0 and same.ops == ()
    assert change.params == 16 * 24 + 2 * 24 and change.out_shape == (8, 8, 24)


def test_grouped_ir_halves_pointwise_weights():
    plain = layers.walk(_spec("ir_k3_e1_c16_xe_re"), None)[1]
    grouped = layers.walk(_spec("ir_k3_e1_c16_g2_xe_re"), None)[1]
    assert plain.params - grouped.params == 2 * (16 * 16 // 2)
    assert any(op.kind == "shuffle" for op in grouped.ops)


def test_invalid_shapes_are_errors():
    with pytest.raises(SpecError, match="even channels"):
        layers.walk(_spec("shuffle_s2_c15_re"), None)
    with pytest.raises(SpecError, match="keeps its channels"):
        layers.walk(_spec("shuffle_c32_re"), None)
    with pytest.raises(SpecError, match="groups do not divide"):
        layers.walk(_spec("ir_k3_e1_c15_g2_xe_re"), None)
