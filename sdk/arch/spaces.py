"""Search spaces as data: a point of a space is a choice vector that decodes to an ordinary spec.

A space is a stem, stages and a head. Each stage has allowed depths, width ratios (MnasNet's
filter-size ratios) and candidate ops written as block templates without channels or stride
(``ir_k5_e3_re6``, ``skip``); an op is chosen per layer, or once for the whole stage when the
stage's ops are ``shared`` (MnasNet's factorized hierarchical space).

Choice vector layout: ``[resolution, then per stage: depth, width, op(s)]`` as indices.

A space may carry a numeric convention (``padding``, ``bn_eps``: see ``edgetailor.arch.spec``) that
every spec it decodes inherits; the registered spaces use the default, a space of weights imported
from PyTorch (``supernet import-ofa``) is the same space with PyTorch's.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from edgetailor.arch.scaling import make_divisible
from edgetailor.arch.spec import BN_EPSILON, ArchSpec, Block, SpecError, decode_block


@dataclass(frozen=True)
class StageDef:
    channels: int
    stride: int
    depths: tuple[int, ...]
    ops: tuple[str, ...]
    widths: tuple[float, ...] = (1.0,)
    shared: bool = False  # one op for every layer of the stage


@dataclass(frozen=True)
class Space:
    name: str
    description: str
    stem: str                      # stem section of an architecture string
    stages: tuple[StageDef, ...]
    head: str                      # head section, without "head:"
    resolutions: tuple[int, ...] = (224,)
    padding: str = "same"          # the specs' padding convention (``ArchSpec.padding``)
    bn_eps: float = BN_EPSILON     # and batch norm epsilon

    def stem_blocks(self) -> tuple[Block, ...]:
        return tuple(decode_block(text) for text in self.stem.split(","))

    def head_blocks(self) -> tuple[Block, ...]:
        return tuple(decode_block(text) for text in self.head.split(","))

    @property
    def stem_channels(self) -> int:
        return self.stem_blocks()[-1].channels

    def dims(self) -> list[int]:
        """Number of options per position of the choice vector."""
        out = [len(self.resolutions)]
        for stage in self.stages:
            out += [len(stage.depths), len(stage.widths)]
            out += [len(stage.ops)] * (1 if stage.shared else max(stage.depths))
        return out

    def sample(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        """``n`` uniformly random choice vectors (rows); invalid first-layer ops are re-drawn."""
        dims = np.array(self.dims())
        choices = (rng.random((n, len(dims))) * dims).astype(np.int64)
        return self.repair(choices)

    def repair(self, choices: np.ndarray) -> np.ndarray:
        """A stage's first layer must change the shape when the stage does: ``skip`` there is
        replaced by the stage's first non-skip op (the papers' spaces have no skip there)."""
        choices = np.array(choices, dtype=np.int64, copy=True)
        position, previous = 1, self.stem_channels
        for stage in self.stages:
            if stage.stride > 1 or stage.channels != previous or len(stage.widths) > 1:
                for index, template in enumerate(stage.ops):
                    if template.startswith("skip"):
                        bad = choices[:, position + 2] == index
                        choices[bad, position + 2] = _first_non_skip(stage)
            position += 2 + (1 if stage.shared else max(stage.depths))
            previous = stage.channels
        return choices

    def decode(self, choice) -> ArchSpec:
        """The spec of one choice vector."""
        choice = [int(c) for c in choice]
        if len(choice) != len(self.dims()) or any(not 0 <= c < d for c, d in zip(choice, self.dims())):
            raise SpecError(f"choice vector {choice} does not fit space {self.name!r} (dims {self.dims()})")
        stages = []
        position = 1
        for stage in self.stages:
            depth = stage.depths[choice[position]]
            channels = make_divisible(stage.channels * stage.widths[choice[position + 1]], 8)
            ops = choice[position + 2: position + 2 + (1 if stage.shared else max(stage.depths))]
            blocks = []
            for layer in range(depth):
                template = stage.ops[ops[0] if stage.shared else ops[layer]]
                block = dataclasses.replace(decode_block(f"{template}_c{channels}"),
                                            stride=stage.stride if layer == 0 else 1)
                blocks.append(block)
            stages.append(tuple(blocks))
            position += 2 + len(ops)
        return ArchSpec(self.stem_blocks(), tuple(stages), self.head_blocks(),
                        resolution=self.resolutions[choice[0]], padding=self.padding, bn_eps=self.bn_eps)


def _first_non_skip(stage: StageDef) -> int:
    return next(i for i, t in enumerate(stage.ops) if not t.startswith("skip"))


def _mnasnet_ops() -> tuple[str, ...]:
    ops = []
    for conv in ("fused_{k}_e1", "ir_{k}_e1", "ir_{k}_e3", "ir_{k}_e6"):
        for kernel in ("k3", "k5"):
            for se in ("", "_se0.25"):
                for skip in ("", "_noskip"):
                    ops.append(conv.format(k=kernel) + se + "_re" + skip)
    return tuple(ops)


def _per_layer(kernels, expands, act, skip=False, extra=()) -> tuple[str, ...]:
    ops = tuple(f"ir_k{k}_e{e}_{act}" for k in kernels for e in expands) + tuple(extra)
    return ops + (("skip",) if skip else ())


def _ofa_mbv3(name: str, width: float) -> Space:
    """Once-for-All's MobileNetV3 space at ``width``: its stage widths (16, 16 | 24, 40, 80, 112, 160 |
    960, 1280) times ``width``, rounded as it rounds them (``make_divisible(w * width, 8)``), relu in
    the first two stages and hard-swish after, squeeze-excite in stages 2, 4 and 5; the stem's 3x3
    conv and a kernel-3, expand-1 block; the head's 1x1 expand conv, pooling and a 1x1 "feature mix"
    conv (``ofa_mbv3.py`` ``OFAMobileNetV3.__init__`` @ mit-han-lab/once-for-all f03b2673)."""
    c = [make_divisible(w * width, 8) for w in (16, 16, 24, 40, 80, 112, 160, 960, 1280)]
    plain = _per_layer((3, 5, 7), (3, 4, 6), "re")
    plain_hs = _per_layer((3, 5, 7), (3, 4, 6), "hs")
    se = tuple(t.replace("_re", "_hse0.25_re") for t in plain)
    se_hs = tuple(t.replace("_hs", "_hse0.25_hs") for t in plain_hs)
    return Space(name, f"Once-for-All MobileNetV3 space, width {width:g} (Cai et al. 2020): depth 2/3/4 per "
                 "stage, per layer kernel 3/5/7 x expand 3/4/6, resolution 160-224",
                 f"conv_k3_s2_c{c[0]}_hs,ir_k3_e1_c{c[1]}_re",
                 tuple(StageDef(channels, stride, (2, 3, 4), ops) for channels, stride, ops in
                       zip(c[2:7], (2, 2, 2, 1, 2), (plain, se, plain_hs, se_hs, se_hs))),
                 f"conv_k1_c{c[7]}_hs,pool,fc_c{c[8]}_hs", resolutions=(160, 176, 192, 208, 224))


_MNAS_OPS = _mnasnet_ops()
_PROXYLESS_OPS = _per_layer((3, 5, 7), (3, 6), "re6", skip=True)
_FBNET_OPS = ("ir_k3_e1_xe_re", "ir_k3_e1_g2_xe_re", "ir_k3_e3_re", "ir_k3_e6_re", "ir_k5_e1_xe_re",
              "ir_k5_e1_g2_xe_re", "ir_k5_e3_re", "ir_k5_e6_re", "skip")

SPACES: dict[str, Space] = {space.name: space for space in [
    Space("mnasnet", "MnasNet factorized hierarchical space (Tan et al. 2019, Sec. 4.1): per stage "
          "one conv op (conv, dwconv, MBConv e3/e6) x kernel 3/5 x SE 0/0.25 x skip/no skip, "
          "filter ratio 0.75/1/1.25, layers -1/0/+1 around MobileNetV2's",
          "conv_k3_s2_c32_re",
          tuple(StageDef(c, s, (max(1, n - 1), n, n + 1), _MNAS_OPS, (0.75, 1.0, 1.25), shared=True)
                for c, n, s in [(16, 1, 1), (24, 2, 2), (40, 3, 2), (80, 4, 2), (112, 2, 1),
                                (160, 3, 2), (320, 1, 1)]),
          "conv_k1_c1280_re,pool"),
    Space("proxyless", "ProxylessNAS mobile space (Cai et al. 2019): per layer MBConv kernel 3/5/7 x "
          "expand 3/6, or zero (skip) where a shortcut exists",
          "conv_k3_s2_c32_re6,ir_k3_e1_c16_re6",
          tuple(StageDef(c, s, (n,), _PROXYLESS_OPS) for c, n, s in
                [(24, 4, 2), (40, 4, 2), (80, 4, 2), (96, 4, 1), (192, 4, 2), (320, 1, 1)]),
          "conv_k1_c1280_re6,pool"),
    Space("fbnet", "FBNet space (Wu et al. 2019, Table 1-2): 22 layers x 9 candidate blocks "
          "(k3/k5 x e1/e3/e6, grouped e1, skip)",
          "conv_k3_s2_c16_re",
          tuple(StageDef(c, s, (n,), _FBNET_OPS) for c, n, s in
                [(16, 1, 1), (24, 4, 2), (32, 4, 2), (64, 4, 2), (112, 4, 1), (184, 4, 2), (352, 1, 1)]),
          "conv_k1_c1984_re,pool"),
    _ofa_mbv3("ofa_mbv3", 1.2), _ofa_mbv3("ofa_mbv3_w1.0", 1.0),
    Space("ofa_proxy", "Once-for-All's first two stages at a quarter of ofa_mbv3's widths, same "
          "choices (depth 2/3/4, kernel 3/5/7 x expand 3/4/6), 40-48 px: a supernet that trains in "
          "minutes on a CPU, to try the train-once flow at proxy scale",
          "conv_k3_s2_c8_hs,ir_k3_e1_c8_re",
          (StageDef(8, 2, (2, 3, 4), _per_layer((3, 5, 7), (3, 4, 6), "re")),
           StageDef(12, 2, (2, 3, 4), tuple(t.replace("_re", "_hse0.25_re")
                                           for t in _per_layer((3, 5, 7), (3, 4, 6), "re")))),
          "conv_k1_c288_hs,pool,fc_c384_hs", resolutions=(40, 48)),
    # supernet_macro.py ``single_path_search`` at dstamoulis/single-path-nas@21c1f3e9c790e591749c0fb861bff3737b6d5fc7:
    # a fixed k3 e1 block, five stages of 4 searchable layers (k3/k5 x e3/e6, skip except the first layer of a
    # stage: here a depth of 1-4, a skipped layer being the identity) and a fixed k3 e6 block before the head
    Space("single_path", "Single-Path NAS space (Stamoulis et al. 2019, Fig. 2): MobileNetV2 macro-architecture, "
          "per layer MBConv kernel 3/5 x expand 3/6 or skip (depth 1-4 per stage), relu",
          "conv_k3_s2_c32_re,ir_k3_e1_c16_re",
          tuple(StageDef(c, s, (1, 2, 3, 4), _per_layer((3, 5), (3, 6), "re")) for c, s in
                [(24, 2), (40, 2), (80, 2), (96, 1), (192, 2)]) + (StageDef(320, 1, (1,), ("ir_k3_e6_re",)),),
          "conv_k1_c1280_re,pool"),
    Space("single_path_proxy", "single_path's choices on three narrow stages at 32-48 px: a Single-Path NAS or "
          "PruNet search that runs in minutes on a CPU",
          "conv_k3_s2_c8_re,ir_k3_e1_c8_re",
          tuple(StageDef(c, 2, (1, 2, 3), _per_layer((3, 5), (3, 6), "re")) for c in (16, 24, 40)),
          "conv_k1_c128_re,pool", resolutions=(32, 40, 48)),
    Space("proxyless_proxy", "proxyless's per-layer choices (kernel 3/5/7 x expand 3/6, or zero) on three narrow "
          "stages of three layers at 32 px: FBNet, ProxylessNAS and LightNAS searches that run in minutes on a "
          "CPU, priced in the range of ofa_proxy and single_path_proxy",
          "conv_k3_s2_c8_re6,ir_k3_e1_c8_re6",
          tuple(StageDef(c, 2, (3,), _PROXYLESS_OPS) for c in (16, 24, 40)),
          "conv_k1_c128_re6,pool", resolutions=(32,)),
]}


def get(name: str) -> Space:
    if name not in SPACES:
        raise SpecError(f"unknown search space {name!r}; spaces: {', '.join(SPACES)}")
    return SPACES[name]
