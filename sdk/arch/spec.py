"""Architectures as data: frozen dataclasses and a strict, round-tripping string codec.

Grammar (one architecture; sections joined by `` | ``)::

    res224[_w0.75][_d1.2][_div8][_padsym][_eps1e-05]  | <stem blocks> | <stage 1 blocks> | ... | head:<head blocks>

Blocks inside a section are joined by ``,``. A block is ``<kind>_<token>_<token>...``:

==========  ==============================================================================
kind        meaning
==========  ==============================================================================
conv        k x k convolution + BN + activation
ds          depthwise-separable (MobileNetV1): dw k x k + BN + act, pw 1x1 + BN + act
ir          inverted residual / MBConv: [1x1 expand] dw k x k [SE] 1x1 linear project
fused       fused-MBConv: k x k expand conv [SE] 1x1 project (k x k conv only when e1)
skip        FBNet's skip op: identity (1x1 conv + BN + act when shape changes)
ghost       Ghost bottleneck (GhostNet); ``e`` is mid channels / input channels
shuffle     ShuffleNetV2 unit (stride 2: two-branch downsampling unit)
maxpool     k x k max pooling
pool        global average pooling (head only)
fc          1x1 conv with bias and no BN after pooling (head only)
ln          layer norm over channels (EdgeNeXt: before each downsampling, after the stem, head)
patch       non-overlapping k = s convolution with a bias, no norm (EdgeNeXt stem and downsampling)
convenc     EdgeNeXt conv encoder: dw k x k, LN, 1x1 to e*c, GELU, 1x1 back, layer scale, residual
sdta        EdgeNeXt split depth-wise transposed attention encoder (``sc`` channel splits, ``h``
            heads of cross-covariance attention, ``pe`` Fourier positional encoding), then the
            LN + 1x1 GELU 1x1 inverted bottleneck; both residual with layer scale
ffn         EfficientFormerV2 4D FFN: 1x1 + BN + GELU, dw k x k + BN + GELU, 1x1 + BN, layer scale,
            residual
attn        EfficientFormerV2 4D attention (``h`` heads of key dim ``kd``, values ``e`` x ``kd``
            wide, attention biases, talking heads), residual with layer scale; ``sr2`` attends on a
            stride-2 map and upsamples back; ``s2`` is the attention-downsampling embedding
act         the activation alone (NASNet's ReLU before its global pool)
xblock      RegNet X block: 1x1, 3x3 grouped (``gw`` channels per group), 1x1, + shortcut, ReLU
gghost      G-Ghost stage of ``r`` >= 3 X blocks (GhostNets on Heterogeneous Devices): the first
            and last at full width, the middle ones on a part of it; the rest is made cheaply
            from the first block's output and mixed with a pooled summary of all of them
nasnormal   NASNet-A normal cell of ``c`` filters per op (outputs 6c); reads the previous
            block's input too (see ``edgetailor.arch.blocks``)
nasreduce   NASNet-A reduction cell of ``c`` filters per op, stride 2 (outputs 4c)
uconv       UniNet convolution block: [BN, 1x1 to int(e * c_in) + BN + act], dw k x k + BN + act, [SE],
            1x1 + BN; + input, or + a 1x1 (bias) of a 3x3 stride-1 max pool when the width changes
ldsm        UniNet local downsampling module: dw 3x3 (stride) + BN, 1x1 (bias); + 1x1 (bias) of a
            3x3 max pool (stride)
lgdsm       UniNet local-global downsampling module: queries from dw 3x3 (stride) + BN, 1x1, LN; keys
            and values from LN, 1x1 to 2c; ``h`` heads of softmax attention, 1x1; + ldsm's shortcut
mhsa        UniNet transformer block: + dw 3x3 (bias) positions; LN, 1x1 to q|k|v, ``h`` heads of
            softmax attention, 1x1, layer scale, +; LN, 1x1 e*c GELU, 1x1, layer scale, +
==========  ==============================================================================

Tokens: ``r<int>`` repeats (default 1), ``k<int>`` kernel, ``s<int>`` stride of the first repeat
(default 1), ``e<float>`` expansion ratio, ``c<int>`` output channels, ``se<float>`` squeeze-excite as in
MnasNet/EfficientNet (width = ``int(in * ratio)``, block activation inside, sigmoid gate),
``hse<float>`` squeeze-excite as in MobileNetV3/GhostNet (width = ``make_divisible(mid * ratio)``,
ReLU inside, hard-sigmoid gate), ``g<int>`` groups of the 1x1 convs (with channel shuffle),
``xe`` keep the 1x1 expand conv even at ``e1`` (FBNet), ``noskip`` no identity shortcut, and an
activation: ``re`` relu, ``re6`` relu6, ``hs`` hard-swish, ``sw`` swish, ``ge`` GELU (exact, erf), ``lin`` none.
``gw<int>`` is the group width of xblock and gghost convolutions. Hybrid (attention) blocks add ``h<int>`` heads, ``kd<int>`` key dim, ``sc<int>`` channel splits,
``sr<int>`` the attention's own stride and ``pe`` positional encoding; see ``edgetailor.arch.blocks``.

Channels in a spec are resolved: width scaling (``edgetailor.arch.scaling``) returns a new spec and
records the multiplier in ``width`` for information only.

Numeric conventions, for weights trained elsewhere: ``padsym`` pads every k x k convolution
symmetrically (k // 2 on each side, PyTorch's convention) instead of TF "same" (which pads a
stride-2 convolution of an even input one pixel less at the top and left), and ``eps<float>`` is
batch norm's epsilon (default 1e-3, Keras Applications'). Shapes, parameters and MACs are the same
either way; the outputs are not, so a spec of Once-for-All's weights says ``_padsym_eps1e-05``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from typing import Any
from edgetailor.errors import SpecError

PADDINGS = ("same", "symmetric")  # TF "same"; k // 2 on each side (PyTorch)
BN_EPSILON = 1e-3  # Keras Applications and tensorflow/tpu
ACTIVATIONS = {"re": "relu", "re6": "relu6", "hs": "hswish", "sw": "swish", "ge": "gelu", "lin": "linear"}
ACT_TOKENS = {name: token for token, name in ACTIVATIONS.items()}

# Which fields each kind accepts, in canonical token order.
_KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "conv": ("repeats", "kernel", "stride", "channels", "act"),
    "ds": ("repeats", "kernel", "stride", "channels", "se", "act"),
    "ir": ("repeats", "kernel", "stride", "expand", "channels", "se", "groups", "keep_expand",
           "act", "residual"),
    "fused": ("repeats", "kernel", "stride", "expand", "channels", "se", "act", "residual"),
    "skip": ("repeats", "stride", "channels", "act"),
    "ghost": ("repeats", "kernel", "stride", "expand", "channels", "se"),
    "shuffle": ("repeats", "kernel", "stride", "channels", "act"),
    "maxpool": ("kernel", "stride"),
    "pool": (),
    "fc": ("channels", "act"),
    # hybrid convolution-attention blocks (EdgeNeXt, EfficientFormerV2)
    "ln": (),
    "patch": ("stride", "channels"),
    "convenc": ("repeats", "kernel", "expand", "channels"),
    "sdta": ("repeats", "expand", "channels", "heads", "scales", "posenc"),
    "ffn": ("repeats", "kernel", "expand", "channels"),
    "attn": ("repeats", "stride", "expand", "channels", "heads", "key_dim", "attn_stride"),
    # G-GhostNet (RegNet X blocks, G-Ghost stages) and NASNet-A cells
    "act": ("act",),
    "xblock": ("repeats", "stride", "channels", "group_width"),
    "gghost": ("repeats", "stride", "channels", "group_width"),
    "nasnormal": ("repeats", "channels"),
    "nasreduce": ("stride", "channels"),
    # UniNet (convolution block, downsampling modules, transformer block)
    "uconv": ("repeats", "kernel", "expand", "channels", "se", "act"),
    "ldsm": ("stride", "channels"),
    "lgdsm": ("stride", "channels", "heads"),
    "mhsa": ("repeats", "expand", "channels", "heads"),
}
HEAD_ONLY = {"pool", "fc"}
STAGE_KINDS = {"gghost"}  # one block instance whose repeats are the blocks inside it
_NUMERIC_TOKENS = {"r": "repeats", "k": "kernel", "s": "stride", "e": "expand", "c": "channels",
                   "se": "se", "hse": "se", "g": "groups", "h": "heads", "kd": "key_dim", "sc": "scales",
                   "sr": "attn_stride", "gw": "group_width"}
_COUNT_TOKENS = {"heads": "h", "key_dim": "kd", "scales": "sc"}  # always written, even when 1
_TOKEN_RE = re.compile(r"^([a-z]+)(\d+(?:\.\d+)?)$")


def _normalise(value: float) -> float:
    """Round to 6 significant digits so that the text form round-trips exactly."""
    return float(f"{float(value):.6g}")


def _fmt(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Block:
    """One block (or ``repeats`` identical blocks, the first with ``stride``)."""

    kind: str
    repeats: int = 1
    kernel: int = 3
    stride: int = 1
    expand: float = 1.0
    channels: int = 0
    se: float = 0.0
    hard_se: bool = False
    groups: int = 1
    keep_expand: bool = False
    act: str = "relu"
    residual: bool = True
    heads: int = 0          # attention heads (sdta, attn)
    key_dim: int = 0        # attn: query/key width per head
    scales: int = 1         # sdta: channel splits of the depth-wise part
    posenc: bool = False    # sdta: Fourier positional encoding
    attn_stride: int = 1    # attn: attend on a strided map, upsample back
    group_width: int = 0    # xblock, gghost: channels per group of the 3x3 convolutions

    def __post_init__(self) -> None:
        if self.kind not in _KIND_FIELDS:
            raise SpecError(f"unknown block kind {self.kind!r}; expected one of {sorted(_KIND_FIELDS)}")
        object.__setattr__(self, "expand", _normalise(self.expand))
        object.__setattr__(self, "se", _normalise(self.se))
        allowed = _KIND_FIELDS[self.kind]
        for name in ("expand", "se", "groups", "keep_expand", "residual", "act", "channels",
                     "heads", "key_dim", "scales", "posenc", "attn_stride", "group_width"):
            default = _DEFAULTS[name]
            if name not in allowed and getattr(self, name) != default:
                raise SpecError(f"{self.kind} blocks take no {name!r} (got {getattr(self, name)!r})")
        if self.hard_se and self.se == 0:
            raise SpecError("hard_se needs a non-zero se ratio")
        if self.kind == "ghost" and self.se and not self.hard_se:
            raise SpecError("ghost blocks use the hard-sigmoid squeeze-excite: write hse, not se")
        checks = [
            (self.repeats >= 1, f"repeats must be >= 1 (got {self.repeats})"),
            (self.kernel in (1, 3, 5, 7, 9), f"kernel must be 1, 3, 5, 7 or 9 (got {self.kernel})"),
            (self.stride in ((2, 4) if self.kind == "patch" else (1, 2)),
             f"stride must be {'2 or 4' if self.kind == 'patch' else '1 or 2'} (got {self.stride})"),
            (0 < self.expand <= 16, f"expand must be in (0, 16] (got {self.expand})"),
            (0 <= self.se < 1, f"se ratio must be in [0, 1) (got {self.se})"),
            (self.groups >= 1, f"groups must be >= 1 (got {self.groups})"),
            (self.act in ACT_TOKENS, f"unknown activation {self.act!r}"),
            (self.channels >= 0, f"channels must be >= 0 (got {self.channels})"),
            ("channels" not in allowed or self.channels > 0,
             f"{self.kind} block needs its output channels (c<int>)"),
            ("heads" not in allowed or self.heads >= 1, f"{self.kind} block needs its heads (h<int>)"),
            ("key_dim" not in allowed or self.key_dim >= 1, f"{self.kind} block needs its key dim (kd<int>)"),
            (1 <= self.scales <= 8 and (self.kind != "sdta" or self.scales >= 2),
             f"sdta splits must be in [2, 8] (got {self.scales})"),
            (self.attn_stride in (1, 2) and not (self.attn_stride > 1 and self.stride > 1),
             f"attention stride must be 1 or 2, and 1 in a downsampling block (got {self.attn_stride})"),
            ("group_width" not in allowed or self.group_width >= 1,
             f"{self.kind} block needs its group width (gw<int>)"),
            (self.kind != "gghost" or self.repeats >= 3,
             f"a G-Ghost stage has at least 3 blocks (got r{self.repeats})"),
            (self.kind != "nasreduce" or self.stride == 2,
             f"a NASNet reduction cell has stride 2 (got s{self.stride})"),
        ]
        for ok, message in checks:
            if not ok:
                raise SpecError(message)

    def encode(self) -> str:
        """The canonical block string, e.g. ``ir_r2_k5_s2_e3_c40_se0.25_hs``."""
        parts = [self.kind]
        for name in _KIND_FIELDS[self.kind]:
            value = getattr(self, name)
            if name in ("repeats", "stride") and value == 1:
                continue  # the defaults stay implicit: ir_k3_e6_c24 is one stride-1 block
            if name in ("repeats", "kernel", "stride", "channels"):
                parts.append(f"{name[0]}{value}")
            elif name == "expand":
                parts.append(f"e{_fmt(value)}")
            elif name == "se" and value:
                parts.append(f"{'hse' if self.hard_se else 'se'}{_fmt(value)}")
            elif name == "groups" and value != 1:
                parts.append(f"g{value}")
            elif name == "keep_expand" and value:
                parts.append("xe")
            elif name == "act":
                parts.append(ACT_TOKENS[value])
            elif name == "residual" and not value:
                parts.append("noskip")
            elif name in _COUNT_TOKENS:
                parts.append(f"{_COUNT_TOKENS[name]}{value}")
            elif name == "attn_stride" and value != 1:
                parts.append(f"sr{value}")
            elif name == "posenc" and value:
                parts.append("pe")
            elif name == "group_width":
                parts.append(f"gw{value}")
        return "_".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Only the fields this kind takes; defaults included, so the JSON is explicit."""
        allowed = _KIND_FIELDS[self.kind]
        out: dict[str, Any] = {"kind": self.kind}
        for name in allowed:
            out[name] = getattr(self, name)
            if name == "se":
                out["hard_se"] = self.hard_se
        return out


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Block) if f.name != "kind"}


