"""The published architectures, written in the spec grammar (see ``edgetailor.spec``).

Each family names the reference implementation its blocks were read from; each zoo entry
carries the published ImageNet top-1, parameters (M) and MACs (M) with their source. Rows are
``# stage k, HxW in`` commented where it helps, as timm does.
"""
from __future__ import annotations

from edgetailor.scaling import ChannelRule
from edgetailor.zoo import Family, Published, ZooEntry, register, register_family

SLIM_V1 = "tensorflow/models research/slim/nets/mobilenet_v1.md (table 'Pre-trained Models')"
SLIM_V2_V3 = "tensorflow/models research/slim/nets/mobilenet/README.md (tables 'Pretrained models')"
TPU_MNAS = "tensorflow/tpu models/official/mnasnet/README.md @377dbd0 (pretrained table)"
EFFNET_PAPER = "Tan & Le 2019, EfficientNet, arXiv:1905.11946 Table 2"
TPU_LITE = "tensorflow/tpu models/official/efficientnet/lite/README.md @07e173c (table)"

# --- MobileNetV1 (Keras Applications mobilenet.py; Howard et al. 2017) -------------------
register_family(Family(
    "mobilenet_v1",
    "res224 | conv_k3_s2_c32_re6 | ds_k3_s1_c64_re6"       # 224 -> 112
    " | ds_k3_s2_c128_re6,ds_k3_s1_c128_re6"                  # 112 -> 56
    " | ds_k3_s2_c256_re6,ds_k3_s1_c256_re6"                  # 56 -> 28
    " | ds_k3_s2_c512_re6,ds_r5_k3_s1_c512_re6"               # 28 -> 14
    " | ds_k3_s2_c1024_re6,ds_k3_s1_c1024_re6"                # 14 -> 7
    " | head:pool",
    ChannelRule(rounding="truncate"),
    dropout=0.001,
    reference="keras/applications/mobilenet.py (alpha: int(c * alpha))",
))
register(ZooEntry("mobilenet_v1_100", "mobilenet_v1",
                  Published(70.9, 4.24, 569, f"{SLIM_V1}: MobileNet_v1_1.0_224")))

# --- MobileNetV2 (Keras Applications mobilenet_v2.py; Sandler et al. 2018) ---------------
register_family(Family(
    "mobilenet_v2",
    "res224 | conv_k3_s2_c32_re6 | ir_r1_k3_s1_e1_c16_re6"  # 224 -> 112
    " | ir_r2_k3_s2_e6_c24_re6"                              # 112 -> 56
    " | ir_r3_k3_s2_e6_c32_re6"                              # 56 -> 28
    " | ir_r4_k3_s2_e6_c64_re6,ir_r3_k3_s1_e6_c96_re6"       # 28 -> 14
    " | ir_r3_k3_s2_e6_c160_re6,ir_r1_k3_s1_e6_c320_re6"     # 14 -> 7
    " | head:conv_k1_c1280_re6,pool",
    ChannelRule(rounding="truncate_divisible", head_conv="above_one"),
    dropout=0.0,
    reference="keras/applications/mobilenet_v2.py (_make_divisible(int(c * alpha), 8); "
              "1280 head only scaled when alpha > 1)",
))
for width, top1, params, macs in [(0.35, 60.3, 1.66, 59), (0.5, 65.4, 1.95, 97),
                                  (0.75, 69.8, 2.61, 209), (1.0, 71.8, 3.47, 300),
                                  (1.3, 74.4, 5.34, 509), (1.4, 75.0, 6.06, 582)]:
    register(ZooEntry(f"mobilenet_v2_{round(width * 100):03d}", "mobilenet_v2",
                      Published(top1, params, macs, f"{SLIM_V2_V3}: mobilenet_v2_{width}_224"),
                      width=width))

