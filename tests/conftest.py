"""pytest setup: puts tests/, tests/fixtures and tests/compat on sys.path; the reference venv fixture."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
for sub in ("", "fixtures", "compat"):
    sys.path.insert(0, str(TESTS / sub))

from support import REFERENCE_PYTHON  # noqa: E402


@pytest.fixture
def reference_python() -> Path:
    """The python of a venv with mmap-ninja 0.9.0; skipped when absent unless CI requires it."""
    if not REFERENCE_PYTHON.exists():
        if os.environ.get("MMAP_NINJA_REQUIRE_REFERENCE"):
            pytest.fail(f"reference venv missing at {REFERENCE_PYTHON} (run scripts/ref_venv.sh)")
        pytest.skip("reference venv not installed (scripts/ref_venv.sh)")
    return REFERENCE_PYTHON
