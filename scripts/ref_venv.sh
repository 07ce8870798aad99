#!/usr/bin/env bash
# Create (once) a venv holding the pure-Python reference, mmap-ninja 0.9.0, for compatibility checks.
# Usage: scripts/ref_venv.sh [VENV_DIR]   (default: .venv-ref in the repo root). Prints the venv's python.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv_dir="${1:-$repo_root/.venv-ref}"

if ! "$venv_dir/bin/python" -c 'import mmap_ninja' >/dev/null 2>&1; then
    python3 -m venv "$venv_dir"
    "$venv_dir/bin/python" -m pip install --quiet \
        mmap-ninja==0.9.0 zstandard joblib numpy tqdm pytest
fi

echo "$(cd "$venv_dir" && pwd)/bin/python"