# --- MobileNetV3 (Keras Applications mobilenet_v3.py; Howard et al. 2019) ---------------
_V3_RULE = ChannelRule(stem="never", head_fc="above_one")
register_family(Family(
    "mobilenet_v3_large",
    "res224 | conv_k3_s2_c16_hs | ir_k3_s1_e1_c16_re"                            # 112
    " | ir_k3_s2_e4_c24_re,ir_k3_s1_e3_c24_re"                                     # 112 -> 56
    " | ir_k5_s2_e3_c40_hse0.25_re,ir_r2_k5_s1_e3_c40_hse0.25_re"                  # 56 -> 28
    " | ir_k3_s2_e6_c80_hs,ir_k3_s1_e2.5_c80_hs,ir_r2_k3_s1_e2.3_c80_hs"           # 28 -> 14
    ",ir_r2_k3_s1_e6_c112_hse0.25_hs"
    " | ir_k5_s2_e6_c160_hse0.25_hs,ir_r2_k5_s1_e6_c160_hse0.25_hs"                # 14 -> 7
    " | head:conv_k1_c960_hs,pool,fc_c1280_hs",
    _V3_RULE,
    reference="keras/applications/mobilenet_v3.py (stack_fn of MobileNetV3Large)",
))
register_family(Family(
    "mobilenet_v3_large_minimal",
    "res224 | conv_k3_s2_c16_re | ir_k3_s1_e1_c16_re"
    " | ir_k3_s2_e4_c24_re,ir_k3_s1_e3_c24_re"
    " | ir_k3_s2_e3_c40_re,ir_r2_k3_s1_e3_c40_re"
    " | ir_k3_s2_e6_c80_re,ir_k3_s1_e2.5_c80_re,ir_r2_k3_s1_e2.3_c80_re,ir_r2_k3_s1_e6_c112_re"
    " | ir_k3_s2_e6_c160_re,ir_r2_k3_s1_e6_c160_re"
    " | head:conv_k1_c960_re,pool,fc_c1280_re",
    _V3_RULE,
    reference="keras/applications/mobilenet_v3.py (minimalistic: kernel 3, relu, no SE)",
))
register_family(Family(
    "mobilenet_v3_small",
    "res224 | conv_k3_s2_c16_hs | ir_k3_s2_e1_c16_hse0.25_re"                    # 112 -> 56
    " | ir_k3_s2_e4.5_c24_re,ir_k3_s1_e3.66667_c24_re"                             # 56 -> 28
    " | ir_k5_s2_e4_c40_hse0.25_hs,ir_r2_k5_s1_e6_c40_hse0.25_hs"                  # 28 -> 14
    ",ir_r2_k5_s1_e3_c48_hse0.25_hs"
    " | ir_k5_s2_e6_c96_hse0.25_hs,ir_r2_k5_s1_e6_c96_hse0.25_hs"                  # 14 -> 7
    " | head:conv_k1_c576_hs,pool,fc_c1024_hs",
    _V3_RULE,
    reference="keras/applications/mobilenet_v3.py (stack_fn of MobileNetV3Small)",
))
register_family(Family(
    "mobilenet_v3_small_minimal",
    "res224 | conv_k3_s2_c16_re | ir_k3_s2_e1_c16_re"
    " | ir_k3_s2_e4.5_c24_re,ir_k3_s1_e3.66667_c24_re"
    " | ir_k3_s2_e4_c40_re,ir_r2_k3_s1_e6_c40_re,ir_r2_k3_s1_e3_c48_re"
    " | ir_k3_s2_e6_c96_re,ir_r2_k3_s1_e6_c96_re"
    " | head:conv_k1_c576_re,pool,fc_c1024_re",
    _V3_RULE,
    reference="keras/applications/mobilenet_v3.py (minimalistic: kernel 3, relu, no SE)",
))
for name, family, width, top1, params, macs in [
    ("mobilenet_v3_large_100", "mobilenet_v3_large", 1.0, 75.2, 5.4, 217),
    ("mobilenet_v3_large_075", "mobilenet_v3_large", 0.75, 73.3, 4.0, 155),
    ("mobilenet_v3_small_100", "mobilenet_v3_small", 1.0, 67.5, 2.5, 56),
    ("mobilenet_v3_small_075", "mobilenet_v3_small", 0.75, 65.4, 2.0, 44),
    ("mobilenet_v3_large_minimal_100", "mobilenet_v3_large_minimal", 1.0, 72.3, 3.9, 209),
    ("mobilenet_v3_small_minimal_100", "mobilenet_v3_small_minimal", 1.0, 61.9, 2.0, 65),
]:
    register(ZooEntry(name, family, Published(top1, params, macs, SLIM_V2_V3), width=width))

