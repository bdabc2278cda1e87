"""Once-for-All's published MobileNetV3 supernets as our checkpoints: ImageNet weights for every sub-network.

``import_ofa(FILE, OUT)`` reads an ``ofa_mbv3_d234_e346_k357_w1.0`` or ``..._w1.2`` state dict
(``supernet.torch_file``: no PyTorch, no code run), recognises the width by the first conv's
channels, copies every tensor onto our supernet of the matching space (``ofa_mbv3_w1.0``,
``ofa_mbv3``) and writes a checkpoint folder ``checkpoint.load`` and ``specialize --supernet`` read.

Our network reproduces Once-for-All's conventions, each from mit-han-lab/once-for-all @
f03b2673db313b9167e2a1c2b7a5cad540cc1313 (the code of PyPI's ``ofa`` 0.1.0.post202307202001):

- padding ``k // 2`` on each side (``ofa/utils/common_tools.py`` ``get_same_padding``): the space
  gets ``padding="symmetric"`` (TF "same" pads a stride-2 convolution of an even input one pixel
  less at the top and left); batch norm epsilon 1e-5 (``OFAMobileNetV3(bn_param=(0.1, 1e-5))``,
  applied by ``set_bn_param`` in ``ofa/utils/my_modules.py``);
- squeeze-excite on the expanded width ``mid``: ``make_divisible(mid // 4, 8)`` squeeze channels,
  ReLU, biases on both 1x1 convs, hard sigmoid ``relu6(x + 3) / 6`` (``SEModule`` in
  ``ofa/utils/pytorch_modules.py``, ``DynamicSE`` in ``elastic_nn/modules/dynamic_op.py``): our
  ``hse0.25`` blocks; hard swish ``x * relu6(x + 3) / 6`` (``Hswish``);
- an expanded width of ``make_divisible(round(in * e), 8)`` channels, the first ones of the largest
  (``DynamicMBConvLayer.active_middle_channel``, ``dynamic_layers.py``): ours rounds ``in * e``
  without ``round``, the same for every layer of these spaces (checked on import);
- smaller kernels from the centre of the 7x7 times ``7to5_matrix``, then ``5to3_matrix``
  (``DynamicSeparableConv2d.get_active_filter``, ``dynamic_op.py``);
- the first block a kernel-3, expand-1 MBConv with an identity shortcut; the head a 1x1 conv + BN +
  hard swish ("final expand"), global average pooling, a 1x1 conv with no BN and no bias + hard
  swish ("feature mix": our ``fc``, its bias set to zero), then the linear classifier
  (``ofa_mbv3.py``);
- input pixels normalised by ImageNet's mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225)
  (``ImagenetDataProvider.normalize``, ``data_providers/imagenet.py``): the network maps our [-1, 1]
  input to that first (``Supernet.input_affine``), so bundles keep their input.

Published files hold ``{"state_dict": ...}`` with keys of older releases (``mobile_inverted_conv``,
``bn.bn``/``conv.conv`` without the dynamic wrapper); ``OFAMobileNetV3.load_state_dict`` maps them
to today's and so does ``canonical`` here.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

from edgetailor._io import check_output_folder, write_atomically
from edgetailor.arch import spaces
from edgetailor.arch.scaling import make_divisible
from edgetailor.errors import SupernetError, WeightsError
from edgetailor.supernet import checkpoint, torch_file
from edgetailor.supernet.subnet import ElasticSpace

BN_EPS = 1e-5
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WIDTHS = {16: ("ofa_mbv3_w1.0", "ofa_mbv3_d234_e346_k357_w1.0"),   # first conv's channels -> space
          24: ("ofa_mbv3", "ofa_mbv3_d234_e346_k357_w1.2")}
_BN = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def space_for(width_space: str) -> spaces.Space:
    """The registered space with Once-for-All's numeric conventions (the fingerprint says so)."""
    return dataclasses.replace(spaces.get(width_space), padding="symmetric", bn_eps=BN_EPS)


