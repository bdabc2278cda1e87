"""The published architectures, written in the spec grammar (see ``edgetailor.arch.spec``).

Each family names the reference implementation its blocks were read from; each zoo entry
carries the published ImageNet top-1, parameters (M) and MACs (M) with their source. Rows are
``# stage k, HxW in`` commented where it helps, as timm does.
"""
from __future__ import annotations

from edgetailor.arch.scaling import ChannelRule
from edgetailor.arch.registry import Family, Published, ZooEntry, register, register_family

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
V3_PAPER = "Howard et al. 2019, Searching for MobileNetV3, arXiv:1905.02244v5 Table 3"
for name, family, width, top1, params, macs in [
    ("mobilenet_v3_large_100", "mobilenet_v3_large", 1.0, 75.2, 5.4, 219),
    ("mobilenet_v3_large_075", "mobilenet_v3_large", 0.75, 73.3, 4.0, 155),
    ("mobilenet_v3_small_100", "mobilenet_v3_small", 1.0, 67.4, 2.5, 56),
    ("mobilenet_v3_small_075", "mobilenet_v3_small", 0.75, 65.4, 2.0, 44),
]:
    register(ZooEntry(name, family, Published(top1, params, macs, V3_PAPER), width=width))
register(ZooEntry("mobilenet_v3_large_minimal_100", "mobilenet_v3_large_minimal",
                  Published(72.3, 3.9, 209, f"{SLIM_V2_V3}: Large minimalistic 1.0")))
register(ZooEntry("mobilenet_v3_small_minimal_100", "mobilenet_v3_small_minimal",
                  Published(61.9, 2.0, 65, f"{SLIM_V2_V3}: Small minimalistic 1.0",
                            note="the README's Small rows overstate MACs: it lists 66M for Small "
                                 "1.0, where the paper and Keras' built model give 56M; Keras' "
                                 "Small minimalistic counts 52.3M")))

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
# MnasNet-A1's published depth-multiplier x resolution table (float top-1, %), used by the
# accuracy estimator as published variants. Source: TPU_MNAS (README @7dc921f8, as copied into
# shared/data/published_latency.csv); its 0.35 x 160 row (52.3) disagrees with the README's
# duplicate column (59.3) and is kept as published.
MNASNET_A1_TABLE = (
    (1.4, 224, 77.2), (1.0, 224, 75.2), (0.75, 224, 73.3), (0.5, 224, 68.9), (0.35, 224, 64.1),
    (1.4, 192, 76.1), (1.0, 192, 74.0), (0.75, 192, 72.1), (0.5, 192, 67.2), (0.35, 192, 62.4),
    (1.4, 160, 74.8), (1.0, 160, 72.0), (0.75, 160, 70.1), (0.5, 160, 64.9), (0.35, 160, 52.3),
    (1.4, 128, 72.5), (1.0, 128, 69.3), (0.75, 128, 67.0), (0.5, 128, 60.8), (0.35, 128, 54.8),
    (1.4, 96, 68.6), (1.0, 96, 64.4), (0.75, 96, 62.1), (0.5, 96, 54.7), (0.35, 96, 49.3),
)
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
_LITE = {"lite0": (1.0, 1.0, 224, 0.2, 75.1, 4.7, 407), "lite1": (1.0, 1.1, 240, 0.2, 76.7, 5.4, 631),
         "lite2": (1.1, 1.2, 260, 0.3, 77.6, 6.1, 899), "lite3": (1.2, 1.4, 280, 0.3, 79.8, 8.2, 1440),
         "lite4": (1.4, 1.8, 300, 0.3, 81.5, 13.0, 2640)}
