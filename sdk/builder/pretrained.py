"""Pretrained starts: Keras Applications' ImageNet weights on any width and resolution of their family.

The source is the family's published Keras model (``arch.pretrained.source_for``: same depth, the
smallest width at least the one asked), loaded through Keras' own download-and-cache
(``"imagenet"``) or from a local ``.h5``. Its weights are copied into our builder's graph
(``weights.from_keras``), then mapped onto the target width the way Once-for-All shrinks a network:
every tensor's channels form a group (a residual chain or a squeeze-excite gate joins groups), a
group keeps the channels whose producing filters have the largest L1 norm, and every weight is
sliced on each of its channel axes. Convolution weights do not depend on the input size, so any
resolution takes them as they are. A classifier of another class count is not copied: that head
is new.
"""
from __future__ import annotations

import contextlib
import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from edgetailor.arch import pretrained as published, zoo
from edgetailor.arch.layers import walk
from edgetailor.arch.spec import ArchSpec
from edgetailor.builder import network as builder, weights
from edgetailor.builder.keras_layers import ChannelAffine, ChannelShuffle, KeepChannels, SplitChannels
from edgetailor.errors import WeightsError

L = tf.keras.layers
IMAGENET = published.IMAGENET
# keras 2.15.0 keras/src/applications/efficientnet.py: with weights="imagenet" (only then) a Rescaling
# by 1/sqrt(std) follows the Normalization layer, because the weights were trained on (x - mean) / var
# (tensorflow/tensorflow#49930). A local copy of the same weights needs the same input.
_EFFICIENTNET_STD = (0.229, 0.224, 0.225)
_PREPROCESSING = (L.Rescaling, L.Normalization)
_UNMAPPABLE = (L.Concatenate, ChannelShuffle, SplitChannels, KeepChannels)


@dataclass(frozen=True)
class Start:
    """Where a model's weights came from, for the manifest and the user."""

    source: published.KerasSource
    weights: str               # "imagenet" or the local file
    kept_fraction: float       # share of the source's weights the model kept
    head_copied: bool = False  # the source's classifier (same classes) came along; else the head is new

    def describe(self) -> str:
        where = "ImageNet weights (Keras' download)" if self.weights == IMAGENET else f"weights from {self.weights}"
        return (f"{where} of {self.source.label}, channels kept by L1 importance "
                f"({100 * self.kept_fraction:.0f} % of its weights)")


def build_pretrained(spec: ArchSpec, family: str, weights_from: str | Path, num_classes: int = 1000,
                     include_top: bool = True, dropout: float = 0.0,
                     classifier_activation: str | None = "softmax", name: str = "edgetailor"
                     ) -> tuple[tf.keras.Model, Start]:
    """``spec`` (a point of ``family``) built with a pretrained start from ``weights_from``
    ("imagenet" or a Keras Applications ``.h5``); it takes the builder's [-1, 1] input like any
    other (``_input_adapter``)."""
    wanted = published.source_for(family, spec.width, spec.depth)
    if wanted is None:
        raise WeightsError(f"no pretrained start for {family} width {spec.width:g} depth {spec.depth:g}: "
                           f"Keras publishes ImageNet weights for {_published_points(family)}")
    source = wanted if str(weights_from) == IMAGENET else _file_source(Path(weights_from), wanted)
    keras_model = _load(source, weights_from)
    source_spec = zoo.FAMILIES[family].spec(source.width, source.depth, keras_model.input_shape[1])
    ours = weights.from_keras(keras_model, source_spec, classifier_activation=None)
    adapter = _input_adapter(_leading(ours), efficientnet_fix=family == "efficientnet")
    target = builder.build(spec, num_classes, include_top, dropout, classifier_activation,
                           preprocessing=adapter, name=name)
    kept = transfer(ours, target)
    head_copied = include_top and any(layer.name == "classifier" and layer.units == num_classes
                                      for layer in ours.layers)
    return target, Start(source, str(weights_from), kept, head_copied)


def _published_points(family: str) -> str:
    points = [f"width {s.width:g}" + (f" depth {s.depth:g}" if s.depth != 1 else "")
              for s in published.SOURCES if s.family == family]
    if points:
        return f"{family} at " + ", ".join(points)
    return "the families " + ", ".join(published.FAMILIES)