def decode_block(text: str, where: str = "") -> Block:
    """Parse one block string; errors name the offending token and its position."""
    at = f" in {where}" if where else ""
    tokens = text.strip().split("_")
    kind = tokens[0]
    if kind not in _KIND_FIELDS:
        raise SpecError(f"unknown block kind {kind!r} at token 0 of {text!r}{at}")
    allowed = _KIND_FIELDS[kind]
    values: dict[str, Any] = {}
    for position, token in enumerate(tokens[1:], start=1):
        name, value = _parse_token(token)
        if name is None:
            raise SpecError(f"unknown token {token!r} at token {position} of {text!r}{at}")
        if name not in allowed:
            raise SpecError(f"token {token!r} at token {position} of {text!r}{at}: "
                            f"{kind} blocks take no {name}")
        if name in values:
            raise SpecError(f"duplicate {name} token {token!r} at token {position} of {text!r}{at}")
        values[name] = value
        if token.startswith("hse"):
            values["hard_se"] = True
    try:
        return Block(kind=kind, **values)
    except SpecError as exc:
        raise SpecError(f"{exc} in {text!r}{at}") from None


def _parse_token(token: str) -> tuple[str | None, Any]:
    if token in ACTIVATIONS:
        return "act", ACTIVATIONS[token]
    if token == "noskip":
        return "residual", False
    if token == "xe":
        return "keep_expand", True
    if token == "pe":
        return "posenc", True
    match = _TOKEN_RE.match(token)
    if not match or match.group(1) not in _NUMERIC_TOKENS:
        return None, None
    prefix, number = match.groups()
    name = _NUMERIC_TOKENS[prefix]
    if name in ("expand", "se"):
        return name, float(number)
    if "." in number:
        return None, None
    return name, int(number)