for variant, (w, d, r, drop, top1, params, macs) in _LITE.items():
    register(ZooEntry(f"efficientnet_{variant}", "efficientnet_lite",
                      Published(top1, params, macs, f"{TPU_LITE}: efficientnet-{variant}",
                                note="the README's MAdds run 3-6% above the conv+FC MACs of the "
                                     "same architecture (its counter includes more ops)"),
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
_GHOST_PAPER = "Han et al. 2020, GhostNet, CVPR, ImageNet comparison table"
for width, top1, params, macs in [(0.5, 66.2, 2.6, 42), (1.0, 73.9, 5.2, 141), (1.3, 75.7, 7.3, 226)]:
    register(ZooEntry(f"ghostnet_{round(width * 100):03d}", "ghostnet",
                      Published(top1, params, macs, f"{_GHOST_PAPER} (GhostNet {width:g}x)"),
                      width=width))

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
_TORCHVISION = "pytorch/vision torchvision/models/shufflenetv2.py weights meta (num_params, GFLOPS, acc@1)"
for width, top1, params, macs in [(0.5, 60.552, 1.366792, 40), (1.0, 69.362, 2.278604, 145),
                                  (1.5, 72.996, 3.503624, 296), (2.0, 76.230, 7.393996, 583)]:
    register(ZooEntry(f"shufflenet_v2_{round(width * 100):03d}", "shufflenet_v2",
                      Published(top1, params, macs, f"{_TORCHVISION}: shufflenet_v2_x{width:g}"),
                      width=width))

# --- FBNet (Wu et al. 2019; per-layer choices of the paper's Fig. 4) ----------------------
# Paper-era IRFBlock (maskrcnn-benchmark fbnet_builder.py): the 1x1 expand conv is kept at e1
# (xe), ReLU after the depthwise conv, g2 = grouped 1x1 convs with a channel shuffle; skip is
# an identity. 16-wide stem; head 1504 (A) or 1984 (B, C).
def _fbnet(stages: list[str], head: int) -> str:
    return "res224 | conv_k3_s2_c16_re | " + " | ".join(stages) + f" | head:conv_k1_c{head}_re,pool"


_FBNET = {
    "fbnet_a": ([
        "skip_c16",                                                                   # 112
        "ir_k3_s2_e3_c24_re,ir_k3_s1_e1_c24_xe_re,skip_c24,skip_c24",                 # 112 -> 56
        "ir_k5_s2_e6_c32_re,ir_k3_s1_e3_c32_re,ir_k5_s1_e1_c32_xe_re,ir_k3_s1_e3_c32_re",  # 28
        "ir_k5_s2_e6_c64_re,ir_k5_s1_e3_c64_re,ir_k5_s1_e1_c64_g2_xe_re,ir_k5_s1_e6_c64_re"
        ",ir_k3_s1_e6_c112_re,ir_k5_s1_e1_c112_g2_xe_re,ir_k5_s1_e3_c112_re"
        ",ir_k3_s1_e1_c112_g2_xe_re",                                                 # 28 -> 14
        "ir_k5_s2_e6_c184_re,ir_k5_s1_e6_c184_re,ir_k5_s1_e3_c184_re,ir_k5_s1_e6_c184_re"
        ",ir_k5_s1_e6_c352_re",                                                       # 14 -> 7
    ], 1504, (73.26, 4.28648, 249.921848)),
    "fbnet_b": ([
        "ir_k3_s1_e1_c16_xe_re",
        "ir_k3_s2_e6_c24_re,ir_k5_s1_e1_c24_xe_re,ir_r2_k3_s1_e1_c24_xe_re",
        "ir_k5_s2_e6_c32_re,ir_k5_s1_e3_c32_re,ir_k3_s1_e6_c32_re,ir_k5_s1_e6_c32_re",
        "ir_k5_s2_e6_c64_re,ir_k5_s1_e1_c64_xe_re,skip_c64,ir_k5_s1_e3_c64_re"
        ",ir_k5_s1_e6_c112_re,ir_k3_s1_e1_c112_xe_re,ir_k5_s1_e1_c112_xe_re,ir_k5_s1_e3_c112_re",
        "ir_k5_s2_e6_c184_re,ir_k5_s1_e1_c184_xe_re,ir_r2_k5_s1_e6_c184_re,ir_k3_s1_e6_c352_re",
    ], 1984, (74.21, 4.777296, 295.561032)),
    "fbnet_c": ([
        "ir_k3_s1_e1_c16_xe_re",
        "ir_k3_s2_e6_c24_re,skip_c24,ir_r2_k3_s1_e1_c24_xe_re",
        "ir_k5_s2_e6_c32_re,ir_k5_s1_e3_c32_re,ir_k5_s1_e6_c32_re,ir_k3_s1_e6_c32_re",
        "ir_k5_s2_e6_c64_re,ir_k5_s1_e3_c64_re,ir_r2_k5_s1_e6_c64_re"
        ",ir_r3_k5_s1_e6_c112_re,ir_k5_s1_e3_c112_re",
        "ir_r4_k5_s2_e6_c184_re,ir_k3_s1_e6_c352_re",
    ], 1984, (75.27, 5.520784, 382.98448)),
}
_FBNET_INFO = ("facebookresearch/mobile-vision mobile_cv/model_zoo/models/model_info/fbnet/"
               "model_info.json (released v1 checkpoint: top1, params_m = conv weights, flops_m)")
for name, (stages, head, (top1, params, macs)) in _FBNET.items():
    register_family(Family(name, _fbnet(stages, head), reference="Wu et al. 2019 FBNet Fig. 4; "
                           "facebookresearch/mobile-vision fbnet_v2/fbnet_modeldef_cls_fbnet.py"))
    register(ZooEntry(name, name, Published(top1, params, macs, f"{_FBNET_INFO}: {name}")))

# --- ProxylessNAS (Cai et al. 2019; mit-han-lab/proxylessnas net configs) ------------------
# MBConv e1 has no expand conv; relu6; a searched "zero" op on a shortcut is an identity
# (skip here). Block lists as ported from proxyless_*.config in osmr/imgclsmob proxylessnas.py.
def _proxyless(stem: int, first: int, stages: list[str], head: int) -> str:
    return (f"res224 | conv_k3_s2_c{stem}_re6 | ir_k3_s1_e1_c{first}_re6 | "
            + " | ".join(stages) + f" | head:conv_k1_c{head}_re6,pool")


_PROXYLESS = {
    "proxylessnas_mobile": (32, 16, [
        "ir_k5_s2_e3_c32_re6,ir_k3_s1_e3_c32_re6,skip_r2_c32",                         # 112 -> 56
        "ir_k7_s2_e3_c40_re6,ir_k3_s1_e3_c40_re6,ir_r2_k5_s1_e3_c40_re6",              # 56 -> 28
        "ir_k7_s2_e6_c80_re6,ir_r3_k5_s1_e3_c80_re6"                                   # 28 -> 14
        ",ir_k5_s1_e6_c96_re6,ir_r3_k5_s1_e3_c96_re6",
        "ir_k7_s2_e6_c192_re6,ir_k7_s1_e6_c192_re6,ir_r2_k7_s1_e3_c192_re6"            # 14 -> 7
        ",ir_k7_s1_e6_c320_re6",
    ], 1280, (74.6, 4.08, 320.4, "README table (74.6 top-1, 78 ms Pixel 1) and "
                                 "logs/imagenet_mobile_log.txt (4.08M params, 320.4M FLOPs)")),
    "proxylessnas_cpu": (40, 24, [
        "ir_k3_s2_e6_c32_re6,ir_r3_k3_s1_e3_c32_re6",
        "ir_k3_s2_e6_c48_re6,ir_r2_k3_s1_e3_c48_re6,ir_k5_s1_e3_c48_re6",
        "ir_k3_s2_e6_c88_re6,skip_r2_c88,ir_k3_s1_e3_c88_re6"
        ",ir_k5_s1_e6_c104_re6,ir_r3_k3_s1_e3_c104_re6",
        "ir_k5_s2_e6_c216_re6,ir_r2_k5_s1_e3_c216_re6,ir_k3_s1_e3_c216_re6"
        ",ir_k5_s1_e6_c360_re6",
    ], 1432, (75.29, 4.36, 439.2, "logs/imagenet_cpu_log.txt (top-1 75.290, 4.36M, 439.2M FLOPs)")),
    "proxylessnas_gpu": (40, 24, [
        "ir_k5_s2_e3_c32_re6,skip_r3_c32",
        "ir_k7_s2_e3_c56_re6,skip_r2_c56,ir_k3_s1_e3_c56_re6",
        "ir_k7_s2_e6_c112_re6,skip_r2_c112,ir_k5_s1_e3_c112_re6"
        ",ir_k5_s1_e6_c128_re6,skip_c128,ir_k3_s1_e3_c128_re6,ir_k5_s1_e3_c128_re6",
        "ir_r3_k7_s2_e6_c256_re6,ir_k5_s1_e6_c256_re6,ir_k7_s1_e6_c432_re6",
    ], 1728, (75.1, 7.12, 465.3, "README table (75.1 top-1) and logs/imagenet_gpu_log.txt "
                                 "(7.12M params, 465.3M FLOPs)")),
}
for name, (stem, first, stages, head, (top1, params, macs, where)) in _PROXYLESS.items():
    register_family(Family(name, _proxyless(stem, first, stages, head),
                           ChannelRule(head_conv="above_one"), dropout=0.1,
                           reference="mit-han-lab/proxylessnas proxyless_nas/layers.py MBInvertedConvLayer"))
    register(ZooEntry(name, name, Published(top1, params, macs, f"mit-han-lab/proxylessnas {where}")))

# --- Single-Path NAS (Stamoulis et al. 2019; final Pixel 1 model as in timm _gen_spnasnet) ---
register_family(Family(
    "single_path_nas",
    "res224 | conv_k3_s2_c32_re | ir_k3_s1_e1_c16_re_noskip"                  # 112
    " | ir_r3_k3_s2_e3_c24_re,skip_c24"                                         # 112 -> 56
    " | ir_k5_s2_e6_c40_re,ir_r3_k3_s1_e3_c40_re"                               # 56 -> 28
    " | ir_k5_s2_e6_c80_re,ir_r3_k3_s1_e3_c80_re,ir_k5_s1_e6_c96_re,ir_r3_k5_s1_e3_c96_re"  # 14
    " | ir_r4_k5_s2_e6_c192_re,ir_k3_s1_e6_c320_re_noskip"                      # 14 -> 7
    " | head:conv_k1_c1280_re,pool",
    ChannelRule(head_conv="never"),
    reference="enyac-group/single-path-nas (MnasNet-style blocks); timm efficientnet.py "
              "_gen_spnasnet arch_def",
))
register(ZooEntry("single_path_nas", "single_path_nas",
                  Published(74.96, None, None, "Stamoulis et al. 2019, Single-Path NAS, "
                            "arXiv:1904.02877 abstract (74.96% top-1, 79 ms Pixel 1)",
                            note="the paper publishes no parameter or MAC count")))

# --- EdgeNeXt (Maaz et al. 2022; mmaaz60/EdgeNeXt models/model.py @7ed8130, edgenext.py @e7dd814) --
# Per stage i: kernel_sizes [3, 5, 7, 9], d2_scales [2, 2, 3, 4], global_block [0, 1, 1, 1] (the last
# block of stages 2-4 is SDTA), use_pos_embd_xca [False, True, False, False], expan_ratio 4; stem
# conv 4x4 s4 + LN, downsampling LN + conv 2x2 s2, head global pool + LN + linear; LN eps 1e-6.
_EDGENEXT_REPO = "mmaaz60/EdgeNeXt"


def _edgenext(depths: list[int], dims: list[int], heads: int) -> str:
    kernels, splits, positional = (3, 5, 7, 9), (2, 2, 3, 4), (False, True, False, False)
    stages = []
    for i, (depth, c) in enumerate(zip(depths, dims)):
        blocks = [] if i == 0 else ["ln", f"patch_s2_c{c}"]                   # 1/4, 1/8, 1/16, 1/32
        conv = depth - (i > 0)
        blocks.append(f"convenc{f'_r{conv}' if conv > 1 else ''}_k{kernels[i]}_e4_c{c}")
        if i > 0:
            blocks.append(f"sdta_e4_c{c}_h{heads}_sc{splits[i]}{'_pe' if positional[i] else ''}")
        stages.append(",".join(blocks))
    return f"res256 | patch_s4_c{dims[0]},ln | " + " | ".join(stages) + " | head:pool,ln"


_EDGENEXT = {  # depths, dims, heads (edgenext_small keeps EdgeNeXt's default heads=8); README table
    "edgenext_xxs": ([2, 2, 6, 2], [24, 48, 88, 168], 4, 71.23, 1.33, 261, 51.66),
    "edgenext_xs": ([3, 3, 9, 3], [32, 64, 100, 192], 4, 74.96, 2.34, 538, 31.61),
    "edgenext_s": ([3, 3, 9, 3], [48, 96, 160, 304], 8, 79.41, 5.59, 1260, 20.47),
}
for name, (depths, dims, heads, top1, params, macs, jetson_fps) in _EDGENEXT.items():
    register_family(Family(name, _edgenext(depths, dims, heads), dropout=0.0,
                           reference=f"{_EDGENEXT_REPO} models/model.py @7ed8130 ({name}); conv_encoder.py, "
                                     "sdta_encoder.py, edgenext.py @e7dd814"))
    register(ZooEntry(name, name, Published(
        top1, params, macs, f"{_EDGENEXT_REPO} README.md @3884504 'Model Zoo' table (Acc@1, #Params, "
        "MAdds at 256 px)", device_ms=((f"NVIDIA Jetson Nano, PyTorch, batch 1 ({jetson_fps} FPS in "
                                        "models/model.py @7ed8130 comments; ms = 1000 / FPS)",
                                        round(1000 / jetson_fps, 2)),)), resolution=256))

# --- EfficientFormerV2 (Li et al. 2023; snap-research/EfficientFormer models/efficientformer_v2.py
# @bdde63a) ------------------------------------------------------------------------------------
# Stem 2 x (conv 3x3 s2 + BN + GELU) to width/2 and width; stages of FFNs (expansion per block from
# expansion_ratios_*); the last vit_num blocks of stages 3 and 4 are AttnFFN = attn + ffn (stage 3's
# attention on a stride-2 map: key dim 32, 8 heads, values 4 x 32); embeddings conv 3x3 s2 + BN,
# and before stage 4 the attention downsampling (key dim 32 // (14 // 7) = 16, 8 heads at 224 px).
# Folded, as they are at inference: conv biases before BN, the final BN (per-channel affine before
# the average pool) and the distillation head (eval averages head and dist_head: one linear map).
def _efficientformer_v2(widths: list[int], ratios: list[list[int]], vit_num: int) -> str:
    stages = []
    for i, (c, stage) in enumerate(zip(widths, ratios)):
        blocks = {1: [f"conv_k3_s2_c{c}_lin"], 2: [f"conv_k3_s2_c{c}_lin"],     # 1/8, 1/16
                  3: [f"attn_s2_e4_c{c}_h8_kd16"]}.get(i, [])                      # 1/32
        for j, e in enumerate(stage):
            if i >= 2 and j > len(stage) - 1 - vit_num:
                blocks.append(f"attn_e4_c{c}_h8_kd32{'_sr2' if i == 2 else ''}")
            blocks.append(f"ffn_k3_e{e}_c{c}")
        stages.append(",".join(blocks))
    return (f"res224 | conv_k3_s2_c{widths[0] // 2}_ge,conv_k3_s2_c{widths[0]}_ge | "
            + " | ".join(stages) + " | head:pool")


_EFORMER_V2 = {  # widths, expansion_ratios per stage, vit_num; README (top-1 300 epochs, params, MACs,
    # iPhone 12 latency); our count vs the rounded table: see the note
    "efficientformerv2_s0": ([32, 48, 96, 176], [[4, 4], [4, 4], [4, 3, 3, 3, 4, 4], [4, 3, 3, 4]], 2,
                             75.7, 3.5, 400, 0.9),
    "efficientformerv2_s1": ([32, 48, 120, 224], [[4] * 3, [4] * 3, [4, 4, 3, 3, 3, 3, 4, 4, 4],
                                                  [4, 4, 3, 3, 4, 4]], 2, 79.0, 6.1, 650, 1.1),
    "efficientformerv2_s2": ([32, 64, 144, 288], [[4] * 4, [4] * 4, [4, 4, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4],
                                                  [4, 4, 3, 3, 3, 3, 4, 4]], 4, 81.6, 12.6, 1250, 1.6),
    "efficientformerv2_l": ([40, 80, 192, 384], [[4] * 5, [4] * 5, [4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4],
                                                 [4, 4, 4, 3, 3, 3, 3, 4, 4, 4]], 6, 83.3, 26.1, 2560, 2.7),
}
_EFORMER_SOURCE = ("snap-research/EfficientFormer README.md 'Classification on ImageNet-1K' V2 table "
                   "(Top-1 at 300 epochs, #params, MACs; latency on iPhone 12, iOS 16, Core ML, XCode 14 "
                   "benchmark); Li et al. 2023, arXiv:2212.08059 Table 2")
# The reference module has 3.42 M (S0) / 5.96 M (S1) parameters without its distillation head and
# 3.60 M / 6.19 M with it; the table's rounded 3.5 M / 6.1 M is within 2 % of neither, so for S0 and
# S1 the parameter figure stays in the note and only MACs are checked.
_EFORMER_PARAMS_NOTE = ("table says {p} M; reference module: {no_dist} M without / {dist} M with the "
                        "distillation head; ours folds conv biases, final BN and the averaged heads")
for name, (widths, ratios, vit_num, top1, params, macs, iphone12_ms) in _EFORMER_V2.items():
    register_family(Family(name, _efficientformer_v2(widths, ratios, vit_num), dropout=0.0,
                           reference="snap-research/EfficientFormer models/efficientformer_v2.py @bdde63a"))
    gap = {"efficientformerv2_s0": (3.42, 3.60), "efficientformerv2_s1": (5.96, 6.19)}.get(name)
    note = _EFORMER_PARAMS_NOTE.format(p=params, no_dist=gap[0], dist=gap[1]) if gap else ""
    register(ZooEntry(name, name, Published(
        top1, None if gap else params, macs, _EFORMER_SOURCE, note,
        device_ms=(("iPhone 12, Core ML (iOS 16, XCode 14 benchmark)", iphone12_ms),))))

# --- G-GhostNet (Han et al. 2022, GhostNets on Heterogeneous Devices via Cheap Operations, IJCV) ---
# huawei-noah/Efficient-AI-Backbones g_ghost_pytorch/g_ghost_regnet.py @71a0ef7: RegNetX depths,
# widths and group width per model; stem conv 3x3 s2 to 32 + BN + ReLU; stage 1 plain X blocks; stages
# 2 and 4 G-Ghost stages when deeper than 2 blocks, stage 3 always; every stage starts at stride 2.
_GGHOST_REPO = "huawei-noah/Efficient-AI-Backbones"


def _g_ghost_regnetx(depths: list[int], widths: list[int], group_width: int) -> str:
    stages = []
    for i, (depth, c) in enumerate(zip(depths, widths)):
        kind = "gghost" if i == 2 or (i in (1, 3) and depth > 2) else "xblock"
        stages.append(f"{kind}{f'_r{depth}' if depth > 1 else ''}_s2_c{c}_gw{group_width}")
    return "res224 | conv_k3_s2_c32_re | " + " | ".join(stages) + " | head:pool"


# Named after RegNetX's GFLOPs ("3_2gf" = RegNetX-3.2GF, the reference's g_ghost_regnetx_032), not a
# width. Reference constructor; depths, widths, group width; readme.md 'Pretrained models' table:
# top-1, params (M), FLOPs (= multiply-adds, M).
_GGHOST = {
    "3_2gf": ("032", [2, 6, 15, 2], [96, 192, 432, 1008], 48, 77.8, 10.5, 1800),
    "4_0gf": ("040", [2, 5, 14, 2], [80, 240, 560, 1360], 40, 78.6, 15.7, 2200),
    "8_0gf": ("080", [2, 5, 15, 1], [80, 240, 720, 1920], 120, 79.0, 24.6, 4200),
    "16_0gf": ("160", [2, 6, 13, 1], [256, 512, 896, 2048], 128, 79.9, 32.4, 9000),
}
for gflops, (constructor, depths, widths, group_width, top1, params, macs) in _GGHOST.items():
    name = f"g_ghost_regnetx_{gflops}"
    register_family(Family(name, _g_ghost_regnetx(depths, widths, group_width), reference=(
        f"{_GGHOST_REPO} g_ghost_pytorch/g_ghost_regnet.py @71a0ef7 (g_ghost_regnetx_{constructor})")))
    register(ZooEntry(name, name, Published(
        top1, params, macs, f"{_GGHOST_REPO} g_ghost_pytorch/readme.md @71a0ef7 'Pretrained models' "
        "table (Params, FLOPs = multiply-adds, top-1)")))

# --- NASNet-A Mobile (Zoph et al. 2018, Learning Transferable Architectures, arXiv:1707.07012) ---
# tensorflow/models research/slim/nets/nasnet/nasnet.py @03cdc5f mobile_imagenet_config: 12 normal
# cells in 3 stacks of N = 4, reduction cells before stacks 2 and 3 (calc_reduction_layers), 44
# filters (= penultimate filters 1056 / 24: the last cells' 6 x 4 x 44 outputs), filter scaling 2 per
# reduction, stem conv 3x3 s2 to 32 + BN (no ReLU) then two stem reduction cells at 1/4 and 1/2 of
# the filters (_imagenet_stem); ReLU before the global pool. The stem conv pads "VALID" there (111 px
# at 224): "same" here gives 112 px, the same 56 px after the first cell and 0.03 % more MACs.
def _nasnet_a(cells: int, penultimate: int) -> str:
    """NASNet-A "N @ P": N normal cells per stack, P filters in the penultimate layer."""
    f = penultimate // 24
    return (f"res224_div1 | conv_k3_s2_c32_lin,nasreduce_s2_c{f // 4},nasreduce_s2_c{f // 2}"
            f" | nasnormal_r{cells}_c{f} | nasreduce_s2_c{2 * f},nasnormal_r{cells}_c{2 * f}"
            f" | nasreduce_s2_c{4 * f},nasnormal_r{cells}_c{4 * f} | head:act_re,pool")


_TFLITE_BENCH = ("tensorflow/tensorflow tensorflow/contrib/lite/g3doc/benchmarks.md @6a3e7579 "
                 "(shared/data/published_latency.csv)")
register_family(Family("nasnet_a_mobile", _nasnet_a(4, 1056), dropout=0.5,
                       reference="tensorflow/models research/slim/nets/nasnet/nasnet.py @03cdc5f, "
                                 "nasnet_utils.py @08eebbc"))
register(ZooEntry("nasnet_a_mobile", "nasnet_a_mobile", Published(
    74.0, 5.3, 564, "Zoph et al. 2018, arXiv:1707.07012 Table 2 (NASNet-A (4 @ 1056))",
    device_ms=((f"Pixel XL (Pixel 1's SoC), TFLite float, 1 thread, {_TFLITE_BENCH}", 210.8),
               (f"Pixel 2, TFLite float, 1 thread, {_TFLITE_BENCH}", 273.8),
               (f"iPhone 8, TFLite float, 1 thread, {_TFLITE_BENCH}", 60.3)))))

# --- UniNet (Liu et al., ECCV 2022, arXiv:2207.05420; Sense-X/UniNet uninet.py @e7fbb3d) ---------
# VisionTransformer(): stem conv 3x3 s2 to 32 + BN + GELU; six stages at strides [1, 2, 2, 2, 1, 2]:
# stages 1-4 of DWConvBlocks (3x3, SE, GELU), stages 5-6 of AttentionBlocks (head dim 32, so heads =
# c / 32); a LocalDSM before stages 2-4 and a LocalGlobalDSM before stages 5-6 (stage 5's at stride
# 1); head conv 1x1 to 1280 + BN + GELU, global pool, linear. Per model: repeats, expansion, channels,
# input size (UniNetB0 ... UniNetB4). UniNetB1 is UniNetB0's network at 224 px. B5 and B6 are defined
# too, but the repository gives no FLOPs for them (their comments say "*"), so they are not entries.
# Numeric conventions are this package's, not PyTorch's (no weights are imported): BN eps 1e-3, LN eps
# 1e-6 (the reference: 1e-5 both), TF "same" padding, which at stride 2 on an even map pads max pooling
# and the dw convs bottom/right only (the reference: one pixel each side). Shapes, parameters and MACs
# are the same either way.
_UNINET_CODE = "Sense-X/UniNet uninet.py @e7fbb3d"


def _uninet(repeats: list[int], expansion: list[int], channels: list[int], resolution: int) -> str:
    stages = []
    for i, (r, e, c) in enumerate(zip(repeats, expansion, channels)):
        times = f"_r{r}" if r > 1 else ""
        if i < 4:  # 1/2 (stage 1), then 1/4, 1/8, 1/16
            blocks = ([f"ldsm_s2_c{c}"] if i else []) + [f"uconv{times}_k3_e{e}_c{c}_hse0.25_ge"]
        else:      # 1/16 (stride 1), 1/32
            blocks = [f"lgdsm{'_s2' if i == 5 else ''}_c{c}_h{c // 32}", f"mhsa{times}_e{e}_c{c}_h{c // 32}"]
        stages.append(",".join(blocks))
    return (f"res{resolution} | conv_k3_s2_c32_ge | " + " | ".join(stages)
            + " | head:conv_k1_c1280_ge,pool")


# Figures: the uninet.py comment of each constructor ("# 11.451M, 0.555G, 160": parameters, fvcore
# FlopCountAnalysis as in cal_flops.py @e7fbb3d, input px). fvcore counts one multiply-add as one
# flop but also batch norm (2), layer norm (5) and pooling (1) per element, which our MACs leave out:
# ours are 1.4-2.1 % lower, and within 0.1 % of the comments with those added; our parameters plus the
# conv biases we fold into batch norms (B0: 1,360) round to the comments' figures (tests/arch/test_uninet.py).
_UNINET_FVCORE = ("{code} Uni{cls} comment (params, fvcore FLOPs = MACs + norm and pooling elements, "
                  "{res} px); no top-1 for it in the repository (README @81ef332 lists B1 only)")
_UNINET = {  # repeats, expansion, channels, input px, params (M), fvcore MACs (M)
    "uninet_b0": ([1, 2, 4, 4, 4, 8], [1, 4, 6, 3, 2, 5], [24, 48, 80, 128, 128, 256], 160, 11.451, 555),
    "uninet_b2": ([2, 3, 6, 6, 6, 12], [1, 4, 6, 3, 2, 5], [24, 48, 80, 128, 128, 256], 256, 16.211, 2159),
    "uninet_b3": ([2, 3, 7, 7, 7, 14], [1, 4, 6, 3, 2, 5], [24, 56, 96, 160, 160, 288], 288, 24.02, 4258),
    "uninet_b4": ([2, 4, 9, 9, 9, 18], [1, 4, 6, 3, 2, 5], [32, 64, 112, 192, 192, 352], 320, 43.796, 9429),
}
for name, (repeats, expansion, channels, px, params, macs) in _UNINET.items():
    cls = "Net" + name.split("_")[1].upper()
    register_family(Family(name, _uninet(repeats, expansion, channels, px), dropout=0.0,
                           reference=f"{_UNINET_CODE} (Uni{cls}); model_utils.py @e7fbb3d (SqueezeExcitation)"))
    register(ZooEntry(name, name, Published(None, params, macs, _UNINET_FVCORE.format(
        code=_UNINET_CODE, cls=cls, res=px)), resolution=px))
register(ZooEntry("uninet_b1", "uninet_b0", Published(
    81.0, 11.5, 1100, "Sense-X/UniNet README.md @81ef332 'Availble models' table (UniNet-B1: Params 11.5 M, "
    "FLOPs 1.1 G, Top-1 81.0, 300 epochs; exp/b1/run.sh: 224 px); UniNetB1 in uninet.py @e7fbb3d is "
    "UniNetB0's network at 224 px"), resolution=224))
