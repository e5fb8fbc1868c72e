#!/usr/bin/env bash
# The GPU suite from anywhere: runs `python -m bench.gpu_suite` in the repository root.
#   bench/gpu_suite.sh --out gpu-results [--quick] [--write-docs]
#   PYTHON=/path/to/venv/bin/python bench/gpu_suite.sh --out gpu-results
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" -m bench.gpu_suite "$@"
