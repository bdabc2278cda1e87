#!/usr/bin/env bash
# Side environments for the real-client check (tests/bundle/test_clients.py and
# `edgetailor inspect BUNDLE --clients`): MediaPipe Tasks and the TFLite Task Library, each in its
# own venv under .venv-clients/ (or $EDGETAILOR_CLIENT_VENVS), installed from the exact pins in
# sdk/bundle/client_runtimes/<name>.txt without dependency resolution, then `pip check`ed (why those versions:
# the comment at the top of each pin file). They pin other numpy/protobuf versions than .venv,
# and tflite_support cannot be imported next to TensorFlow.
# Idempotent: an environment whose .installed stamp equals its pin file is left alone (a second
# run takes well under a second); a changed pin file or an unfinished install is made anew.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${EDGETAILOR_CLIENT_VENVS:-.venv-clients}
for name in mediapipe tflite-support; do
  pins=sdk/bundle/client_runtimes/$name.txt
  venv=$DEST/$name
  if [ -f "$venv/.installed" ] && cmp -s "$pins" "$venv/.installed"; then
    continue
  fi
  echo "client-venvs: installing $venv from $pins" >&2
  rm -rf "$venv"
  ${PYTHON:-python3} -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$pins"
  "$venv/bin/python" -m pip check --disable-pip-version-check >/dev/null
  cp "$pins" "$venv/.installed"
done
