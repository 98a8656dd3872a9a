#!/usr/bin/env bash
# Installs the Python client's requirements and runs its tests (against an in-test ROUTER).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
$PY -m pip install -q -r requirements.txt
$PY -m unittest discover -s tests -v
