#!/usr/bin/env bash
# Install what chatgrade needs on Debian 12 (as root) and build the
# reference programs into build/. Safe to run again: it installs only what
# is missing and rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages only (no PyPI): the compilers, valgrind, CMake, ncat for
# the benchmark and a foreign-program test, and Debian's pytest with xdist
# and timeout.
# chromium renders the HTML report in its test.
packages=(build-essential cmake clang valgrind ncat iproute2 util-linux procps chromium
          python3 python3-pytest python3-pytest-xdist python3-pytest-timeout)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing packages: ${missing[*]}; run as root to install them" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The harness runs on Debian's interpreter: a python3 earlier on PATH (a
# pyenv, a venv) may not see Debian's pytest.
/usr/bin/python3 -c 'import pytest, xdist, pytest_timeout' || {
    echo "setup: /usr/bin/python3 cannot import pytest, xdist and pytest_timeout" >&2
    exit 1
}

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
echo "setup: references built in build/impl"
