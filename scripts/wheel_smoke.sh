#!/usr/bin/env bash
# Builds the wheels and the sdist, installs the wheel into a clean venv with no Rust toolchain on PATH, and
# checks that it works: abi3 + manylinux tags, the console script, a round trip through a store.
# Usage: bash scripts/wheel_smoke.sh [OUT_DIR]   (needs maturin; run from anywhere)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
rm -rf "$out" && mkdir -p "$out"

maturin build --release -o "$out/maturin" >/dev/null
# maturin's PEP 517 backend tags local builds linux_x86_64 unless told otherwise.
MATURIN_PEP517_ARGS="--compatibility manylinux_2_34" pip wheel . --no-deps -q -w "$out/pip"
maturin sdist -o "$out/sdist" >/dev/null
for wheel in "$out"/maturin/*.whl "$out"/pip/*.whl; do
  case "$(basename "$wheel")" in
    mmap_ninja-*-cp311-abi3-manylinux_*_x86_64.whl) echo "ok: $(basename "$wheel")" ;;
    *) echo "wheel not tagged cp311-abi3 manylinux: $wheel" >&2; exit 1 ;;
  esac
done

# The sdist builds from source (a full release build of the crate).
pip wheel --no-deps -q -w "$out/from-sdist" "$out"/sdist/*.tar.gz
ls "$out"/from-sdist/mmap_ninja-*-cp311-abi3-*.whl >/dev/null

venv="$(cd "$out" && pwd)/venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q "$out"/maturin/*.whl
# No cargo or rustc on PATH: the wheel must not need them.
env PATH="$venv/bin:/usr/bin:/bin" bash -c '
  set -euo pipefail
  ! command -v cargo >/dev/null
  cd "$(mktemp -d)"
  python -c "
import numpy as np, mmap_ninja
m = mmap_ninja.RaggedMmap.from_lists(\"store\", [np.arange(3), np.ones((2, 2))])
assert [x.tolist() for x in mmap_ninja.RaggedMmap(\"store\")] == [[0.0, 1.0, 2.0], [[1.0, 1.0], [1.0, 1.0]]]
"
  mmap-ninja info store >info.txt
  grep -q "items: 2" info.txt
  mmap-ninja --help >/dev/null
'
echo "ok: wheel installs and runs without a Rust toolchain; $(basename "$out"/sdist/*.tar.gz) builds"
