"""python -m mmap_ninja: info, check (exit codes, one line per fault), --help and usage errors, and the bench
main job (convert has its own file, test_convert.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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


def test_info_and_check_of_a_sharded_store(tmp_path: Path) -> None:
    from mmap_ninja.sharded import from_partitions

    store = from_partitions(tmp_path / "s", [[np.arange(3), np.arange(4)], [np.arange(5)]])
    out = cli("info", str(tmp_path / "s"))
    assert out.returncode == 0, out.stderr
    assert "type: sharded" in out.stdout and "shard type: ragged" in out.stdout and "items: 3" in out.stdout
    assert cli("check", str(tmp_path / "s")).returncode == 0
    second = tmp_path / "s" / store.shards[1][0]
    np.array([0, 99], dtype="<i8").tofile(second / "ends" / "data.ninja")
    out = cli("check", str(tmp_path / "s"))
    assert out.returncode == 1 and len(out.stdout.splitlines()) == 1 and store.shards[1][0] in out.stdout


def test_a_closed_stdout_ends_quietly(tmp_path: Path) -> None:
    """``mmap-ninja info DIR | grep -q ...``: the reader is gone before we write. We stop as a command killed by
    SIGPIPE does (status 141, nothing on stderr) instead of printing a broken pipe error."""
    RaggedMmap.from_lists(tmp_path / "r", [np.arange(3)])
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "mmap_ninja", "info", str(tmp_path / "r")],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert (out.returncode, out.stderr) == (141, "")


def test_a_broken_pipe_elsewhere_is_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only stdout's reader going away ends quietly; another broken pipe is a failed command."""
    from mmap_ninja import __main__ as cli_main

    def broken(args: object) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli_main, "_info", broken)
    assert cli_main.main(["info", "somewhere"]) == 1
    assert "error: [Errno 32] Broken pipe" in capsys.readouterr().err


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    out = cli("info", str(tmp_path / "missing"))
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "type.ninja" in out.stderr


@pytest.mark.parametrize("command", [[], ["bench"], ["convert"], ["info"], ["check"]])
def test_help_for_every_command(command: list[str]) -> None:
    out = cli(*command, "--help")
    assert out.returncode == 0 and out.stdout.startswith("usage: python -m mmap_ninja") and not out.stderr


def test_usage_errors_are_one_line() -> None:
    for args in (["bench", "--n-images", "0"], ["nope"], []):
        out = cli(*args)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and "error:" in out.stderr, out.stderr


def table_rows(stdout: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("|")[1:-1]] for line in stdout.splitlines() if line.startswith("| ")]


def test_bench_makes_jpegs_converts_them_and_prints_the_table(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    out = cli("bench", "--n-images", "3", "--dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    rows = table_rows(out.stdout)
    assert [row[0] for row in rows[1:]] == ["in_memory", "ragged_mmap", "decode_from_disk"]
    assert all(len(row) == 8 and all(float(c) >= 0 for c in row[1:]) for row in rows[1:])
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["000000.jpg", "000001.jpg", "000002.jpg"]
    images = RaggedMmap(tmp_path / "ragged")
    assert len(images) == 3 and all(img.dtype == np.uint8 and img.shape[2] == 3 for img in images[:])
    assert all(300 <= min(img.shape[:2]) <= max(img.shape[:2]) <= 640 for img in images[:])


def test_bench_on_a_folder_with_a_plot(tmp_path: Path) -> None:
    image = pytest.importorskip("PIL.Image")
    pytest.importorskip("matplotlib")
    src = tmp_path / "mine"
    src.mkdir()
    for i in range(3):
        image.fromarray(np.full((20 + i, 30, 3), i, np.uint8)).save(src / f"{i}.png")
    (src / "broken.png").write_bytes(b"broken")
    out = cli("bench", "--images", str(src), "--dir", str(tmp_path / "work"), "--plot", str(tmp_path / "t.png"))
    assert out.returncode == 0, out.stderr
    assert "skipped broken.png: " in out.stderr and out.stdout.count("| ") >= 4
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(RaggedMmap(tmp_path / "work" / "ragged")) == 3


def test_bench_plot_errors_before_running(tmp_path: Path) -> None:
    out = cli("bench", "--plot", str(tmp_path / "missing" / "t.png"))
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "error: " in out.stderr
    code = (
        "import sys; sys.modules['matplotlib'] = None; from mmap_ninja.__main__ import main; "
        f"sys.exit(main(['bench', '--plot', {str(tmp_path / 't.png')!r}]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stderr == "error: --plot needs matplotlib: pip install matplotlib\n"