def _leading(model: tf.keras.Model) -> list[tf.keras.layers.Layer]:
    layers = []
    for layer in model.layers[1:]:
        if not isinstance(layer, _PREPROCESSING):
            break
        layers.append(layer)
    return layers


def _input_adapter(preprocessing: list, efficientnet_fix: bool) -> list[tf.keras.layers.Layer]:
    """What turns the builder's [-1, 1] input into the input the Keras weights were trained on:
    nothing for MobileNetV1/V2 (they take [-1, 1]) and MobileNetV3 (its Rescaling maps pixels to
    [-1, 1]); one per-channel affine for EfficientNet (pixels / 255, ImageNet mean and std)."""
    if not preprocessing:
        return []
    scale, offset = np.full(3, 127.5), np.full(3, 127.5)  # [-1, 1] -> 0..255 pixels
    for layer in preprocessing:
        if isinstance(layer, L.Rescaling):
            scale, offset = scale * np.asarray(layer.scale), offset * np.asarray(layer.scale) + layer.offset
        else:
            mean, variance = (np.asarray(v).reshape(-1)[-3:] for v in (layer.mean, layer.variance))
            deviation = np.maximum(np.sqrt(variance), tf.keras.backend.epsilon())
            scale, offset = scale / deviation, (offset - mean) / deviation
    if efficientnet_fix and len(preprocessing) == 2:
        extra = 1 / np.sqrt(_EFFICIENTNET_STD)
        scale, offset = scale * extra, offset * extra
    if np.allclose(scale, 1, atol=1e-6) and np.allclose(offset, 0, atol=1e-6):
        return []
    return [ChannelAffine(scale.tolist(), offset.tolist(), name="pretrained_input")]


def _load(source: published.KerasSource, weights_from: str | Path) -> tf.keras.Model:
    constructor = getattr(tf.keras.applications, source.constructor)
    classes = 1000 if str(weights_from) == IMAGENET else _top_classes(Path(weights_from))
    include_top = classes is not None
    if not include_top and source.constructor.startswith("MobileNetV3"):
        raise WeightsError(f"{weights_from} is a MobileNetV3 no-top file, which lacks the head's "
                           "1x1 convolution (Conv_2); pass the full weights file (without _no_top)")
    try:
        # Keras prints "Downloading data from ..." and its progress bar on stdout: keep stdout for
        # results (`--json`), they are progress
        with contextlib.redirect_stdout(sys.stderr):
            return constructor(input_shape=(224, 224, 3), include_top=include_top, weights=str(weights_from),
                               classes=classes or 1000, classifier_activation=None, **source.kwargs)
    except Exception as exc:  # Keras' download raises a bare Exception offline; h5py OSError/ValueError
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        if str(weights_from) == IMAGENET:
            raise WeightsError(f"cannot download ImageNet weights for {source.label} (offline?): {first}; "
                               "pass the Keras .h5 file with --pretrained FILE") from None
        raise WeightsError(f"cannot read weights file {weights_from}: {first}") from None


