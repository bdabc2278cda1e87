"""Reference outputs of Once-for-All's own PyTorch supernet, for tests/supernet/test_ofa_import.py.

Runs in the side environment tools/ofa-venv.sh makes (torch + PyPI's ``ofa``), never in ours:

    .venv-ofa/bin/python tools/ofa_reference.py --width 1.0 --out DIR [--subnets 20] [--seed 0]

Builds ``OFAMobileNetV3`` as ``ofa.model_zoo.ofa_net`` builds ``ofa_mbv3_d234_e346_k357_w<width>``
with random weights — every tensor, batch-norm running statistics and the kernel transform
matrices included (they start as identities) — and writes to DIR:

- ``ofa_w<width>.pth``: ``{"state_dict": ...}`` as Once-for-All publishes it (zip format);
- ``ofa_w<width>_legacy.pth``: the bare state dict in PyTorch's legacy (pre-1.6) stream format,
  with the key names of older ``ofa`` releases (``mobile_inverted_conv``, no ``bn.bn``);
- ``ofa_w<width>.npz``: for each sub-network (the largest, the smallest, then random ones as
  ``sample_active_subnet`` draws them) its kernel, expand and depth lists, its resolution, the
  input in [-1, 1] and the logits of OFA's active supernet and of ``get_active_subnet()``.
"""
import argparse
import random
import sys
import types
from pathlib import Path

import numpy as np
import torch

# ofa/utils/__init__.py imports its data loaders, which import torchvision (not installed: PyPI's
# torchvision does not load beside this torch); the networks never use them.
sys.modules["ofa.utils.my_dataloader"] = types.ModuleType("ofa.utils.my_dataloader")
from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # data_providers/imagenet.py
RESOLUTIONS = (64, 72, 96, 128, 160)  # even and odd feature maps at the stride-2 layers


def randomise(net: torch.nn.Module, generator: torch.Generator) -> None:
    """Random weights scaled to keep the activations' variance (gain 2 before an activation, 1 into a
    sum or the logits), batch-norm statistics near the unit variance that gives, perturbed per
    channel, and kernel transforms near the identity: every sub-network's logits then depend on the
    input and stay of order one (statistics measured on the largest network blow the others up)."""
    def normal(shape, std):
        return std * torch.randn(shape, generator=generator)

    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            shape = tensor.shape
            if name.endswith("_matrix"):
                tensor.copy_(torch.eye(shape[0]) + normal(shape, 0.1))
            elif name.endswith("running_var"):
                tensor.copy_(0.6 + 0.8 * torch.rand(shape, generator=generator))
            elif name.endswith("running_mean"):
                tensor.copy_(normal(shape, 0.2))
            elif name.endswith(("bn.weight", "bn.bn.weight")):
                tensor.copy_(0.5 + torch.rand(shape, generator=generator))
            elif name.endswith("bias"):
                tensor.copy_(normal(shape, 0.1))
            elif name.endswith("weight"):
                gain = 1.0 if ("point_linear" in name or "classifier" in name or ".se." in name) else 2.0
                tensor.copy_(normal(shape, (gain / tensor[0].numel()) ** 0.5))


def images(rng: np.random.Generator, resolution: int) -> np.ndarray:
    """Two [-1, 1] images with structure at every scale (blocks of 8 px, a tint, fine noise): white
    noise alone averages out in the global pooling and the logits would hardly depend on it."""
    coarse = rng.normal(0, 0.5, (2, resolution // 8, resolution // 8, 3)).repeat(8, 1).repeat(8, 2)
    tint = rng.uniform(-0.4, 0.4, (2, 1, 1, 3))
    return np.clip(coarse + tint + rng.normal(0, 0.2, coarse.shape), -1, 1).astype(np.float32)


def legacy_keys(state: dict) -> dict:
    """The key names of older ofa releases, which ``OFAMobileNetV3.load_state_dict`` still maps."""
    out = {}
    for key, value in state.items():
        key = key.replace(".conv.conv.weight", ".conv.weight").replace(".bn.bn.", ".bn.")
        parts = key.split(".")
        if parts[0] == "blocks" and parts[2] == "conv":
            parts[2] = "mobile_inverted_conv"
        out[".".join(parts)] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--width", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--subnets", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    random.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    generator = torch.Generator().manual_seed(args.seed)

    net = OFAMobileNetV3(dropout_rate=0, width_mult=args.width, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                         depth_list=[2, 3, 4])  # as ofa.model_zoo.ofa_net
    randomise(net, generator)
    net.eval()
    tag = f"ofa_w{args.width:.1f}"
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": net.state_dict()}, args.out / f"{tag}.pth")
    torch.save(legacy_keys(net.state_dict()), args.out / f"{tag}_legacy.pth", _use_new_zipfile_serialization=False)

    slots = len(net.blocks) - 1
    records = {key: [] for key in ("ks", "e", "d", "resolution", "supernet", "subnet")}
    inputs = {}
    for i in range(args.subnets):
        if i == 0:
            setting = {"ks": [7] * slots, "e": [6] * slots, "d": [4] * 5}
        elif i == 1:
            setting = {"ks": [3] * slots, "e": [3] * slots, "d": [2] * 5}
        else:
            setting = net.sample_active_subnet()
        net.set_active_subnet(ks=setting["ks"], e=setting["e"], d=setting["d"])
        resolution = RESOLUTIONS[i % len(RESOLUTIONS)]
        if resolution not in inputs:
            inputs[resolution] = images(rng, resolution)
        pixels = inputs[resolution]  # NHWC in [-1, 1], as our models take them
        scale = np.array([0.5 / s for s in STD], np.float32)
        offset = np.array([(0.5 - m) / s for m, s in zip(MEAN, STD)], np.float32)
        x = torch.from_numpy((pixels * scale + offset).transpose(0, 3, 1, 2).copy())
        with torch.no_grad():
            supernet = net(x).numpy()
            subnet = net.get_active_subnet(preserve_weight=True).eval()(x).numpy()
        for key, value in (("ks", setting["ks"]), ("e", setting["e"]), ("d", setting["d"]),
                           ("resolution", resolution), ("supernet", supernet), ("subnet", subnet)):
            records[key].append(value)
    np.savez(args.out / f"{tag}.npz", **{k: np.array(v) for k, v in records.items()},
             **{f"input_{r}": v for r, v in inputs.items()})
    logits = np.array(records["supernet"])
    print(f"{tag}: {args.subnets} sub-networks, logits std {logits.std():.3f}, max |logit| {np.abs(logits).max():.3f}")


if __name__ == "__main__":
    main()
