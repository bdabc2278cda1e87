"""Every usable row of ``shared/data`` as one labelled sample for the joint calibration.

A row is labelled with the phone it ran on (``DEVICES``), its runtime setting (``setting_of``:
runtime, precision, threads), the publication it came from (its source) and the zoo family it is
(for leave-one-family-out checks). Rows that cannot join are skipped with a reason
(``SKIPPED``): GPU / NNAPI / EdgeTPU / ncnn timings (another processor or runtime than the op
model describes), architectures the zoo does not have (Inception, ResNet, NASNet, SqueezeNet,
ChamNet, FBNet-B1/C1, Once-for-All's specialised nets), and paper abstracts that repeat a table.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edgetailor.arch import zoo
from edgetailor.profiling import calibration_data as data

# Device key -> which published device names it covers (same system-on-chip).
DEVICES = {
    "pixel1": ("Pixel 1", "Pixel XL"),            # Snapdragon 821
    "pixel2": ("Pixel 2",),                       # Snapdragon 835 (not "Pixel 2 XL": ncnn rows)
    "pixel3": ("Pixel 3",),                       # Snapdragon 845
    "pixel4": ("Pixel 4",),                       # Snapdragon 855
    "galaxy_s8": ("Samsung Galaxy S8",),
    "a11": ("iPhone 8", "iPhone X"),              # Apple A11: iPhone 8 and X share the chip
}
SKIPPED = {
    "processor": "GPU, NNAPI or EdgeTPU timings: another processor than the CPU op model prices",
    "runtime": "ncnn timings (Pixel 2 XL): no profile uses that runtime",
    "arch": "architecture not in the zoo, so the layer walk cannot price it",
    "duplicate": "paper abstract or text repeating a table row (or unverified copy)",
    "ofa": "Once-for-All specialised nets: the latency is a label in the net id, the net not in the zoo",
}

# Zoo family of published MobileNetV3 variants (tensorflow/models slim mobilenet README).
_V3 = {"Large dm": "mobilenet_v3_large", "Small dm": "mobilenet_v3_small",
       "Large minimalistic": "mobilenet_v3_large_minimal", "Small minimalistic": "mobilenet_v3_small_minimal"}


@dataclass(frozen=True)
class Labelled:
    """One calibration sample with the labels the joint fit and its folds need."""

    sample: data.Sample
    device: str
    setting: str
    source: str
    family: str


def publication(source: str) -> str:
    """The publication a row's timing comes from: its source text without the note on where its
    MACs and parameters came from (one table cited with two such notes is one harness)."""
    return source.split("; MACs/params from")[0]


def device_of(name: str) -> str | None:
    if name.startswith("Pixel 2 XL"):
        return None
    for key, prefixes in DEVICES.items():
        if name.startswith(prefixes):
            return key
    return None


def setting_of(setting: str) -> str | None:
    """``runtime-precision-threads`` of a row's setting text, or None for non-CPU settings."""
    if "Core ML" in setting:  # Apple's figures do not say which compute unit ran
        return "coreml"
    if re.search(r"GPU|NNAPI|EdgeTPU|Vulkan", setting):
        return None
    if "NNPACK fp32" in setting:
        return "caffe2-fp32"
    if "QNNPACK int8" in setting:
        return "caffe2-int8"
    precision = "int8" if re.search(r"uint8|INT8", setting) else "fp32"
    threads = "4t" if "4 threads" in setting else "1t"
    return f"tflite-{precision}-{threads}"


def arch_of(row: dict) -> tuple[str, float | None, int | None] | None:
    """(zoo name or family, width, resolution) of a published row, or None if not in the zoo."""
    model, variant = row["model"], row["variant"]
    width = float(row["width"]) if row["width"] else None
    resolution = int(row["resolution"]) if row["resolution"] else None
    if model == "MnasNet-A1" and variant.startswith("mnasnet-a1"):
        return "mnasnet_a1", width, resolution
    if model == "MnasNet (TFLite hosted, 09_07_2018)":
        return "mnasnet_b1", width, resolution  # taken as MnasNet-B1 (74.08% at 1.0/224)
    if model in ("MobileNetV1", "MobileNetV2"):
        return ("mobilenet_v1" if model == "MobileNetV1" else "mobilenet_v2"), width or 1.0, resolution or 224
    if model == "MobileNetV3":
        family = next((f for k, f in _V3.items() if variant.startswith(k)), None)
        return None if family is None else (family, width, resolution)
    if model == "ProxylessNAS" and variant.startswith("ProxylessNAS (mobile"):
        return "proxylessnas_mobile", 1.4 if "mobile_14" in variant else 1.0, 224
    if model == "EfficientNet-Lite":
        return variant.replace("-", "_"), None, None  # zoo entry efficientnet_lite0..4
    if model == "FBNet" and variant in ("FBNet-A", "FBNet-C"):
        return variant.lower().replace("-", "_"), None, None
    return None


def skip_reason(row: dict) -> str | None:
    if "ncnn" in row["setting"]:
        return "runtime"
    if row["variant"].startswith(("pixel", "note8")) or "net id" in row["setting"]:
        return "ofa"
    if row["setting"].startswith("paper") or "READ ONLY" in row["setting"]:
        return "duplicate"
    if setting_of(row["setting"]) is None:
        return "processor"
    if device_of(row["device"]) is None or arch_of(row) is None:
        return "arch"
    return None


def published(csv_path: Path) -> tuple[list[Labelled], dict[str, int]]:
    """Labelled model samples of every usable row, and how many rows were skipped per reason."""
    out, skipped = [], {}
    for row in data.published_rows(csv_path):
        reason = skip_reason(row)
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        arch, width, resolution = arch_of(row)
        label = f"{row['model']} {row['variant']} ({row['device'][:24]}; {row['setting'][:28]})"
        sample = data.model_sample(data.Row(arch, width, resolution, float(row["latency_ms"]), label,
                                            row["source"]), arch)
        family = zoo.resolve(arch).family.name
        out.append(Labelled(sample, device_of(row["device"]), setting_of(row["setting"]),
                            publication(row["source"]), family))
    return out, skipped


def lookup_tables(root: Path) -> list[Labelled]:
    """Pixel 1's per-block tables, each its own source (measured in its own setting)."""
    luts = root / "luts"
    blocks = (data.lut_samples(luts / "pixel1_proxylessnas_blocks.yaml", "relu6")
              + data.single_path_samples(luts / "pixel1_singlepath_blocks.json"))
    return [Labelled(s, "pixel1", "tflite-fp32-1t", s.source, f"table:{s.group}") for s in blocks]