# --- MnasNet (tensorflow/tpu models/official/mnasnet/mnasnet_models.py @05f7b15) -----------
# Stem scaled by round_filters, 1280 head never scaled, repeats never depth-scaled.
_MNAS_RULE = ChannelRule(head_conv="never")
register_family(Family(
    "mnasnet_a1",
    "res224 | conv_k3_s2_c32_re | ir_k3_s1_e1_c16_re_noskip"                # 112
    " | ir_r2_k3_s2_e6_c24_re"                                                # 112 -> 56
    " | ir_r3_k5_s2_e3_c40_se0.25_re"                                         # 56 -> 28
    " | ir_r4_k3_s2_e6_c80_re,ir_r2_k3_s1_e6_c112_se0.25_re"                  # 28 -> 14
    " | ir_r3_k5_s2_e6_c160_se0.25_re,ir_k3_s1_e6_c320_re"                    # 14 -> 7
    " | head:conv_k1_c1280_re,pool",
    _MNAS_RULE, reference="tensorflow/tpu mnasnet_models.py mnasnet_a1()",
))
register_family(Family(
    "mnasnet_b1",
    "res224 | conv_k3_s2_c32_re | ir_k3_s1_e1_c16_re_noskip"
    " | ir_r3_k3_s2_e3_c24_re"
    " | ir_r3_k5_s2_e3_c40_re"
    " | ir_r3_k5_s2_e6_c80_re,ir_r2_k3_s1_e6_c96_re"
    " | ir_r4_k5_s2_e6_c192_re,ir_k3_s1_e6_c320_re_noskip"
    " | head:conv_k1_c1280_re,pool",
    _MNAS_RULE, reference="tensorflow/tpu mnasnet_models.py mnasnet_b1()",
))
register_family(Family(
    "mnasnet_small",
    # The first block is declared i16 in the reference while the stem gives 8 channels: its
    # residual check compares the declared widths, so there is no shortcut (noskip here).
    "res224 | conv_k3_s2_c8_re | ir_k3_s1_e1_c8_re_noskip"
    " | ir_k3_s2_e3_c16_re,ir_r2_k3_s2_e6_c16_re"
    " | ir_r4_k5_s2_e6_c32_se0.25_re,ir_r3_k3_s1_e6_c32_se0.25_re"
    " | ir_r3_k5_s2_e6_c88_se0.25_re,ir_k3_s1_e6_c144_re"
    " | head:conv_k1_c1280_re,pool",
    _MNAS_RULE, dropout=0.0, reference="tensorflow/tpu mnasnet_models.py mnasnet_small()",
))
register(ZooEntry("mnasnet_a1_100", "mnasnet_a1",
                  Published(75.2, 3.9, 315.2, f"{TPU_MNAS}: mnasnet-a1 depth_multiplier 1.0, 224")))
register(ZooEntry("mnasnet_b1_100", "mnasnet_b1",
                  Published(73.456, 4.383312, 314, "pytorch/vision torchvision/models/mnasnet.py "
                            "MNASNet1_0_Weights.IMAGENET1K_V1 meta (the B1 variant)")))
register(ZooEntry("mnasnet_small", "mnasnet_small",
                  Published(None, 2.0, 68, f"{TPU_MNAS}: mnasnet-small")))

# --- EfficientNet (tensorflow/tpu efficientnet_builder.py @b0b4d4b) -----------------------
register_family(Family(
    "efficientnet",
    "res224 | conv_k3_s2_c32_sw | ir_k3_s1_e1_c16_se0.25_sw"                # 112
    " | ir_r2_k3_s2_e6_c24_se0.25_sw"                                         # 112 -> 56
    " | ir_r2_k5_s2_e6_c40_se0.25_sw"                                         # 56 -> 28
    " | ir_r3_k3_s2_e6_c80_se0.25_sw,ir_r3_k5_s1_e6_c112_se0.25_sw"           # 28 -> 14
    " | ir_r4_k5_s2_e6_c192_se0.25_sw,ir_k3_s1_e6_c320_se0.25_sw"             # 14 -> 7
    " | head:conv_k1_c1280_sw,pool",
    reference="tensorflow/tpu efficientnet_builder.py efficientnet() with round_filters/"
              "round_repeats; keras/applications/efficientnet.py",
))
# (width, depth, resolution, dropout) from efficientnet_builder.efficientnet_params.
_EFFNET = {"b0": (1.0, 1.0, 224, 0.2, 77.1, 5.3, 390), "b1": (1.0, 1.1, 240, 0.2, 79.1, 7.8, 700),
           "b2": (1.1, 1.2, 260, 0.3, 80.1, 9.2, 1000), "b3": (1.2, 1.4, 300, 0.3, 81.6, 12, 1800),
           "b4": (1.4, 1.8, 380, 0.4, 82.9, 19, 4200), "b5": (1.6, 2.2, 456, 0.4, 83.6, 30, 9900),
           "b6": (1.8, 2.6, 528, 0.5, 84.0, 43, 19000), "b7": (2.0, 3.1, 600, 0.5, 84.3, 66, 37000)}
for variant, (w, d, r, drop, top1, params, macs) in _EFFNET.items():
    register(ZooEntry(f"efficientnet_{variant}", "efficientnet",
                      Published(top1, params, macs, f"{EFFNET_PAPER}: EfficientNet-{variant.upper()}"),
                      width=w, depth=d, resolution=r, dropout=drop))

