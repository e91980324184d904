#!/usr/bin/env bash
# The main job: setup, then the references at work (two clients chatting
# through tcp_chat_server, with the timeline of every message).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec /usr/bin/python3 -m harness.demo
