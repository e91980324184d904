#!/usr/bin/env bash
# The main job: setup, then grade a bundled sample submission (a threaded
# chat that leaks a little memory per client) and write its reports to
# out/sample/: the terminal shows each check and the points by category.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
sample=grading/examples/tcp_chat/leaks_per_client
mkdir -p out/sample
./chatgrade grade "$sample" --assignment tcp_chat \
    --json out/sample/results.json --junit out/sample/junit.xml \
    --html out/sample/report.html --md out/sample/report.md --grade-json out/sample/grade.json
echo
echo "Reports: out/sample/report.html (open in a browser), report.md, results.json (Gradescope), junit.xml"
