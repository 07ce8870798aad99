"""Helpers shared by the test modules: the golden cases, the optional reference venv, item comparison, this
process's mappings."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

TESTS = Path(__file__).resolve().parent
GOLDEN = TESTS / "fixtures" / "golden"
REFERENCE_PYTHON = Path(os.environ.get("MMAP_NINJA_REFERENCE_PYTHON", TESTS.parent / ".venv-ref" / "bin" / "python"))


def run_reference(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), *args], capture_output=True, text=True, timeout=300, check=False)


def assert_item_equal(got: Any, want: Any) -> None:
    """Equal values, shapes and kinds (Python scalars stay scalars, strings stay str)."""
    if isinstance(want, str | int) and not isinstance(want, bool):
        assert type(got) is type(want) and got == want, (got, want)
        return
    if isinstance(want, np.generic):
        assert isinstance(got, np.generic) and got.dtype == want.dtype, (got, want)
        np.testing.assert_array_equal(got, want)  # (NaN and NaT equal themselves here)
        return
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype, (got, want)
    want = np.asarray(want)
    assert isinstance(got, np.ndarray), type(got)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_array_equal(got, want)


SMAPS = Path("/proc/self/smaps")


def mapped_kb(path: Path, *fields: str) -> int:
    """The sum of ``fields`` (``Rss``, ``Private_Dirty``...), in kB, over this process's mappings of ``path``
    (Linux's ``/proc/self/smaps``)."""
    total, inside = 0, False
    for line in SMAPS.read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            inside = line.endswith(" " + str(path))
        elif inside and line.split(":")[0] in fields:
            total += int(line.split()[1])
    return total


def strict_warnings(worker_id: int) -> None:
    """A DataLoader ``worker_init_fn`` (importable by spawned workers) that turns warnings into errors."""
    import warnings

    warnings.simplefilter("error")
