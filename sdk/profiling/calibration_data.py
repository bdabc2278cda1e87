"""Read the published phone measurements (``shared/data``) into calibration samples.

A sample is a list of layers (from the layer walk) and a measured latency: a block from a
per-block lookup table, or a whole published model. Which published rows calibrate which
profile, and which zoo architecture each row is, is written out here so it can be reviewed.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from edgetailor.arch import zoo
from edgetailor.arch.layers import LayerCost, block_cost, classifier_cost, walk
from edgetailor.arch.spec import Block


@dataclass(frozen=True)
class Sample:
    """One measurement: ``kind`` "block" (a table entry) or "model" (a whole network)."""

    name: str
    kind: str
    layers: tuple[LayerCost, ...]
    latency_ms: float
    source: str
    group: str  # for leave-one-group-out checks (a LUT file, a model family, ...)
    table_key: str | None = None  # set when the sample is one layer that can go in a table


_PROXYLESS_KEY = re.compile(
    r"^expanded_conv-input:(\d+)x(\d+)x(\d+)-output:(\d+)x(\d+)x(\d+)-expand:(\d+)"
    r"-kernel:(\d+)-stride:(\d+)-idskip:(\d)(?:-se:(\d)-hs:(\d))?$")
_SHAPES_KEY = re.compile(r"^(\w+)-input:(\d+)x(\d+)x(\d+)-output:(?:(\d+)x(\d+)x)?(\d+)$")


def _one(block: Block, shape, name: str, latency: float, source: str, group: str) -> Sample:
    from edgetailor.latency.cost import layer_key

    layer = block_cost(block, shape, 8, name)
    return Sample(name, "block", (layer,), latency, source, group, layer_key(layer))


def lut_samples(path: Path, act: str, ofa: bool = False) -> list[Sample]:
    """Samples from a ProxylessNAS/OFA lookup-table YAML (keys as in once-for-all)."""
    data = yaml.safe_load(path.read_text())
    source = f"shared/data/luts/{path.name}"
    group = path.stem
    out = []
    for key, entry in data.items():
        latency = float(entry["mean"])
        match = _PROXYLESS_KEY.match(key)
        if match:
            h, w, cin, _, _, cout, expand, kernel, stride, idskip, se, hs = match.groups()
            cin, cout, expand = int(cin), int(cout), int(expand)
            ratio = expand / cin if ofa else expand  # OFA keys give the expanded width itself
            block = Block("ir", kernel=int(kernel), stride=int(stride), expand=ratio, channels=cout,
                          se=0.25 if se == "1" else 0.0, hard_se=se == "1",
                          act="hswish" if hs == "1" else act, residual=idskip == "1")
            out.append(_one(block, (int(h), int(w), cin), key, latency, source, group))
            continue
        match = _SHAPES_KEY.match(key)
        if not match:
            raise ValueError(f"{path.name}: unrecognised lookup-table key {key!r}")
        op, h, w, cin, oh, _, cout = match.groups()
        shape = (int(h), int(w), int(cin))
        head_act = "hswish" if ofa else act
        if op == "Conv":
            block = Block("conv", kernel=3, stride=int(h) // int(oh), channels=int(cout), act=head_act)
            out.append(_one(block, shape, key, latency, source, group))
        elif op == "Conv_1":
            out.append(_one(Block("conv", kernel=1, channels=int(cout), act=head_act), shape, key,
                            latency, source, group))
        elif op == "Conv_2":
            out.append(_one(Block("fc", channels=int(cout), act=head_act), shape, key, latency,
                            source, group))
        elif op == "AvgPool2D":
            out.append(_one(Block("pool"), shape, key, latency, source, group))
        elif op == "Logits" and shape[:2] == (1, 1):
            layer = classifier_cost(shape, int(cout))
            out.append(Sample(key, "block", (layer,), latency, source, group))
        elif op == "Logits":  # pooling and classifier together
            pool = block_cost(Block("pool"), shape, 8, "pool")
            layers = (pool, classifier_cost(pool.out_shape, int(cout)))
            out.append(Sample(key, "block", layers, latency, source, group))
        else:
            raise ValueError(f"{path.name}: unrecognised lookup-table op {op!r} in {key!r}")
    return out


# Single-Path NAS supernet (enyac-group/single-path-nas nas-search): 22 MBConv layers.
_SINGLE_PATH_STAGES = [(16, 1, 1), (24, 4, 2), (40, 4, 2), (80, 4, 2), (96, 4, 1), (192, 4, 2), (320, 1, 1)]
_SINGLE_PATH_CHOICES = [(3, 3), (3, 6), (5, 3), (5, 6)]  # choice index -> (kernel, expand)


def single_path_samples(path: Path) -> list[Sample]:
    """Pixel 1 per-layer latencies of the Single-Path NAS supernet (relu MBConv, 224 px)."""
    data = json.loads(path.read_text())
    source = f"shared/data/luts/{path.name}"
    out, index, shape = [], 0, (112, 112, 32)
    for channels, repeats, stride in _SINGLE_PATH_STAGES:
        for r in range(repeats):
            choices = data[str(index)]
            s = stride if r == 0 else 1
            if index == 0:
                # The first layer is fixed (e1 k3, MnasNet's first block): its four entries
                # agree within 3%, so their mean is the one measurement.
                latency = sum(choices.values()) / len(choices)
                block = Block("ir", kernel=3, expand=1, channels=channels, residual=False)
                out.append(_one(block, shape, "layer0", latency, source, path.stem))
            else:
                for choice, (kernel, expand) in enumerate(_SINGLE_PATH_CHOICES):
                    block = Block("ir", kernel=kernel, stride=s, expand=expand, channels=channels)
                    out.append(_one(block, shape, f"layer{index}-choice{choice}",
                                    float(choices[str(choice)]), source, path.stem))
            shape = block_cost(Block("ir", kernel=3, stride=s, expand=3, channels=channels),
                               shape).out_shape
            index += 1
    return out


@dataclass(frozen=True)
class Row:
    """A published whole-model latency mapped onto a zoo architecture."""

    arch: str        # zoo entry or family
    width: float | None
    resolution: int | None
    latency_ms: float
    label: str
    source: str


def published_rows(csv_path: Path) -> list[dict]:
    with csv_path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def select(rows: list[dict], rules: list[tuple]) -> list[Row]:
    """Rows matching ``(model, variant prefix or None, device prefix, setting substring, arch)``."""
    out = []
    for row in rows:
        for model, variant, device, setting, arch in rules:
            if (row["model"] == model and (variant is None or row["variant"] == variant)
                    and row["device"].startswith(device) and setting in row["setting"]):
                width = float(row["width"]) if row["width"] else None
                resolution = int(row["resolution"]) if row["resolution"] else None
                out.append(Row(arch, width, resolution, float(row["latency_ms"]),
                               f"{row['model']} {row['variant']} ({row['device'][:24]})",
                               row["source"]))
    return out


def model_sample(row: Row, group: str) -> Sample:
    resolved = zoo.resolve(row.arch, width=row.width, resolution=row.resolution)
    layers = tuple(walk(resolved.spec, 1000))
    return Sample(row.label, "model", layers, row.latency_ms, row.source, group)
