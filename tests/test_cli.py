"""python -m mmap_ninja: info, check (exit codes, one line per fault) and the bench main job."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from mmap_ninja.ragged import RaggedMmap


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mmap_ninja", *args], capture_output=True, text=True, timeout=120)


def test_info_describes_a_ragged_store(tmp_path: Path) -> None:
    RaggedMmap.from_lists(tmp_path / "r", [np.zeros((2, 3), np.uint8), np.zeros((4, 5), np.uint8), np.arange(3)])
    out = cli("info", str(tmp_path / "r"))
    assert out.returncode == 0, out.stderr
    assert "type: ragged" in out.stdout and "items: 3" in out.stdout and "dtype: uint8" in out.stdout
    assert "2 x (2..4, 3..5)" in out.stdout and "1 x (3)" in out.stdout


def test_check_exit_codes_and_one_line_per_fault(tmp_path: Path) -> None:
    RaggedMmap.from_lists(tmp_path / "r", [np.arange(3), np.arange(4), np.arange(5)])
    assert cli("check", str(tmp_path / "r")).returncode == 0
    ends = np.fromfile(tmp_path / "r" / "ends" / "data.ninja", dtype="<i8")
    ends[[0, 2]] = 999
    ends.tofile(tmp_path / "r" / "ends" / "data.ninja")
    out = cli("check", str(tmp_path / "r"))
    assert out.returncode == 1
    # ends[0] damaged breaks item 0 and its neighbour item 1 (which no longer starts where item 0 ends).
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 3 and [f"item {i}" in line for i, line in enumerate(lines)] == [True] * 3
    assert "Traceback" not in out.stdout + out.stderr


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    out = cli("info", str(tmp_path / "missing"))
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "type.ninja" in out.stderr


def test_bench_prints_the_table(tmp_path: Path) -> None:
    out = cli("bench", "--n-images", "3", "--dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    rows = [line.split("|")[1].strip() for line in out.stdout.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["in_memory", "ragged_mmap", "load_from_disk"]
    assert len(RaggedMmap(tmp_path / "ragged")) == 3
