#!/usr/bin/env bash
# Rebuilds the extension in release mode and swaps it into python/mmap_ninja/ by rename, so processes that
# have the old one loaded (a benchmark, a test run) keep their mapping instead of crashing on a rewritten file.
# For iterating after `maturin develop` (or `pip install -e .`) has installed the package once.
set -euo pipefail
cd "$(dirname "$0")/.."
PYO3_BUILD_EXTENSION_MODULE=1 PYO3_PYTHON="${PYTHON:-$PWD/.venv/bin/python}" cargo build --release --features python --lib
cp target/release/libmmap_ninja.so python/mmap_ninja/_native.abi3.so.new
mv -f python/mmap_ninja/_native.abi3.so.new python/mmap_ninja/_native.abi3.so