@dataclass(frozen=True)
class ArchSpec:
    """A whole network: stem, stages of blocks, head; resolution in pixels."""

    stem: tuple[Block, ...]
    stages: tuple[tuple[Block, ...], ...]
    head: tuple[Block, ...] = (Block("pool"),)
    resolution: int = 224
    width: float = 1.0
    depth: float = 1.0
    divisor: int = 8
    padding: str = "same"          # one of PADDINGS
    bn_eps: float = BN_EPSILON     # batch norm epsilon

    def __post_init__(self) -> None:
        object.__setattr__(self, "stem", tuple(self.stem))
        object.__setattr__(self, "stages", tuple(tuple(stage) for stage in self.stages))
        object.__setattr__(self, "head", tuple(self.head))
        object.__setattr__(self, "width", _normalise(self.width))
        object.__setattr__(self, "depth", _normalise(self.depth))
        for name in ("width", "depth"):  # a JSON spec may say NaN; w9...9 overflows to inf
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise SpecError(f"{name} must be a finite positive multiplier (got {getattr(self, name)})")
        if not 4 <= self.resolution <= 2048:  # small inputs: op-level measurement models
            raise SpecError(f"resolution must be in [4, 2048] pixels (got {self.resolution})")
        if self.divisor not in (1, 2, 4, 8, 16):
            raise SpecError(f"divisor must be 1, 2, 4, 8 or 16 (got {self.divisor})")
        if self.padding not in PADDINGS:
            raise SpecError(f"padding must be one of {', '.join(PADDINGS)} (got {self.padding!r})")
        object.__setattr__(self, "bn_eps", _normalise(self.bn_eps))
        if not (math.isfinite(self.bn_eps) and 0 < self.bn_eps < 1):
            raise SpecError(f"batch norm epsilon must be in (0, 1) (got {self.bn_eps})")
        if not self.stem:
            raise SpecError("an architecture needs at least one stem block")
        if not self.stages or any(not stage for stage in self.stages):
            raise SpecError("an architecture needs at least one stage and no empty stage")
        for block in self.stem + tuple(b for stage in self.stages for b in stage):
            if block.kind in HEAD_ONLY:
                raise SpecError(f"{block.kind} blocks belong in the head, not in {block.encode()!r}")
        if sum(1 for block in self.head if block.kind == "pool") != 1:
            raise SpecError("the head needs exactly one global 'pool'")

    @property
    def blocks(self) -> tuple[Block, ...]:
        """All stage blocks, in order (stem and head excluded)."""
        return tuple(block for stage in self.stages for block in stage)

    def replace(self, **changes: Any) -> "ArchSpec":
        return dataclasses.replace(self, **changes)

    def encode(self) -> str:
        header = f"res{self.resolution}"
        if self.width != 1:
            header += f"_w{_fmt(self.width)}"
        if self.depth != 1:
            header += f"_d{_fmt(self.depth)}"
        if self.divisor != 8:
            header += f"_div{self.divisor}"
        if self.padding == "symmetric":
            header += "_padsym"
        if self.bn_eps != BN_EPSILON:
            header += f"_eps{self.bn_eps:g}"
        sections = [header, _join(self.stem)]
        sections += [_join(stage) for stage in self.stages]
        sections.append("head:" + _join(self.head))
        return " | ".join(sections)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "resolution": self.resolution, "width": self.width, "depth": self.depth,
            "divisor": self.divisor,
            "stem": [b.to_dict() for b in self.stem],
            "stages": [[b.to_dict() for b in stage] for stage in self.stages],
            "head": [b.to_dict() for b in self.head],
        }
        # the conventions only where they differ, so every other spec's JSON stays as it was
        if self.padding != "same":
            data["padding"] = self.padding
        if self.bn_eps != BN_EPSILON:
            data["bn_eps"] = self.bn_eps
        return data

    def __str__(self) -> str:
        return self.encode()


