"""The detection-backbone search at proxy scale: its Pareto front as a table.

    .venv/bin/python benchmarks/detection_search.py --out /tmp/det_search_bench \\
        [--space mnasnet --head ssdlite --device pixel1 --trials 6 --images 64 --resolution 96 \\
         --proxy-width 0.35 --parent-epochs 5 --epochs 2 --budget-ms 120]

Runs ``edgetailor search --task detection`` (NSGA-II; a parent trained once, weight-mapped onto each
candidate and fine-tuned; held-out COCO mAP; whole-detector latency on the profile) on a COCO folder:
``--dataset`` or ``--images`` generated shapes images written as one in OUT/coco. A rerun with the
same OUT resumes the study and reuses the parent. The table lists the front, fastest first: trial,
mAP, predicted ms, how many weighted layers the candidate inherited, and each stage's depth x channels.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from edgetailor.arch.spec import decode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--dataset", type=Path)
    parser.add_argument("--space", default="mnasnet")
    parser.add_argument("--head", default="ssdlite")
    parser.add_argument("--device", default="pixel1")
    parser.add_argument("--budget-ms", type=float)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=96)
    parser.add_argument("--proxy-width", type=float, default=0.35)
    parser.add_argument("--parent-epochs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    dataset = args.dataset or args.out / "coco"
    if args.dataset is None and not (dataset / "labels.json").is_file():
        from edgetailor.data import folders, shapes

        folders.write_coco_folder(dataset, shapes.detection(args.images, args.resolution, seed=0, max_objects=3))
    command = [sys.executable, "-m", "edgetailor", "search", "--task", "detection", "--space", args.space,
               "--head", args.head, "--device", args.device, "--dataset", str(dataset),
               "--out", str(args.out / "search"), "--trials", str(args.trials), "--resolution", str(args.resolution),
               "--proxy-width", str(args.proxy_width),
               "--parent-epochs", str(args.parent_epochs), "--epochs", str(args.epochs), "--json"]
    if args.budget_ms is not None:
        command += ["--budget-ms", str(args.budget_ms)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)  # progress lines pass through on stderr
    if done.returncode != 0:
        sys.exit(done.returncode)
    summary = json.loads(done.stdout)
    parent = summary["parent"]
    print(f"\n{args.space} + {args.head} on {summary['device']}: {summary['trials'].get('complete', 0)} trials, "
          f"{summary['wall_seconds']:.0f} s this run; parent held-out mAP {parent['held_out_map']:.2f}% "
          f"({parent['seconds']:.0f} s to train); latency range of the space {summary['latency_range_ms']} ms")
    print(f"{'trial':>5} {'mAP %':>6} {'ms':>7} {'inherited':>12}  stages (depth x channels)")
    for trial in summary["front"]:
        spec = decode(trial["spec"])
        stages = " ".join(f"{len(stage)}x{stage[0].channels}" for stage in spec.stages)
        found = re.search(r"\((\d+ of \d+) weighted layers inherited\)", trial["accuracy_source"])
        inherited = found.group(1) if found else "?"
        print(f"{trial['trial']:>5} {trial['accuracy']:>6.2f} {trial['latency_ms']:>7.1f} {inherited:>12}  {stages}")
    if summary.get("best"):
        best = summary["best"]
        print(f"best under {summary['budget_ms']} ms: trial {best['trial']}, {best['accuracy']:.2f}% at "
              f"{best['latency_ms']:.1f} ms")


if __name__ == "__main__":
    main()