# --- EfficientNet-Lite (tensorflow/tpu efficientnet/lite/efficientnet_lite_builder.py @22d5cab)
# No SE, relu6, stem (32) and head (1280) fixed, first and last stage repeats not depth-scaled.
register_family(Family(
    "efficientnet_lite",
    "res224 | conv_k3_s2_c32_re6 | ir_k3_s1_e1_c16_re6"
    " | ir_r2_k3_s2_e6_c24_re6"
    " | ir_r2_k5_s2_e6_c40_re6"
    " | ir_r3_k3_s2_e6_c80_re6,ir_r3_k5_s1_e6_c112_re6"
    " | ir_r4_k5_s2_e6_c192_re6,ir_k3_s1_e6_c320_re6"
    " | head:conv_k1_c1280_re6,pool",
    ChannelRule(stem="never", head_conv="never", fixed_depth_blocks=(0, -1)),
    reference="tensorflow/tpu efficientnet/lite/efficientnet_lite_builder.py (fix_head_stem)",
))
# The README's MAdds run about 4-6% above conv+FC multiply-adds of the same architecture
# (its counter includes more ops), so they are compared with a wider tolerance.
_LITE = {"lite0": (1.0, 1.0, 224, 0.2, 75.1, 4.7, 407), "lite1": (1.0, 1.1, 240, 0.2, 76.7, 5.4, 631),
         "lite2": (1.1, 1.2, 260, 0.3, 77.6, 6.1, 899), "lite3": (1.2, 1.4, 280, 0.3, 79.8, 8.2, 1440),
         "lite4": (1.4, 1.8, 300, 0.3, 81.5, 13.0, 2640)}
for variant, (w, d, r, drop, top1, params, macs) in _LITE.items():
    register(ZooEntry(f"efficientnet_{variant}", "efficientnet_lite",
                      Published(top1, params, macs, f"{TPU_LITE}: efficientnet-{variant}"),
                      width=w, depth=d, resolution=r, dropout=drop))

# --- GhostNet (huawei-noah ghostnet_pytorch/ghostnet.py; timm ghostnet.py) ----------------
# Ghost expand ratios are exp_size / input channels of the cfgs table; channels divisible by 4.
register_family(Family(
    "ghostnet",
    "res224_div4 | conv_k3_s2_c16_re | ghost_k3_s1_e1_c16"                  # 112
    " | ghost_k3_s2_e3_c24,ghost_k3_s1_e3_c24"                                # 112 -> 56
    " | ghost_k5_s2_e3_c40_hse0.25,ghost_k5_s1_e3_c40_hse0.25"                # 56 -> 28
    " | ghost_k3_s2_e6_c80,ghost_k3_s1_e2.5_c80,ghost_r2_k3_s1_e2.3_c80"      # 28 -> 14
    ",ghost_k3_s1_e6_c112_hse0.25,ghost_k3_s1_e6_c112_hse0.25"
    " | ghost_k5_s2_e6_c160_hse0.25,ghost_k5_s1_e6_c160,ghost_k5_s1_e6_c160_hse0.25"  # 14 -> 7
    ",ghost_k5_s1_e6_c160,ghost_k5_s1_e6_c160_hse0.25"
    " | head:conv_k1_c960_re,pool,fc_c1280_re",
    ChannelRule(head_fc="never"),
    reference="huawei-noah/Efficient-AI-Backbones ghostnet_pytorch/ghostnet.py cfgs",
))
register(ZooEntry("ghostnet_100", "ghostnet",
                  Published(73.9, 5.2, 141, "Han et al. 2020, GhostNet, CVPR, ImageNet comparison "
                            "table (GhostNet 1.0x)")))

# --- ShuffleNetV2 (torchvision shufflenetv2.py; Ma et al. 2018) -------------------------
def _shufflenet(c2: int, c3: int, c4: int, c5: int) -> str:
    return (f"res224 | conv_k3_s2_c24_re,maxpool_k3_s2 | shuffle_r4_k3_s2_c{c2}_re"
            f" | shuffle_r8_k3_s2_c{c3}_re | shuffle_r4_k3_s2_c{c4}_re | head:conv_k1_c{c5}_re,pool")


register_family(Family(
    "shufflenet_v2", _shufflenet(116, 232, 464, 1024),
    ChannelRule(stem="never", head_conv="above_one"), dropout=0.0,
    reference="pytorch/vision torchvision/models/shufflenetv2.py (stages_out_channels per width)",
    tables={0.5: _shufflenet(48, 96, 192, 1024), 1.5: _shufflenet(176, 352, 704, 1024),
            2.0: _shufflenet(244, 488, 976, 2048)},
))
_MEGVII = "megvii-model/ShuffleNet-Series ShuffleNetV2/README.md @0127af00 (top-1 = 100 - err)"
for width, top1, params, macs in [(0.5, 61.1, 1.4, 41), (1.0, 69.4, 2.3, 146),
                                  (1.5, 72.6, 3.5, 299), (2.0, 75.0, 7.4, 591)]:
    register(ZooEntry(f"shufflenet_v2_{round(width * 100):03d}", "shufflenet_v2",
                      Published(top1, params, macs, f"{_MEGVII}: ShuffleNetV2 {width}x"),
                      width=width))