def input_affine() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per channel (scale, offset) from x in [-1, 1] to ((x + 1) / 2 - mean) / std."""
    scale = tuple(0.5 / s for s in IMAGENET_STD)
    offset = tuple((0.5 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
    return scale, offset


def canonical(key: str) -> str:
    """Today's key for a key of any ``ofa`` release, without the dynamic layers' inner wrapper."""
    key = key.replace(".mobile_inverted_conv.", ".conv.")
    key = key.replace(".bn.bn.", ".bn.").replace(".conv.conv.weight", ".conv.weight")
    return key.replace(".linear.linear.", ".linear.")


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The float arrays of a Once-for-All checkpoint (``{"state_dict": ...}`` or a bare state dict),
    by canonical key; batch norm's ``num_batches_tracked`` counters are dropped."""
    loaded = torch_file.read(path)
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not loaded or not all(isinstance(v, np.ndarray) for v in loaded.values()):
        raise WeightsError(f"{path} holds no state dict (a mapping of names to tensors, or one under "
                           "'state_dict')")
    arrays = {}
    for key, value in loaded.items():
        if key.endswith("num_batches_tracked"):
            continue
        arrays[canonical(str(key)).removeprefix("module.")] = value  # "module.": saved from DataParallel
    return arrays


def _width_space(arrays: dict[str, np.ndarray], path) -> tuple[str, str]:
    first = arrays.get("first_conv.conv.weight")
    if first is None or "blocks.1.conv.depth_conv.conv.7to5_matrix" not in arrays:
        shown = ", ".join(sorted(arrays)[:3])
        raise WeightsError(f"{path} is not a Once-for-All MobileNetV3 supernet (no first_conv and elastic "
                           f"kernels; its keys start {shown}, ...)")
    if first.shape[0] not in WIDTHS:
        raise WeightsError(f"{path}: its first conv has {first.shape[0]} channels; Once-for-All MobileNetV3 "
                           "has 16 at width 1.0 and 24 at width 1.2, the two widths imported here")
    return WIDTHS[first.shape[0]]


def _targets(net) -> list[tuple[str, object, Callable[[np.ndarray], np.ndarray]]]:
    """(Once-for-All key, our variable, layout change) for every tensor of the supernet."""
    conv = lambda w: w.transpose(2, 3, 1, 0)        # noqa: E731  (O, I, kh, kw) -> (kh, kw, I, O)
    depthwise = lambda w: w.transpose(2, 3, 0, 1)   # noqa: E731  (C, 1, kh, kw) -> (kh, kw, C, 1)
    same = lambda w: w                              # noqa: E731
    out = []

    def norm(prefix, layer):
        out.extend((f"{prefix}.bn.{theirs}", getattr(layer.norm, ours), same) for theirs, ours in _BN.items())

    def block(prefix, ours):
        steps = ours.layers_by_step
        if "expand" in steps:
            out.append((f"{prefix}.inverted_bottleneck.conv.weight", steps["expand"].kernel, conv))
            norm(f"{prefix}.inverted_bottleneck", steps["expand"])
        dw = steps["dw"]
        out.append((f"{prefix}.depth_conv.conv.weight", dw.kernel, depthwise))
        for matrix, (small, large) in zip(dw.transforms, zip(dw.kernels, dw.kernels[1:])):
            out.append((f"{prefix}.depth_conv.conv.{large}to{small}_matrix", matrix, same))  # both x @ M^T
        norm(f"{prefix}.depth_conv", dw)
        if "se" in steps:
            se = steps["se"]
            out.extend([(f"{prefix}.depth_conv.se.fc.reduce.weight", se.reduce_kernel, conv),
                        (f"{prefix}.depth_conv.se.fc.reduce.bias", se.reduce_bias, same),
                        (f"{prefix}.depth_conv.se.fc.expand.weight", se.expand_kernel, conv),
                        (f"{prefix}.depth_conv.se.fc.expand.bias", se.expand_bias, same)])
        out.append((f"{prefix}.point_linear.conv.weight", steps["project"].kernel, conv))
        norm(f"{prefix}.point_linear", steps["project"])

    stem_conv = net.stem[0].layers_by_step["conv"]
    out.append(("first_conv.conv.weight", stem_conv.kernel, conv))
    norm("first_conv", stem_conv)
    block("blocks.0.conv", net.stem[1])
    index = 1
    for slots in net.stages:
        for ours in slots:
            block(f"blocks.{index}.conv", ours)
            index += 1
    final = net.head[0].layers_by_step["conv"]
    out.append(("final_expand_layer.conv.weight", final.kernel, conv))
    norm("final_expand_layer", final)
    out.append(("feature_mix_layer.conv.weight", net.head[2].layers_by_step["fc"].kernel, conv))
    out.append(("classifier.linear.weight", net.classifier_kernel, lambda w: w.T))
    out.append(("classifier.linear.bias", net.classifier_bias, same))
    return out


