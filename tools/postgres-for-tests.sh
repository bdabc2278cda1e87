#!/usr/bin/env bash
# PostgreSQL server binaries for tests/test_search_workers.py (two search workers sharing one
# Optuna study). The test starts its own throwaway cluster - as user `postgres` when run as root,
# on a Unix socket in a private temporary folder, no TCP - and removes it; this script only makes
# sure the Debian package is installed. Without it (and without root) that test is skipped.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "PostgreSQL server binaries missing; the multi-worker search test will be skipped" \
       "(install them with: sudo apt-get install postgresql)" >&2
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
