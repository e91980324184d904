#!/usr/bin/env bash
# The whole test suite: setup, the C unit tests (ctest), then every check
# of the harness and every scenario against the references, two workers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ctest --test-dir build --output-on-failure --timeout 120
exec /usr/bin/python3 -m pytest -n "$(nproc)" -q "$@"