def _join(blocks: tuple[Block, ...]) -> str:
    return ",".join(block.encode() for block in blocks)


_HEADER_RE = re.compile(r"^(res|w|d|div|eps)(\d+(?:\.\d+)?(?:e-\d+)?)$")


def decode(text: str) -> ArchSpec:
    """Parse an architecture string (see the module docstring)."""
    sections = [section.strip() for section in text.strip().split("|")]
    if len(sections) < 4:
        raise SpecError("an architecture string needs 'res<px> | stem | stage... | head:...' "
                        f"(got {len(sections)} section(s))")
    header, stem, *stages, head = sections
    fields: dict[str, Any] = {}
    for position, token in enumerate(header.split("_")):
        match = _HEADER_RE.match(token)
        if token == "padsym":
            key, number = "pad", "symmetric"
        elif match and ("e" not in match.group(2) or match.group(1) == "eps"):
            key, number = match.groups()
        else:
            raise SpecError(f"unknown header token {token!r} at token {position} of {header!r}")
        name = {"res": "resolution", "w": "width", "d": "depth", "div": "divisor", "pad": "padding",
                "eps": "bn_eps"}[key]
        if name in fields:
            raise SpecError(f"duplicate header token {token!r}")
        if name == "padding":
            fields[name] = number
        else:
            fields[name] = float(number) if name in ("width", "depth", "bn_eps") else int(float(number))
    if "resolution" not in fields:
        raise SpecError(f"the header {header!r} needs res<pixels>")
    if not head.startswith("head:"):
        raise SpecError(f"the last section must start with 'head:' (got {head!r})")
    return ArchSpec(
        stem=_blocks(stem, "the stem"),
        stages=tuple(_blocks(stage, f"stage {i + 1}") for i, stage in enumerate(stages)),
        head=_blocks(head[len("head:"):], "the head"),
        **fields,
    )


