#!/usr/bin/env bash
# A side environment with PyTorch and Once-for-All's own code (PyPI's `ofa`), for
# tests/supernet/test_ofa_import.py only: it builds Once-for-All's supernet with random weights
# (tools/ofa_reference.py) and checks that `supernet import-ofa` reproduces its outputs. edgetailor
# itself never imports torch. torch is pinned to 2.13.0, the CPU build this machine keeps on disk;
# an unpinned torch would pull the CUDA build (about 5 GB). `ofa` installs without its
# dependencies: the network code needs only torch (the script skips its torchvision data loaders).
# Idempotent: does nothing once .venv-ofa/.installed exists. Without it the test is skipped.
set -euo pipefail
VENV=.venv-ofa
STAMP=$VENV/.installed
if [ -f "$STAMP" ]; then
  exit 0
fi
rm -rf "$VENV"
${PYTHON:-python3} -m venv "$VENV"
"$VENV/bin/pip" install --quiet torch==2.13.0 numpy
"$VENV/bin/pip" install --quiet --no-deps ofa==0.1.0.post202307202001
"$VENV/bin/python" -c "import torch, ofa" && touch "$STAMP"