def _h5_layers(path: Path) -> dict[str, list[tuple[int, ...]]]:
    """Layer name -> weight shapes of a Keras .h5 (weights-only or a whole saved model)."""
    import h5py

    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
            layers = {}
            for raw in group.attrs["layer_names"]:
                layer = raw.decode() if isinstance(raw, bytes) else raw
                names = [n.decode() if isinstance(n, bytes) else n for n in group[layer].attrs["weight_names"]]
                if names:
                    layers[layer] = [tuple(group[layer][n].shape) for n in names]
            return layers
    except (OSError, KeyError, ValueError) as exc:
        raise WeightsError(f"cannot read weights file {path}: not a Keras .h5 weights file "
                           f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


_TOPS = ("predictions", "Logits")  # Keras Applications' classifier layers


def _top_classes(path: Path) -> int | None:
    """The file's classifier width (ImageNet's 1000, or a Keras model trained on other classes);
    None for a no-top file."""
    tops = [shapes[0][-1] for name, shapes in _h5_layers(path).items() if name in _TOPS]
    return tops[0] if tops else None


def identify_or_fail(path: Path, expected: str = "") -> published.KerasSource:
    """``identify``, or a one-line error saying the file holds no published model."""
    held = identify(path)
    if held is None:
        raise WeightsError(f"{path} holds no Keras Applications model of {', '.join(published.FAMILIES)}"
                           + (f"; expected {expected}" if expected else ""))
    return held


def _file_source(path: Path, wanted: published.KerasSource) -> published.KerasSource:
    """The published model the file holds; it must be ``wanted``'s family and depth, at least as wide."""
    held = identify_or_fail(path, wanted.label)
    if held.family != wanted.family or held.depth != wanted.depth or held.width < wanted.width - 1e-9:
        raise WeightsError(f"{path} holds {held.label} ({held.family} width {held.width:g}); expected "
                           f"{wanted.family} width >= {wanted.width:g}, e.g. {wanted.label}")
    return held


def identify(path: Path) -> published.KerasSource | None:
    """Which published Keras model a .h5 holds, by its layers' names and weight shapes."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    status = path.stat()
    return _identify(str(path.resolve()), status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=8)
def _identify(path: str, mtime_ns: int, size: int) -> published.KerasSource | None:
    """``identify``, once per file version: first by parameter count against our layer walk (no
    model built; the walk counts Keras' parameters exactly, tests/builder/test_weights.py), then,
    for a file no count matches (a MobileNetV3 no-top file), by building candidates (seconds each)."""
    held = _h5_layers(Path(path))
    classes = next((shapes[0][-1] for name, shapes in held.items() if name in _TOPS), None)
    candidates = [source for source in published.SOURCES if _same_family_names(source, held)]
    total = sum(int(np.prod(shape)) for shapes in held.values() for shape in shapes)
    for source in candidates:
        if _keras_parameters(source, classes) == total:
            return source
    for source in candidates:
        model = getattr(tf.keras.applications, source.constructor)(
            input_shape=(224, 224, 3), include_top=classes is not None, weights=None, classes=classes or 1000,
            **source.kwargs)
        shapes = [[tuple(w.shape) for w in layer.weights] for layer in model.layers if layer.weights]
        if shapes == list(held.values()):  # in order: Keras names unnamed layers per process (normalization_1)
            return source
    return None


def _keras_parameters(source: published.KerasSource, classes: int | None) -> int:
    """Parameters of the Keras model ``source`` (with a ``classes`` top, or none), from our walk."""
    spec = zoo.FAMILIES[source.family].spec(source.width, source.depth, 224)
    preprocessing = 7 if source.family == "efficientnet" else 0  # Normalization: mean 3, variance 3, count 1
    return sum(layer.keras_params for layer in walk(spec, classes)) + preprocessing


def _same_family_names(source: published.KerasSource, held: dict) -> bool:
    """A cheap first screen (no model built): the family's telltale layer names."""
    names = set(held)
    marker = {"MobileNet": "conv_dw_1", "MobileNetV2": "block_1_expand",
              "MobileNetV3Large": "expanded_conv_14/expand", "MobileNetV3Small": "expanded_conv_10/expand"}
    if source.constructor.startswith("EfficientNet"):
        return "stem_conv" in names
    if marker[source.constructor] not in names or (
            source.constructor == "MobileNetV3Small" and "expanded_conv_14/expand" in names):
        return False
    if source.constructor.startswith("MobileNetV3"):
        has_se = any("squeeze_excite" in name for name in names)
        return has_se != source.kwargs.get("minimalistic", False)
    return True


def channel_groups(model: tf.keras.Model) -> tuple[dict[str, str], dict[str, list[dict[int, str]]]]:
    """(layer -> channel group of its output, weight layer -> per weight {axis: group}).

    A convolution or dense layer opens a group for its output channels; depthwise convolution,
    batch norm, activations, padding and pooling keep their input's; Add and Multiply join the
    groups they combine. Groups are named by one producing layer."""
    parent: dict[str, str] = {}

    def find(group: str) -> str:
        while parent.setdefault(group, group) != group:
            group = parent[group]
        return group

    output: dict[str, str] = {}
    axes: dict[str, list[dict[int, str]]] = {}
    for layer in model.layers:
        inputs = [find(output[name]) for name in _input_layers(layer)]
        if isinstance(layer, L.InputLayer):
            output[layer.name] = "image"
        elif isinstance(layer, _UNMAPPABLE) or (isinstance(layer, L.Conv2D) and layer.groups > 1
                                                 and not isinstance(layer, L.DepthwiseConv2D)):
            raise WeightsError(f"pretrained weights cannot be mapped through {layer.name} "
                               f"({type(layer).__name__}): channels are split or shuffled there")
        elif isinstance(layer, L.DepthwiseConv2D):
            output[layer.name] = inputs[0]
            axes[layer.name] = [{2: inputs[0]}]
        elif isinstance(layer, (L.Conv2D, L.Dense)):
            output[layer.name] = layer.name
            rank = 4 if isinstance(layer, L.Conv2D) else 2
            axes[layer.name] = [{rank - 2: inputs[0], rank - 1: layer.name}] + [{0: layer.name}] * layer.use_bias
        elif isinstance(layer, L.BatchNormalization):
            output[layer.name] = inputs[0]
            axes[layer.name] = [{0: inputs[0]}] * 4
        elif isinstance(layer, (L.Add, L.Multiply)):
            for other in inputs[1:]:
                parent[find(other)] = find(inputs[0])
            output[layer.name] = find(inputs[0])
        elif layer.weights and not isinstance(layer, _PREPROCESSING):
            raise WeightsError(f"pretrained weights cannot be mapped onto {layer.name} ({type(layer).__name__})")
        else:
            output[layer.name] = inputs[0]
            if layer.weights:
                axes[layer.name] = [{} for _ in layer.weights]
    resolved = {name: find(group) for name, group in output.items()}
    return resolved, {name: [{axis: find(g) for axis, g in weight.items()} for weight in per_weight]
                      for name, per_weight in axes.items()}


def _input_layers(layer: tf.keras.layers.Layer) -> list[str]:
    if isinstance(layer, L.InputLayer):
        return []
    tensors = layer.input if isinstance(layer.input, list) else [layer.input]
    return [tensor._keras_history.layer.name for tensor in tensors]


def transfer(source: tf.keras.Model, target: tf.keras.Model) -> float:
    """Copy ``source``'s weights into ``target`` (same family, target no wider), keeping each channel
    group's most important channels; returns the share of source backbone weights kept. A layer the
    source lacks, or a classifier with another class count, keeps its initial weights."""
    _, source_axes = channel_groups(source)
    _, target_axes = channel_groups(target)
    by_name = {layer.name: layer for layer in source.layers}
    sizes, importance = {}, {}
    for name, per_weight in source_axes.items():
        values = by_name[name].get_weights()
        for value, axes in zip(values, per_weight):
            for axis, group in axes.items():
                sizes[group] = value.shape[axis]
        if isinstance(by_name[name], (L.Conv2D, L.Dense)) and not isinstance(by_name[name], L.DepthwiseConv2D):
            own = per_weight[0][values[0].ndim - 1]
            l1 = np.abs(values[0]).reshape(-1, values[0].shape[-1]).sum(axis=0)
            importance[own] = importance.get(own, 0) + l1
    kept_params, total_params, chosen = 0, 0, {}
    for layer in target.layers:
        if layer.name not in target_axes or layer.name not in source_axes:
            continue
        values = by_name[layer.name].get_weights()
        shapes = [tuple(w.shape) for w in layer.get_weights()]
        if isinstance(layer, L.Dense) and values[0].shape[-1] != shapes[0][-1]:
            continue  # a classifier for other classes: a new head
        new = []
        for value, shape, axes in zip(values, shapes, source_axes[layer.name]):
            for axis, group in axes.items():
                keep = _keep(group, shape[axis], sizes, importance, chosen, layer.name)
                value = np.take(value, keep, axis=axis)
            new.append(value)
        if [v.shape for v in new] != shapes:
            raise WeightsError(f"pretrained weights of {layer.name} {[v.shape for v in values]} do not map "
                               f"onto {shapes}: not the same family")
        layer.set_weights(new)
        kept_params += sum(v.size for v in new)
        total_params += sum(v.size for v in values)
    if not total_params:
        raise WeightsError(f"no layer of {target.name} matches the pretrained model {source.name}")
    return kept_params / total_params


def _keep(group: str, size: int, sizes: dict, importance: dict, chosen: dict, layer: str) -> np.ndarray:
    """The source channels a group keeps (ascending): all, or the ``size`` most important."""
    if group not in chosen:
        available = sizes[group]
        if size > available:
            raise WeightsError(f"{layer} needs {size} channels; the pretrained model has {available}: "
                               "start from a wider published width")
        scores = importance.get(group, np.zeros(available))
        chosen[group] = np.sort(np.argsort(-scores, kind="stable")[:size])
    if len(chosen[group]) != size:
        raise WeightsError(f"{layer}: channel group {group} has {len(chosen[group])} channels elsewhere, "
                           f"{size} here")
    return chosen[group]