def _check_widths(elastic: ElasticSpace, net) -> None:
    """Our expanded widths are Once-for-All's ``make_divisible(round(in * e), 8)`` in every slot."""
    for stage, slots in zip(elastic.stages, net.stages):
        for j, block in enumerate(slots):
            cin = block.ins[0][0]
            theirs = tuple(make_divisible(round(cin * e), 8) for e in stage.expands)
            ours = block.outs[0]
            if ours != theirs:
                raise SupernetError(f"{block.name}: expanded widths {ours} differ from Once-for-All's {theirs}")


def to_supernet(arrays: dict[str, np.ndarray], path="the checkpoint"):
    """Our supernet holding the weights of ``arrays``; returns (net, space name, Once-for-All's name)."""
    from edgetailor.supernet.network import Supernet

    space_name, ofa_name = _width_space(arrays, path)
    classifier = arrays.get("classifier.linear.weight")
    if classifier is None or classifier.ndim != 2 or classifier.shape[0] < 2:
        raise WeightsError(f"{path}: no classifier (classifier.linear.weight) with at least two classes")
    elastic = ElasticSpace.of(space_for(space_name))
    net = Supernet(elastic, classifier.shape[0], input_affine=input_affine())
    _check_widths(elastic, net)
    targets = _targets(net)
    missing = [key for key, _, _ in targets if key not in arrays]
    if missing:
        raise WeightsError(f"{path} is not a complete {ofa_name} state dict: {len(missing)} tensors missing "
                           f"({', '.join(missing[:3])}, ...); another depth, kernel or expand list?")
    extra = sorted(set(arrays) - {key for key, _, _ in targets})
    if extra:
        raise WeightsError(f"{path} holds tensors {ofa_name} has not ({', '.join(extra[:3])}"
                           f"{', ...' if len(extra) > 3 else ''}); another network or depth?")
    for key, variable, layout in targets:
        value = layout(arrays[key]).astype(np.float32)
        if tuple(value.shape) != tuple(variable.shape):
            raise WeightsError(f"{path}: {key} has shape {arrays[key].shape}, {ofa_name} needs "
                               f"{_torch_shape(key, variable.shape)}; another width or expand list?")
        variable.assign(value)
    net.head[2].layers_by_step["fc"].bias.assign(np.zeros(net.head[2].layers_by_step["fc"].bias.shape, np.float32))
    return net, space_name, ofa_name


def _torch_shape(key: str, shape) -> tuple:
    shape = tuple(shape)
    if key.endswith("depth_conv.conv.weight"):
        return (shape[2], 1, shape[0], shape[1])
    if len(shape) == 4:
        return (shape[3], shape[2], shape[0], shape[1])
    return shape[::-1]


def default_classes(count: int) -> tuple[str, ...]:
    """``class_0000`` ...: Once-for-All's files carry no class names (ImageNet's in the order of
    its sorted synset folders)."""
    return tuple(f"class_{i:04d}" for i in range(count))


def read_labels(path: str | Path, count: int) -> tuple[str, ...]:
    """Class names, one per line, as many as the classifier has outputs."""
    try:
        names = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise WeightsError(f"cannot read labels {path}: {exc}") from None
    if len(names) != count or len(set(names)) != count:
        raise WeightsError(f"labels {path}: {len(names)} names ({len(set(names))} distinct) for a classifier "
                           f"of {count} classes; give one distinct name per line")
    return tuple(names)


def import_ofa(path: str | Path, out: str | Path, labels: str | Path | None = None,
               progress: Callable[[str], None] = lambda message: None) -> checkpoint.State:
    """Write the checkpoint folder ``out`` (new or empty) from Once-for-All's file ``path``."""
    path, out = Path(path), Path(out)
    check_output_folder(out)
    progress(f"reading {path}")
    arrays = read_state_dict(path)
    progress("copying the weights onto the supernet")
    net, space_name, ofa_name = to_supernet(arrays, path)
    classes = read_labels(labels, net.num_classes) if labels else default_classes(net.num_classes)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    elastic = net.elastic
    state = checkpoint.State(
        space_name, elastic.fingerprint(), classes, f"ImageNet (Once-for-All's {ofa_name}; no dataset here)",
        elastic.space.resolutions, phase_name="imported", definition=checkpoint.definition(elastic.space),
        source=(f"Once-for-All {ofa_name} (ImageNet), imported from {path.name} sha256 {digest[:16]}; "
                "batch norm as stored, recalibrate per sub-network on your data"),
        input_affine=input_affine())
    progress(f"writing {out}")
    written = {}

    def write(staged: Path) -> None:
        staged.mkdir()
        written["state"] = checkpoint.save(staged, net, None, state)
    write_atomically(out, write)
    return written["state"]