def _blocks(section: str, where: str) -> tuple[Block, ...]:
    if not section:
        raise SpecError(f"{where} is empty")
    return tuple(decode_block(text, f"{where}, block {i + 1}")
                 for i, text in enumerate(section.split(",")))


def from_dict(data: dict[str, Any]) -> ArchSpec:
    """Inverse of :meth:`ArchSpec.to_dict`; unknown keys are errors."""
    known = {"resolution", "width", "depth", "divisor", "padding", "bn_eps", "stem", "stages", "head"}
    unknown = set(data) - known
    if unknown:
        raise SpecError(f"unknown architecture keys {sorted(unknown)}")
    try:
        return ArchSpec(
            stem=tuple(_block_from_dict(b) for b in data["stem"]),
            stages=tuple(tuple(_block_from_dict(b) for b in stage) for stage in data["stages"]),
            head=tuple(_block_from_dict(b) for b in data.get("head", [{"kind": "pool"}])),
            **{k: data[k] for k in ("resolution", "width", "depth", "divisor", "padding", "bn_eps") if k in data},
        )
    except (KeyError, TypeError) as exc:
        raise SpecError(f"malformed architecture JSON: {exc}") from None


def _block_from_dict(data: dict[str, Any]) -> Block:
    if not isinstance(data, dict) or "kind" not in data:
        raise SpecError(f"a block must be an object with a 'kind' (got {data!r})")
    kind = data["kind"]
    allowed = set(_KIND_FIELDS.get(kind, ())) | {"kind"}
    if "se" in allowed:
        allowed.add("hard_se")
    unknown = set(data) - allowed
    if unknown:
        raise SpecError(f"{kind} block has unknown keys {sorted(unknown)}")
    return Block(**data)


def from_json(text: str) -> ArchSpec:
    try:
        return from_dict(json.loads(text))
    except json.JSONDecodeError as exc:
        raise SpecError(f"architecture JSON does not parse: {exc}") from None


__all__ = ["ACTIVATIONS", "BN_EPSILON", "PADDINGS", "ArchSpec", "Block", "SpecError", "decode", "decode_block",
           "from_dict", "from_json"]
