"""Block benchmarking by Pareto fronts at proxy scale: each block type's random networks, priced on
a device profile and proxy-trained on generated shapes; prints the table of fronts and hypervolumes.

    python benchmarks/blocks_pareto.py [--blocks ir,ghost,shuffle,edgenext] [--networks 6] [--epochs 2]
                                       [--resolution 32] [--images 200] [--device pixel1] [--out DIR]

It runs ``edgetailor blocks benchmark`` (resumable: rerun with the same --out to finish a run).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", default="ir,ghost,shuffle,edgenext")
    parser.add_argument("--networks", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--device", default="pixel1")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    out = args.out or tempfile.mkdtemp(prefix="blocks-pareto-")
    command = [sys.executable, "-m", "edgetailor", "blocks", "benchmark", "--blocks", args.blocks,
               "--networks", str(args.networks), "--epochs", str(args.epochs), "--resolution", str(args.resolution),
               "--train-images", str(args.images), "--val-images", str(args.images // 2),
               "--device", args.device, "--dataset", "shapes", "--out", out]
    print("$", " ".join(command[1:]), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    print(f"{time.perf_counter() - started:.0f} s; results in {out}")


if __name__ == "__main__":
    main()
